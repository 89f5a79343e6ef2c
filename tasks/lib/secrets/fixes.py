"""What ``inv sops.encrypt --path FILE`` does about each finding of the secret guard, so every
fix the guard suggests is this one command:

- a plaintext ``*.sops.*`` file: encrypt it, following ``.sops.yaml``;
- a ``*.sops.*`` file with plaintext values (one edited back, a hand-made ``sops:`` block, a
  rule that left data out): decrypt what is ciphertext (the plaintext values held aside, the
  MAC ignored: it no longer matches), put the values back, encrypt the whole by ``.sops.yaml``;
- a plaintext Secret in a file not named ``*.sops.*``: encrypt it into ``NAME.sops.yaml``
  (JSON becomes YAML), point the folder's kustomization at the new name, remove the old file;
- ``cloudflare_token`` in ``cluster.yaml``: move it into ``cluster.sops.yaml``.

Plaintext stays in memory and travels to sops on stdin; the files of one fix (the encrypted
one, the kustomization that lists it, the file it replaces) are written through the
repository's one swap, all or none, so an interrupted fix never loses a value.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tasks.lib import swap
from tasks.lib.errors import UserError
from tasks.lib.files import read_text
from tasks.lib.paths import Paths
from tasks.lib.secrets import scan, structure
from tasks.lib.secrets.recipients import explain_sops_error, require_keys
from tasks.lib.secrets.sopsfile import creation_rule_of, encrypt_argv, is_encrypted_text, store_for
from tasks.lib.secrets.sopsfile import decrypt_argv as plain_decrypt_argv
from tasks.lib.tools.runner import Command, run_one

#: Plaintext values set aside while the rest of a file is decrypted.
Held = list[tuple[tuple[Any, ...], Any]]
KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
#: How long one sops run may take.
SOPS_DEADLINE = 120.0


# --------------------------------------------------------------------------- sops on stdin


def sops(paths: Paths, argv: list[str], stdin: str, label: str) -> str:
    """Run one sops command from the repository root, plaintext on stdin; its stdout."""
    command = Command(tuple(argv), stdin=stdin.encode(), cwd=paths.root, deadline=SOPS_DEADLINE, what=label)
    outcome = run_one(command, paths=paths)
    if not outcome.ok:
        reason = outcome.problem if outcome.limit else outcome.stderr
        raise UserError(explain_sops_error(paths, label, reason) + "; nothing was written")
    return outcome.stdout


def encrypt_checked(paths: Paths, label: str, plaintext: str) -> str:
    """``plaintext`` encrypted as ``label`` by ``.sops.yaml``, verified by the guard's rules."""
    ciphertext = sops(paths, encrypt_argv(label), plaintext, label)
    rule = creation_rule_of(paths.sops_config, label)
    problems = structure.sops_problems(ciphertext, store_for(label), rule)
    if problems or not is_encrypted_text(ciphertext, label):
        raise UserError(
            f"{label}: sops left values in plaintext — check its rule in .sops.yaml; nothing written"
        )
    return ciphertext


def decrypt_argv(store: str) -> list[str]:
    return ["sops", "--decrypt", "--ignore-mac", "--input-type", store, "--output-type", store, "/dev/stdin"]


# --------------------------------------------------------------------------- documents in memory


def load_documents(text: str, store: str) -> list[Any]:
    """The documents of a YAML (round trip: comments and order kept) or JSON file."""
    if store == "json":
        return [json.loads(text)]

    return [doc for doc in YAML().load_all(text) if doc is not None]


def dump_documents(documents: list[Any], store: str) -> str:
    if store == "json":
        return json.dumps(documents[0], indent=2) + "\n"

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump_all(documents, buffer)
    return buffer.getvalue()


