"""``inv sops.*``: encrypt, decrypt, edit, check and rotate the repository's secrets.

Plaintext never touches the disk on our side: it travels between sops and these tasks
through pipes and is held in memory only; every file is replaced atomically (temporary
file in the same directory, then ``os.replace``), so an interrupted task leaves each file
either as it was or fully re-encrypted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context

from tasks.lib.errors import UserError
from tasks.lib.files import memory_dir, private_scratch, read_text, write_atomically
from tasks.lib.paths import Paths, paths_for
from tasks.lib.secrets.sopsfile import (
    decrypt_argv,
    decrypt_stdin_argv,
    encrypt_argv,
    is_encrypted_text,
    is_sops_name,
)
from tasks.lib.taskdef import task
from tasks.lib.tools.runner import (
    Command,
    command_env,
    command_line,
    find_tool,
    is_dry,
    require,
    run,
    run_many,
)

#: ``sops edit`` exits with this code when the file was saved without changes.
SOPS_UNCHANGED = 200
#: The private directories that hold ``sops edit``'s plaintext copy while the editor runs.
EDIT_SCRATCH = "home-ops-sops-edit-"


# --------------------------------------------------------------------------- helpers


def resolve(paths: Paths, name: str) -> Path:
    """A path given on the command line: relative to the working directory when that lies
    inside the repository and the file exists there, else to the repository root."""
    given = Path(name)
    if given.is_absolute():
        return given
    cwd = Path.cwd().resolve()
    here = cwd / given
    inside = cwd == paths.root or paths.root in cwd.parents
    return here if inside and here.exists() else paths.root / given


def rel(paths: Paths, path: Path) -> str:
    return paths.rel(path)


def sops_targets(paths: Paths, given: Sequence[str]) -> list[Path]:
    """The files named on the command line (each must exist and be a ``*.sops.*`` file),
    or every ``*.sops.*`` file of the repository when none are."""
    from tasks.lib.secrets.scan import sops_files

    if not given:
        return list(sops_files(paths.root))
    targets: list[Path] = []
    problems: list[str] = []
    for name in given:
        path = resolve(paths, name)
        if not path.is_file():
            problems.append(f"{name}: no such file")
        elif not is_sops_name(path):
            problems.append(f"{name}: not a *.sops.* file — only files named *.sops.* are encrypted")
        else:
            targets.append(path)
    if problems:
        raise UserError(*problems)
    return targets


def require_sops_config(paths: Paths) -> None:
    if not paths.sops_config.exists():
        raise UserError(f"{rel(paths, paths.sops_config)} not found — run `inv configure` to render it")


def run_sops_batch(
    paths: Paths, jobs: Sequence[tuple[list[str], str | None]], labels: list[str], extra_key: str = ""
) -> list[str]:
    """Run sops jobs in parallel from the repository root; returns their stdout in order,
    or stops with one line per failure (what to do, never sops' wall of text)."""
    from tasks.lib.secrets.recipients import explain_sops_error

    env = {"SOPS_AGE_KEY": extra_key} if extra_key else {}
    commands = [
        Command(tuple(argv), stdin=stdin.encode() if stdin is not None else None, cwd=paths.root, env=env)
        for argv, stdin in jobs
    ]
    outcomes = run_many(commands, paths=paths)
    failures = [
        explain_sops_error(paths, label, outcome.problem if outcome.limit else outcome.stderr)
        for label, outcome in zip(labels, outcomes, strict=True)
        if not outcome.ok
    ]
    if failures:
        raise UserError(*failures)
    return [outcome.stdout for outcome in outcomes]


# --------------------------------------------------------------------------- tasks


@task(
    iterable=["path"],
    help={"path": "a *.sops.* file to encrypt (repeat for more); default: every one that is not encrypted"},
)
def encrypt(c: Context, path: list[str] | None = None) -> None:
    """Encrypt *.sops.* files in place, following the rules of .sops.yaml (idempotent)."""
    paths = paths_for(c)
    targets = sops_targets(paths, path or [])
    plain = [(p, read_text(p, rel(paths, p))) for p in targets]
    plain = [(p, text) for p, text in plain if text.strip() and not is_encrypted_text(text)]
    if not plain:
        print(f"nothing to encrypt: {len(targets)} *.sops.* file(s), all encrypted")
        return
    require_sops_config(paths)
    require(c, "sops")
    labels = [rel(paths, p) for p, _ in plain]
    if is_dry(c):
        for label in labels:
            print(f"{command_line(encrypt_argv(label))} < {label}  # then replaces {label}")
        return
    jobs: list[tuple[list[str], str | None]] = [
        (encrypt_argv(label), text) for label, (_, text) in zip(labels, plain, strict=True)
    ]
    outputs = run_sops_batch(paths, jobs, labels)
    for (target, _), label, ciphertext in zip(plain, labels, outputs, strict=True):
        if not is_encrypted_text(ciphertext):
            raise UserError(f"{label}: sops returned no encrypted values — check its rule in .sops.yaml")
        write_atomically(target, ciphertext)
        print(f"encrypted {label}")


@task(positional=["path"], help={"path": "the encrypted file to print, e.g. cluster.sops.yaml"})
def decrypt(c: Context, path: str) -> None:
    """Print the decrypted content of a SOPS file to stdout (never to a file)."""
    from tasks.lib.secrets.recipients import explain_sops_error, require_keys

    paths = paths_for(c)
    target = resolve(paths, path)
    label = rel(paths, target)
    if target.is_dir():
        raise UserError(f"{path}: is a directory — name a file, e.g. `inv sops.decrypt cluster.sops.yaml`")
    if not target.is_file():
        raise UserError(f"{path}: no such file")
    if not is_encrypted_text(read_text(target, label)):
        raise UserError(f"{label}: not encrypted — nothing to decrypt (`inv sops.encrypt --path {label}`)")
    require_keys(paths, [target])
    require(c, "sops")
    result = run(c, decrypt_argv(label), cwd=paths.root, check=False)
    if result.failed:
        raise UserError(explain_sops_error(paths, label, result.problem if result.limit else result.stderr))
    sys.stdout.write(result.stdout)


@task(positional=["path"], help={"path": "the SOPS file to edit (created when it does not exist)"})
def edit(c: Context, path: str) -> None:
    """Edit a SOPS file in $EDITOR; it is re-encrypted on save and never plaintext in the repo.

    An editor needs a file, so this is the one task where plaintext touches one: sops writes
    the decrypted copy into a private directory (mode 0700, memory-backed where the system
    has one, outside the repository) that is removed when the edit ends, however it ends;
    a copy left by a run killed outright is removed by the next edit.
    """
    from tasks.lib.secrets.recipients import require_keys

    paths = paths_for(c)
    target = resolve(paths, path)
    label = rel(paths, target)
    if not is_sops_name(target):
        raise UserError(f"{path}: not a *.sops.* file — secrets live in files named *.sops.*")
    if target.is_dir():
        raise UserError(f"{path}: is a directory — name a *.sops.* file")
    if target.exists():
        if not is_encrypted_text(read_text(target, label)):
            raise UserError(f"{label}: not encrypted — run `inv sops.encrypt --path {label}` first")
        require_keys(paths, [target])
    else:
        require_sops_config(paths)
    require(c, "sops")
    argv = ["sops", "edit", label]
    if is_dry(c):
        print(command_line(argv))
        return
    exe = find_tool("sops") or "sops"
    # An editor needs a file: sops writes the plaintext to a temporary file for it. That
    # file goes into a private directory of ours (memory-backed where the system has one),
    # which is removed when the edit ends, however it ends (Ctrl-C, SIGTERM, SIGHUP); one
    # left by a run killed outright is removed by the next edit.
    with private_scratch(EDIT_SCRATCH, memory_dir()) as scratch:
        env = {**os.environ, **command_env(paths), "TMPDIR": str(scratch)}
        # The one command outside the runner: the editor sops starts needs the terminal
        # itself (its stdin, stdout and stderr), which the runner never hands to a tool.
        completed = subprocess.run([exe, *argv[1:]], cwd=paths.root, env=env, check=False)
    if completed.returncode not in (0, SOPS_UNCHANGED):
        raise UserError(f"{label}: sops edit failed (exit {completed.returncode}); the file is unchanged")
    if completed.returncode == SOPS_UNCHANGED:
        print(f"{label}: unchanged")


@task
def check(c: Context) -> None:
    """Fail on any plaintext secret in the repository, naming file and line.

    Every file git tracks (or would add) is checked: *.sops.* files must be encrypted; a
    Kubernetes Secret with data/stringData must be in a sops-encrypted file; no file may
    hold a GitHub, GitLab, Slack or AWS token, a private key block or an age secret key;
    cluster.yaml and nodes.yaml must hold no secret at all. A reviewed exception carries
    the comment `secret-guard: allow` on its line.
    """
    from tasks.lib.secrets.scan import PLAINTEXT_CONFIGS, check_repository, repository_files, sops_files

    paths = paths_for(c)
    findings = check_repository(paths.root)
    if findings:
        raise UserError(*(str(f) for f in findings))
    count = sum(1 for _ in sops_files(paths.root))
    scanned = len(repository_files(paths.root))
    print(
        f"ok: {scanned} files scanned, no plaintext secret; {count} *.sops.* file(s) encrypted; "
        f"no secrets in {' or '.join(PLAINTEXT_CONFIGS)}"
    )


@task(
    help={
        "old_key": "an age key file that can still decrypt the files (e.g. the previous age.key)",
    }
)
def rotate(c: Context, old_key: str | None = None) -> None:
    """Re-encrypt every secret to the recipients of .sops.yaml, verified before and after.

    Every encrypted *.sops.* file is decrypted in memory (with --old-key too, after a key
    change), re-encrypted following .sops.yaml, decrypted again with the current key alone
    and compared; only when every file passes is anything written.
    """
    from tasks.lib.secrets.recipients import available_identities, creation_rule_recipients, key_problem
    from tasks.lib.secrets.scan import sops_files

    paths = paths_for(c)
    require_sops_config(paths)
    extra = [resolve(paths, old_key)] if old_key else []
    for key_file in extra:
        if not key_file.is_file():
            raise UserError(f"{old_key}: no such key file")
        if "AGE-SECRET-KEY-" not in read_text(key_file, old_key, "give the old age key file"):
            raise UserError(f"{old_key}: no AGE-SECRET-KEY line — is this an age key file?")
    files = [p for p in sops_files(paths.root) if is_encrypted_text(read_text(p, rel(paths, p)))]
    if not files:
        print("nothing to rotate: no encrypted *.sops.* file")
        return
    labels = [rel(paths, p) for p in files]
    identities = available_identities(paths, extra)
    current = available_identities(paths).public_keys
    problems = [line for p in files if (line := key_problem(paths, p, identities)) is not None]
    for label in labels:
        recipients = creation_rule_recipients(paths.sops_config, label)
        if recipients is None:
            problems.append(f"{label}: no rule in .sops.yaml matches this file — run `inv configure`")
        elif not set(recipients) & set(current):
            problems.append(
                f"{label}: .sops.yaml encrypts it to {', '.join(recipients)}, not to the key in "
                f"{rel(paths, paths.age_key)} — rotating would lock you out; render .sops.yaml for "
                "your key first (`inv configure`)"
            )
    if problems:
        raise UserError(*problems)
    require(c, "sops")
    if is_dry(c):
        for label in labels:
            decrypt_line, encrypt_line = command_line(decrypt_argv(label)), command_line(encrypt_argv(label))
            print(f"{decrypt_line} | {encrypt_line}  # verified, then replaces {label}")
        return
    old_identities = "\n".join(identities.secret_keys)
    before = run_sops_batch(paths, [(decrypt_argv(label), None) for label in labels], labels, old_identities)
    jobs: list[tuple[list[str], str | None]] = [
        (encrypt_argv(label), text) for label, text in zip(labels, before, strict=True)
    ]
    rotated = run_sops_batch(paths, jobs, labels)
    # Verify with the current key alone: the old one must no longer be needed.
    verify: list[tuple[list[str], str | None]] = [
        (decrypt_stdin_argv(label), text) for label, text in zip(labels, rotated, strict=True)
    ]
    after = run_sops_batch(paths, verify, labels, extra_key=os.environ.get("SOPS_AGE_KEY") or " ")
    changed = [label for label, old, new in zip(labels, before, after, strict=True) if old != new]
    if changed:
        raise UserError(
            *(f"{label}: decrypts differently after rotation — nothing written" for label in changed)
        )
    for path, label, ciphertext in zip(files, labels, rotated, strict=True):
        write_atomically(path, ciphertext)
        print(f"rotated {label}")
    print(f"{len(files)} file(s) re-encrypted and verified")


ns = Collection("sops")
for _task in (encrypt, decrypt, edit, check, rotate):
    ns.add_task(_task)
