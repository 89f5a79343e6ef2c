"""``inv sops.*``: encrypt, decrypt, edit, check and rotate the repository's secrets.

Plaintext never touches the disk on our side: it travels between sops and these tasks
through pipes and is held in memory only. Files are written through the repository's one
swap (:mod:`tasks.lib.swap`): all of them or none, so an interrupted ``encrypt`` or
``rotate`` leaves every file as it was or every file re-encrypted. Only files inside the
repository are read or written: a path or symlink leading out of it is refused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context

from tasks.lib.boundary import inside, path_argument
from tasks.lib.errors import UserError
from tasks.lib.files import memory_dir, private_scratch, read_text
from tasks.lib.paths import Paths, paths_for
from tasks.lib.secrets.sopsfile import (
    decrypt_argv,
    decrypt_stdin_argv,
    encrypt_argv,
    encryption_state,
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
    inside the repository and the file exists there, else to the repository root. It must
    stay inside the repository (symlinks followed), or it is refused with one line."""
    given = Path(name)
    if not given.is_absolute():
        cwd = Path.cwd().resolve()
        here = cwd / given
        within = cwd == paths.root or paths.root in cwd.parents
        given = here if within and here.exists() else paths.root / given
    return inside(paths.root, given, name)


def repository_sops_files(paths: Paths) -> list[Path]:
    """Every ``*.sops.*`` file of the repository; one leading out of it (a symlink) is
    refused with one line, never read or written through."""
    from tasks.lib.secrets.scan import sops_files

    return [inside(paths.root, path) for path in sops_files(paths.root)]


def write(paths: Paths, task: str, files: dict[Path, str]) -> None:
    """Replace ``files`` all or none, through the repository's one swap."""
    from tasks.lib import swap  # the writer: not loaded for `inv --list`

    changes = [swap.Change(path, text.encode()) for path, text in files.items()]
    swap.write_files(paths.root, changes, task, key_dirs=paths.key_dirs)


def rel(paths: Paths, path: Path) -> str:
    return paths.rel(path)


def require_encrypted(target: Path, label: str) -> None:
    """Stop unless ``target`` is a completely encrypted sops file (by sops's own rules)."""
    state = encryption_state(read_text(target, label), label)
    if state == "plain":
        raise UserError(f"{label}: not encrypted — run `inv sops.encrypt --path {label}` first")
    if state == "partial":
        raise UserError(
            f"{label}: plaintext values among its ciphertext (`inv sops.check` names them) — "
            f"`inv sops.encrypt --path {label}` re-encrypts it"
        )


def require_sops_config(paths: Paths) -> None:
    if not paths.sops_config.exists():
        raise UserError(f"{rel(paths, paths.sops_config)} not found — run `inv configure` to render it")


def run_sops_batch(
    paths: Paths, jobs: Sequence[tuple[list[str], bytes | None]], labels: list[str], extra_key: str = ""
) -> list[str]:
    """Run sops jobs in parallel from the repository root; returns their stdout in order,
    or stops with one line per failure (what to do, never sops' wall of text)."""
    from tasks.lib.secrets.recipients import explain_sops_error

    env = {"SOPS_AGE_KEY": extra_key} if extra_key else {}
    commands = [Command(tuple(argv), stdin=stdin, cwd=paths.root, env=env) for argv, stdin in jobs]
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
    help={
        "path": "a file the secret guard flagged (repeat for more); default: every *.sops.* file "
        "that is not completely encrypted"
    },
)
def encrypt(c: Context, path: list[str] | None = None) -> None:
    """Encrypt what `inv sops.check` flags, following .sops.yaml (idempotent).

    A plaintext *.sops.* file is encrypted in place; one with plaintext values among its
    ciphertext is decrypted and encrypted whole again; a plaintext Secret in another YAML or
    JSON file becomes NAME.sops.yaml (its kustomization updated); cluster.yaml's
    cloudflare_token moves into cluster.sops.yaml. Plaintext never touches the disk.
    """
    from tasks.lib.secrets import fixes
    from tasks.lib.secrets.scan import ENCRYPT, MOVE, REENCRYPT, RENAME, check_text

    paths = paths_for(c)
    targets = encrypt_targets(paths, path or [])
    plans: list[tuple[Path, str]] = []
    for target in targets:
        actions = {f.action for f in check_text(paths.root, rel(paths, target)) if f.action}
        action = next((a for a in (MOVE, RENAME, ENCRYPT, REENCRYPT) if a in actions), "")
        if action:
            plans.append((target, action))
        elif path and not is_sops_name(target) and target.name not in CONFIG_FILES:
            raise UserError(
                f"{rel(paths, target)}: not a *.sops.* file and no plaintext Secret in it — "
                "nothing to encrypt"
            )
    if not plans:
        print(f"nothing to encrypt: {len(targets)} file(s), no plaintext secret")
        return
    require_sops_config(paths)
    require(c, "sops")
    if is_dry(c):
        for target, action in plans:
            print(f"would {DRY_WORDS[action]} {rel(paths, target)}")
        return
    for target, action in plans:
        if action == ENCRYPT:
            print(encrypt_in_place(paths, target))
        elif action == REENCRYPT:
            print(fixes.reencrypt(paths, target))
        elif action == RENAME:
            print(fixes.encrypt_secret_file(paths, target))
        else:
            print(fixes.move_config_secrets(paths, target))


#: What --dry says each fix would do.
DRY_WORDS = {
    "encrypt": "encrypt",
    "reencrypt": "decrypt and encrypt whole again",
    "rename": "encrypt into *.sops.yaml (and update its kustomization)",
    "move": "move the secret into cluster.sops.yaml from",
}
#: Plaintext configs whose secret keys `sops.encrypt` moves into cluster.sops.yaml.
CONFIG_FILES = ("cluster.yaml", "nodes.yaml")