def leaves(
    node: Any, where: tuple[Any, ...], keys: tuple[str, ...]
) -> Iterator[tuple[tuple[Any, ...], tuple[str, ...], Any]]:
    """(position, key path, value) of every scalar: position includes list indices."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*where, key), (*keys, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, (*where, index), keys)
    else:
        yield where, keys, node


def set_at(documents: list[Any], position: tuple[Any, ...], value: Any) -> None:
    node = documents[position[0]]
    for step in position[1:-1]:
        node = node[step]
    node[position[-1]] = value


def is_ciphertext(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, str) and bool(structure.ENC_VALUE.match(value)))


# --------------------------------------------------------------------------- the fixes


def reencrypt(paths: Paths, path: Path) -> str:
    """A ``*.sops.*`` file with plaintext values, encrypted whole again by ``.sops.yaml``."""
    label = paths.rel(path)
    store = store_for(label)
    if store not in ("yaml", "json"):
        raise UserError(f"{label}: only YAML and JSON files can be re-encrypted here — restore it from git")
    documents = load_documents(read_text(path, label), store)
    metadata = documents[0].pop(structure.METADATA_KEY, None) if isinstance(documents[0], dict) else None
    for document in documents[1:]:
        if isinstance(document, dict):
            document.pop(structure.METADATA_KEY, None)
    values = [
        (where, value) for index, doc in enumerate(documents) for where, _, value in leaves(doc, (index,), ())
    ]
    if not any(isinstance(v, str) and structure.ENC_VALUE.match(v) for _, v in values) or metadata is None:
        plaintext = dump_documents(documents, store)  # nothing is ciphertext: the whole file is plaintext
    else:
        rule = structure.Rule.of(dict(metadata))
        held: Held = []
        for index, document in enumerate(documents):
            for where, keys, value in list(leaves(document, (index,), ())):
                if not is_ciphertext(value) and rule.encrypts(keys):
                    held.append((where, value))
                    set_at(documents, where, "")
        documents[0][structure.METADATA_KEY] = metadata
        decrypted = load_documents(
            sops(paths, decrypt_argv(store), dump_documents(documents, store), label), store
        )
        for where, value in held:
            set_at(decrypted, where, value)
        plaintext = dump_documents(decrypted, store)
    write(paths, {path: encrypt_checked(paths, label, plaintext)})
    return f"re-encrypted {label}"


def encrypt_secret_file(paths: Paths, path: Path) -> str:
    """A file holding a plaintext Secret, encrypted into ``NAME.sops.yaml`` beside it."""
    label = paths.rel(path)
    target_label = scan.sops_name(label)
    target = paths.root / target_label
    if target.exists():
        raise UserError(f"{label}: {target_label} exists already — merge the two by hand, then encrypt it")
    text = read_text(path, label)
    if store_for(label) == "json":
        text = dump_documents(load_documents(text, "json"), "yaml")
    ciphertext = encrypt_checked(paths, target_label, text)
    files: dict[Path, str | None] = {target: ciphertext}
    note = ""
    if (repointed := repoint_kustomization(path.parent, path.name, target.name)) is not None:
        kustomization, files[kustomization] = repointed
        note = f" ({kustomization.name} now lists {target.name})"
    files[path] = None
    write(paths, files, exclusive=target)
    return f"encrypted {label} into {target_label}{note}"


def write(paths: Paths, files: dict[Path, str | None], exclusive: Path | None = None) -> None:
    """Write (or, for None, remove) ``files`` all or none through the one swap."""
    changes = [
        swap.Change(path, None if text is None else text.encode(), exclusive=path == exclusive)
        for path, text in files.items()
    ]
    swap.write_files(paths.root, changes, "sops.encrypt", key_dirs=paths.key_dirs)


def repoint_kustomization(directory: Path, old: str, new: str) -> tuple[Path, str] | None:
    """The folder's kustomization and its text listing ``new`` where it listed ``old``;
    None when none lists ``old``."""
    entry = re.compile(rf"^(\s*-\s*['\"]?(?:\./)?){re.escape(old)}(['\"]?\s*(?:#.*)?)$")
    for name in KUSTOMIZATIONS:
        kustomization = directory / name
        if not kustomization.is_file():
            continue
        lines = read_text(kustomization, name).splitlines(keepends=True)
        changed = [
            entry.sub(rf"\g<1>{new}\g<2>", line.rstrip("\n")) + ("\n" if line.endswith("\n") else "")
            for line in lines
        ]
        if changed != lines:
            return kustomization, "".join(changed)
    return None


def move_config_secrets(paths: Paths, path: Path) -> str:
    """The secret keys of ``cluster.yaml`` moved into ``cluster.sops.yaml``."""
    label = paths.rel(path)
    secrets_label = paths.rel(paths.secrets_config)
    if not paths.secrets_config.is_file():
        raise UserError(f"{secrets_label} not found — run `inv init` to create it, then this again")
    text = read_text(path, label)
    config = YAML(typ="safe", pure=True).load(text) or {}
    moving = {key: config[key] for key in scan.CONFIG_SECRETS.get(label, ()) if config.get(key) is not None}
    if not moving:
        return f"{label}: no secret to move"
    require_keys(paths, [paths.secrets_config])
    command = Command(
        tuple(plain_decrypt_argv(secrets_label)), cwd=paths.root, deadline=SOPS_DEADLINE, what=secrets_label
    )
    outcome = run_one(command, paths=paths)
    if not outcome.ok:
        reason = outcome.problem if outcome.limit else outcome.stderr
        raise UserError(explain_sops_error(paths, secrets_label, reason))
    secrets = load_documents(outcome.stdout, "yaml")[0]
    clashes = [key for key, value in moving.items() if key in secrets and secrets[key] != value]
    if clashes:
        raise UserError(
            f"{label}: {', '.join(clashes)}: {secrets_label} holds a different value — delete the key from "
            f"{label} once you know which one is right (configure uses the one in {secrets_label})"
        )
    files: dict[Path, str | None] = {}
    if any(key not in secrets for key in moving):
        for key, value in moving.items():
            secrets[key] = value
        files[paths.secrets_config] = encrypt_checked(paths, secrets_label, dump_documents([secrets], "yaml"))
    files[path] = without_keys(text, set(moving))
    write(paths, files)
    return f"moved {', '.join(moving)} from {label} into {secrets_label} (encrypted)"


def without_keys(text: str, keys: set[str]) -> str:
    """``text`` without the top-level ``keys`` (their lines, value included); every other
    line, comments and formatting as they were."""
    lines = text.splitlines(keepends=True)
    drop: set[int] = set()
    for document in structure.compose(text)[:1]:
        for key, value in document.value if document.id == "mapping" else []:
            if structure.scalar(key) in keys:
                end = value.end_mark.line - (
                    1 if value.end_mark.column == 0 and value.end_mark.line > key.start_mark.line else 0
                )
                drop.update(range(key.start_mark.line, max(end, key.start_mark.line) + 1))
    return "".join(line for number, line in enumerate(lines) if number not in drop)
