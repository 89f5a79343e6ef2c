"""SOPS file conventions shared by ``configure``, ``init`` and the ``sops`` collection.

Only argument lists and parsing live here; running them is the runner's job. Plaintext
always travels through stdin/stdout (``/dev/stdin`` plus ``--filename-override`` so the
creation rules of ``.sops.yaml`` still apply), never through a temporary file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tasks.lib.boundary import path_argument
from tasks.lib.errors import UserError
from tasks.lib.files import read_bytes

if TYPE_CHECKING:
    from tasks.lib.secrets.structure import Rule

#: ``name.sops.yaml``, ``name.sops.json``, ... (but not ``.sops.yaml``, sops's own config).
SOPS_NAME = re.compile(r"^[^.].*\.sops(\.[A-Za-z0-9]+)?$")

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


def store_for(filename: Path | str) -> str:
    """The sops store of a file by its name (YAML when there is no name to go by)."""
    return store_type(filename) if str(filename) else "yaml"


def encryption_state(text: str, filename: Path | str = "", creation_rule: Rule | None = None) -> str:
    """``plain``, ``encrypted`` or ``partial`` (sops metadata but a plaintext value, or no
    MAC): by sops's own rules (:mod:`tasks.lib.secrets.structure`), never by substring."""
    from tasks.lib.secrets.structure import sops_state

    return sops_state(text, store_for(filename), creation_rule)


def is_encrypted_text(text: str, filename: Path | str = "") -> bool:
    """Whether ``text`` is a completely encrypted sops document: its metadata with a MAC,
    and every value its rule encrypts is ciphertext."""
    return encryption_state(text, filename) == "encrypted"


def is_encrypted(path: Path) -> bool:
    try:
        return is_encrypted_text(read_bytes(path).decode("utf-8", errors="replace"), path.name)
    except UserError:
        return False


def creation_rule(config_text: str, filename: str) -> dict[str, Any] | None:
    """The first creation rule of a ``.sops.yaml`` text whose ``path_regex`` matches
    ``filename`` (relative to the directory of ``.sops.yaml``), as sops picks it; None when
    none matches or the text is not a sops config."""
    try:
        config = yaml.safe_load(config_text)
    except yaml.YAMLError:
        return None
    rules = config.get("creation_rules") if isinstance(config, dict) else None
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict):
            continue
        pattern = rule.get("path_regex")
        try:
            if pattern is not None and not re.search(str(pattern), filename):
                continue
        except re.error:
            continue
        return rule
    return None


def creation_rule_of(sops_config: Path, filename: str) -> Rule | None:
    """Which values the matching rule of ``sops_config`` encrypts (None without a match)."""
    from tasks.lib.secrets.structure import Rule

    try:
        text = sops_config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    rule = creation_rule(text, filename)
    return Rule.of(rule) if rule is not None else None


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
    return ["sops", "--decrypt", path_argument(path)]  # a file named -x is not an option


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