def encrypt_targets(paths: Paths, given: Sequence[str]) -> list[Path]:
    """The files named on the command line (each must exist), or every ``*.sops.*`` file of
    the repository when none are."""
    if not given:
        return repository_sops_files(paths)
    targets: list[Path] = []
    problems: list[str] = []
    for name in given:
        target = resolve(paths, name)
        if not target.is_file():
            problems.append(f"{name}: no such file")
        else:
            targets.append(target)
    if problems:
        raise UserError(*problems)
    return targets


def encrypt_in_place(paths: Paths, target: Path) -> str:
    """A plaintext ``*.sops.*`` file encrypted where it is."""
    from tasks.lib.secrets import fixes

    label = rel(paths, target)
    ciphertext = fixes.encrypt_checked(paths, label, read_text(target, label))
    write(paths, "sops.encrypt", {target: ciphertext})
    return f"encrypted {label}"


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
    require_encrypted(target, label)
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
    a copy left by a run killed outright is removed by the next edit (each edit has its
    own). Without a terminal, a file that does not load goes back to the editor twice at
    most, then the edit stops and the file is unchanged.
    """
    from tasks.lib.secrets import editing
    from tasks.lib.secrets.recipients import require_keys

    paths = paths_for(c)
    target = resolve(paths, path)
    label = rel(paths, target)
    if not is_sops_name(target):
        raise UserError(f"{path}: not a *.sops.* file — secrets live in files named *.sops.*")
    if target.is_dir():
        raise UserError(f"{path}: is a directory — name a *.sops.* file")
    if target.exists():
        require_encrypted(target, label)
        require_keys(paths, [target])
    else:
        require_sops_config(paths)
    require(c, "sops")
    argv = ["sops", "edit", path_argument(label)]
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
        # The one command outside the runner (see tasks.lib.secrets.editing).
        session = editing.edit([exe, *argv[1:]], paths.root, env, terminal=sys.stdin.isatty())
    if session.stopped:
        raise UserError(f"{label}: {session.stopped}; the file is unchanged")
    if session.returncode not in (0, SOPS_UNCHANGED):
        raise UserError(f"{label}: sops edit failed (exit {session.returncode}); the file is unchanged")
    if session.returncode == SOPS_UNCHANGED:
        print(f"{label}: unchanged")


@task
def check(c: Context) -> None:
    """Fail on any plaintext secret in the repository, naming file, line and the fix.

    Checks every file git tracks or would add, except the test data .gitleaks.toml names:
    *.sops.* files are encrypted by sops's own rules (every value their rule encrypts is
    ciphertext, the MAC present); a Kubernetes Secret with data/stringData is encrypted, in
    any YAML or JSON shape; cluster.yaml holds no key of cluster.sops.yaml; and gitleaks
    finds no token or key in any file. The pre-commit hook and CI run exactly this check.
    Without gitleaks installed the token and key check is skipped with a warning on a
    workstation, and is an error in CI (where the CI variable is set).
    """
    from tasks.lib.secrets.scan import (
        check_repository,
        exclusions,
        in_scope,
        repository_files,
        warn_on_stderr,
    )

    paths = paths_for(c)
    warnings: list[str] = []

    def warn(line: str) -> None:
        warnings.append(line)
        warn_on_stderr(line)

    findings = check_repository(paths.root, warn)
    if findings:
        raise UserError(*(str(f) for f in findings))
    excluded = exclusions(paths.root)
    files = repository_files(paths.root)
    checked = [name for name in files if in_scope(name, excluded)]
    encrypted = [name for name in checked if is_sops_name(name)]
    scope = "no token or key check: gitleaks missing" if warnings else "no plaintext secret"
    print(
        f"ok: {len(checked)} files checked, {scope} ({len(encrypted)} *.sops.* file(s) "
        f"encrypted; {len(files) - len(checked)} test-data file(s) named in .gitleaks.toml left out)"
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

    paths = paths_for(c)
    require_sops_config(paths)
    extra = [Path(old_key).expanduser().absolute()] if old_key else []  # a key file: anywhere
    for key_file in extra:
        if not key_file.is_file():
            raise UserError(f"{old_key}: no such key file")
        if "AGE-SECRET-KEY-" not in read_text(key_file, old_key, "give the old age key file"):
            raise UserError(f"{old_key}: no AGE-SECRET-KEY line — is this an age key file?")
    files = [p for p in repository_sops_files(paths) if is_encrypted_text(read_text(p, rel(paths, p)))]
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
    jobs = [(encrypt_argv(label), text.encode()) for label, text in zip(labels, before, strict=True)]
    rotated = run_sops_batch(paths, jobs, labels)
    # Verify with the current key alone: the old one must no longer be needed.
    verify = [(decrypt_stdin_argv(label), text.encode()) for label, text in zip(labels, rotated, strict=True)]
    after = run_sops_batch(paths, verify, labels, extra_key=os.environ.get("SOPS_AGE_KEY") or " ")
    changed = [label for label, old, new in zip(labels, before, after, strict=True) if old != new]
    if changed:
        raise UserError(
            *(f"{label}: decrypts differently after rotation — nothing written" for label in changed)
        )
    write(paths, "sops.rotate", dict(zip(files, rotated, strict=True)))
    for label in labels:
        print(f"rotated {label}")
    print(f"{len(files)} file(s) re-encrypted and verified")


ns = Collection("sops")
for _task in (encrypt, decrypt, edit, check, rotate):
    ns.add_task(_task)
