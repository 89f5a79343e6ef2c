"""The record of what ``configure`` generated: ``.configure-manifest.json`` (committed).

For every generated file it keeps the SHA-256 of the last *pure* render (the templates'
output, before your own edits and apps were merged in) and that render's git blob id, whose
object ``configure`` writes into git's object database, so the render is the base of the
next three-way merge even before you commit. ``written`` is the SHA-256 of what configure put
in the tree when that differs from the pure render (your edits merged in, your apps listed).
Together they tell apart a file nobody touched since configure wrote it, a file with your
own edits (merged into the next render), and a file configure never wrote (never touched).
For secrets it also keeps an HMAC of the plaintext, keyed by the age identity, so an
unchanged secret is recognised without running sops and keeps its ciphertext; without the
key the HMAC reveals nothing. ``inputs`` is a keyed digest of everything a render depends
on, so a re-run with nothing changed can stop early.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tasks.lib.boundary import rendered_name_problem, shown
from tasks.lib.errors import UserError

VERSION = 1
MANIFEST_NAME = ".configure-manifest.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def secret_key(age_identity: str) -> bytes:
    """The HMAC key: derived from the age identity, never stored."""
    return hashlib.sha256(b"home-ops/configure/v1\0" + age_identity.encode()).digest()


def keyed_digest(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def update_with_file(mac: hmac.HMAC, path: Path) -> None:
    """Feed a regular file's bytes to ``mac`` in chunks; anything else (missing, a FIFO, a
    device such as a link to /dev/zero) only by what it is, so digesting never blocks or
    fills memory. Validation then refuses such an input with a clear message."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            mac.update(b"<not a regular file>")
            return
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                mac.update(chunk)
    except OSError:
        mac.update(b"<missing>")


def inputs_digest(key: bytes, files: Mapping[str, Path], extra: Iterable[str] = ()) -> str:
    """Keyed digest of the files (by the name given to each, and their bytes) and values a
    render depends on. The names say nothing of where the checkout lives (paths relative to
    the root, module names), so every clone of the repository agrees on the manifest."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for name in sorted(files):
        mac.update(name.encode() + b"\0")
        update_with_file(mac, files[name])
        mac.update(b"\0")
    for value in extra:
        mac.update(value.encode() + b"\0")
    return mac.hexdigest()


#: A git object id (SHA-1, or SHA-256 in a repository that uses it).
BLOB_ID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Entry:
    sha256: str  # the last pure render: the base of the next merge
    plaintext: str | None = None  # HMAC of a secret's plaintext
    blob: str | None = None  # git blob id of the pure render (its object is in git's database)
    written: str | None = None  # SHA-256 of what configure wrote, when not the pure render

    @property
    def in_tree(self) -> str:
        """The SHA-256 of the file as configure left it in the tree."""
        return self.written or self.sha256

    def to_json(self) -> dict[str, str]:
        data = {"sha256": self.sha256}
        for key in ("plaintext", "blob", "written"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data

    @classmethod
    def from_json(cls, entry: dict[str, object]) -> Entry:
        """An entry as read: a blob id or ``written`` digest of the wrong shape is dropped
        (then there is no merge base, and a hand edit is reported instead of merged)."""
        blob, written, plaintext = entry.get("blob"), entry.get("written"), entry.get("plaintext")
        return cls(
            str(entry["sha256"]),
            str(plaintext) if plaintext is not None else None,
            blob if isinstance(blob, str) and BLOB_ID.match(blob) else None,
            written if isinstance(written, str) and SHA256.match(written) else None,
        )


@dataclass
class Manifest:
    files: dict[str, Entry] = field(default_factory=dict)
    inputs: str = ""

    @classmethod
    def load(cls, path: Path, label: str = MANIFEST_NAME) -> Manifest:
        """The manifest, or an empty one when absent or unreadable (then every existing
        file counts as not generated by configure, so nothing is overwritten silently).

        A manifest that names a file configure cannot have written (an absolute path,
        ``..``, anything outside the rendered folders) stops here with one line per such
        entry: it decides what configure deletes, and a pull request can carry it."""
        try:
            data = json.loads(path.read_text())
            files = {str(name): Entry.from_json(entry) for name, entry in data.get("files", {}).items()}
            inputs = str(data.get("inputs", ""))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls()
        bad = [
            f"{label}: files: {shown(name)}: {problem} — not a file configure writes; nothing was "
            f"changed (restore the manifest: `git checkout -- {label}`)"
            for name in files
            if (problem := rendered_name_problem(name)) is not None
        ]
        if bad:
            raise UserError(*bad)
        return cls(files, inputs)

    def dumps(self) -> str:
        data = {
            "version": VERSION,
            "comment": "Written by `inv configure`: what it generated. Do not edit.",
            "inputs": self.inputs,
            "files": {name: self.files[name].to_json() for name in sorted(self.files)},
        }
        return json.dumps(data, indent=2) + "\n"
