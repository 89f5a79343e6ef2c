"""The operator's key material: age key, deploy key, push token, made for ``inv init`` and
read back for the tasks (and the age recipients of a SOPS file). Pure Python, no tools.

Only the contents are made here; :mod:`tasks.lib.swap` writes them (exclusively, mode 0600
from the first byte, all or none).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

import pyrage

from tasks.lib.errors import UserError
from tasks.lib.files import MAX_KEY_BYTES, read_text
from tasks.lib.paths import Paths


def age_key_file() -> tuple[str, str]:
    """(file content in age-keygen's format, public key)."""
    identity = pyrage.x25519.Identity.generate()
    public = str(identity.to_public())
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    content = f"# created: {created}\n# public key: {public}\n{identity}\n"
    return content, public


def deploy_key_pair(comment: str = "home-ops deploy key") -> tuple[str, str]:
    """(private key, public key) of a new ed25519 key in OpenSSH format."""
    # deferred: a no-change configure reads the age key here; cryptography is for deploy keys
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}\n"


def openssh_cipher(private: str) -> str | None:
    """The cipher an OpenSSH private key is encrypted with (``none`` for no passphrase);
    None when the text is not an OpenSSH private key. Read from the key's header, so it
    works without the bcrypt module that decrypting such a key would need."""
    lines = [line.strip() for line in private.strip().splitlines()]
    if len(lines) < 3 or lines[0] != "-----BEGIN OPENSSH PRIVATE KEY-----":
        return None
    try:
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return None
    magic = b"openssh-key-v1\0"
    if not blob.startswith(magic) or len(blob) < len(magic) + 4:
        return None
    (length,) = struct.unpack(">I", blob[len(magic) : len(magic) + 4])
    return blob[len(magic) + 4 : len(magic) + 4 + length].decode(errors="replace")


def openssh_public_key(private: str, label: str) -> str:
    """``TYPE BASE64`` of an unencrypted OpenSSH private key, or a one-line UserError."""
    # deferred: a no-change configure reads the age key here; cryptography is for deploy keys
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key

    cipher = openssh_cipher(private)
    if cipher is None:
        raise UserError(f"{label}: not an OpenSSH private key")
    if cipher != "none":
        raise UserError(f"{label}: has a passphrase — Flux needs a deploy key without one")
    try:
        key = load_ssh_private_key(private.encode(), password=None)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        raise UserError(f"{label}: not an OpenSSH private key Flux can use") from None
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()


def push_token() -> str:
    """A random token for the Flux webhook receiver (256 bits, hex)."""
    return secrets.token_hex(32) + "\n"


def age_recipients_of(sops_file: Path) -> list[str]:
    """The age recipients a SOPS file is encrypted to (from its plaintext metadata)."""
    # deferred: a no-change configure reads the age key here; ruamel.yaml is for recipients
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe", pure=True).load(read_text(sops_file))
    except (UserError, YAMLError, RecursionError):
        return []
    if not isinstance(data, dict) or not isinstance(data.get("sops"), dict):
        return []
    entries = data["sops"].get("age") or []
    return [str(e["recipient"]) for e in entries if isinstance(e, dict) and "recipient" in e]


def read_age_identity(path: Path, label: str) -> tuple[str, str]:
    """(identity, public key) from an age-keygen style file."""
    if not path.exists():
        raise UserError(f"{label} not found — run `inv init` to create an age key")
    text = read_text(path, label, "an age key file from `inv init`", limit=MAX_KEY_BYTES)
    lines = [line.strip() for line in text.splitlines()]
    identities = [line for line in lines if line.startswith("AGE-SECRET-KEY-")]
    if not identities:
        raise UserError(f"{label}: no AGE-SECRET-KEY line — is this an age key file?")
    try:
        identity = pyrage.x25519.Identity.from_str(identities[0])
    except Exception:  # pyrage raises its own untyped error for a malformed key
        raise UserError(f"{label}: the AGE-SECRET-KEY line is not a valid age key") from None
    return identities[0], str(identity.to_public())


@dataclass(frozen=True)
class OperatorFiles:
    """The operator's local key material, read from the files ``inv init`` made."""

    age_key: str
    age_public_key: str
    deploy_key: str
    deploy_key_pub: str
    push_token: str

    def template_data(self) -> dict[str, str]:
        return {
            "age_key": self.age_key,
            "age_public_key": self.age_public_key,
            "deploy_key": self.deploy_key,
            "deploy_key_pub": self.deploy_key_pub,
            "push_token": self.push_token,
        }


def read_operator_files(paths: Paths) -> OperatorFiles:
    """The key material ``inv init`` made, or one line per file that is missing."""
    age_key, age_public_key = read_age_identity(paths.age_key, paths.rel(paths.age_key))
    missing = [p for p in (paths.deploy_key, paths.deploy_key_pub, paths.push_token) if not p.exists()]
    if missing:
        raise UserError(*(f"{paths.rel(p)} not found — run `inv init`" for p in missing))

    def key(path: Path) -> str:
        return read_text(path, paths.rel(path), limit=MAX_KEY_BYTES)

    return OperatorFiles(
        age_key=age_key,
        age_public_key=age_public_key,
        deploy_key=key(paths.deploy_key),
        deploy_key_pub=key(paths.deploy_key_pub).strip(),
        push_token=key(paths.push_token).strip(),
    )
