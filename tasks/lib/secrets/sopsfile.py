"""SOPS file conventions shared by ``configure``, ``init`` and the ``sops`` collection.

Only argument lists and parsing live here; running them is the runner's job. Plaintext
always travels through stdin/stdout (``/dev/stdin`` plus ``--filename-override`` so the
creation rules of ``.sops.yaml`` still apply), never through a temporary file.
"""

from __future__ import annotations

import re
from pathlib import Path

#: ``name.sops.yaml``, ``name.sops.json``, ... (but not ``.sops.yaml``, sops's own config).
SOPS_NAME = re.compile(r"^[^.].*\.sops(\.[A-Za-z0-9]+)?$")
_ENC = "ENC[AES256_GCM,"

#: Directories configure renders secrets into and sops.* tasks look at.
SECRET_ROOTS = ("bootstrap", "kubernetes", "talos")


def is_sops_name(path: Path | str) -> bool:
    """True for files that must be encrypted: ``*.sops.yaml``, ``*.sops.json``, ..."""
    return bool(SOPS_NAME.match(Path(path).name))


def store_type(path: Path | str) -> str:
    suffix = Path(path).suffix.lower()
    return {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".env": "dotenv", ".ini": "ini"}.get(
        suffix, "binary"
    )


def is_encrypted_text(text: str) -> bool:
    """Whether ``text`` is a SOPS document (metadata present and values encrypted)."""
    has_metadata = bool(re.search(r"^sops:\s*$", text, re.MULTILINE)) or '"sops": {' in text
    has_metadata = has_metadata or "sops_version=" in text or "sops_mac=" in text
    return has_metadata and (_ENC in text or '"data": "ENC[' in text)


def is_encrypted(path: Path) -> bool:
    try:
        return is_encrypted_text(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return False


def encrypt_argv(filename: str) -> list[str]:
    """Encrypt stdin as if it were ``filename`` (relative to the repository root), so the
    matching ``.sops.yaml`` creation rule decides what gets encrypted."""
    kind = store_type(filename)
    return [
        "sops",
        "--encrypt",
        "--filename-override",
        filename,
        "--input-type",
        kind,
        "--output-type",
        kind,
        "/dev/stdin",
    ]


def decrypt_argv(path: str) -> list[str]:
    return ["sops", "--decrypt", path]


def decrypt_stdin_argv(filename: str) -> list[str]:
    """Decrypt a SOPS document fed on stdin, of ``filename``'s type (used to verify
    ciphertext before it is written)."""
    kind = store_type(filename)
    return ["sops", "--decrypt", "--input-type", kind, "--output-type", kind, "/dev/stdin"]


def encrypt_to_argv(filename: str, recipient: str) -> list[str]:
    """Encrypt stdin to an explicit age recipient, whatever ``.sops.yaml`` says (used before
    ``.sops.yaml`` exists, and to re-key a file)."""
    argv = encrypt_argv(filename)
    return [*argv[:2], "--age", recipient, *argv[2:]]
