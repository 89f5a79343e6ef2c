"""The ``configure`` pipeline: config -> render -> encrypt -> validate -> swap in.

Nothing touches the repository until every step has passed, and no plaintext secret is
ever written to any file, memory-backed ones included: the secret templates are rendered
into memory and handed to sops on stdin, and everything that needs files (the YAML checks,
kustomize, the swap) works on the ciphertext, which kustomize builds just as well. The rest
is rendered into a private staging directory outside the repository, validated there, and
swapped into the work tree all or nothing (see :mod:`tasks.lib.config.swap`), one run at a
time. A failure, Ctrl-C, SIGTERM or SIGHUP leaves the tree as it was; SIGKILL or power loss
in the middle of the swap is finished by the next run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tasks.lib.config.blame import explain_rendered_error
from tasks.lib.config.checks import load_config
from tasks.lib.config.schema import ClusterConfig
from tasks.lib.config.template_context import OperatorFiles, RenderContext, build_context, read_operator_files
from tasks.lib.errors import Interrupted, UserError, signals_deferred
from tasks.lib.files import memory_dir, private_scratch
from tasks.lib.paths import Paths
from tasks.lib.secrets.keys import age_recipients_of
from tasks.lib.secrets.sopsfile import decrypt_argv, encrypt_argv, is_encrypted_text, is_sops_name
from tasks.lib.tools.kustomize import kustomize_argv
from tasks.lib.tools.runner import Outcome, find_tool, redact, register_secrets, run_many

from . import manifest as mf
from . import swap

#: Files whose bytes decide what a render produces (besides templates/ and the operator's
#: key material, which are added separately).
RENDER_INPUT_FILES = ("cluster.yaml", "nodes.yaml", "cluster.sops.yaml", "makejinja.toml")
RENDER_CODE = (
    "tasks/lib/config/schema.py",
    "tasks/lib/config/constraints.py",
    "tasks/lib/config/network.py",
    "tasks/lib/config/document.py",
    "tasks/lib/config/checks.py",
    "tasks/lib/config/template_context.py",
    "tasks/lib/config/render.py",
)

Say = Callable[[str], None]


@dataclass
class Options:
    force: bool = False
    check: bool = False
    dry: bool = False
    say: Say = print


@dataclass
class Staged:
    """The staged render: relative path -> bytes, with the secrets already encrypted."""

    files: dict[str, bytes]
    secrets: dict[str, str]  # relative path -> HMAC of its plaintext
    encrypted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


@dataclass
class Plan:
    write: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    hand_edited: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # exist, but configure never wrote them

    @property
    def conflicts(self) -> list[str]:
        return sorted(self.hand_edited + self.foreign)

    @property
    def changes(self) -> list[str]:
        return sorted(self.write + self.remove)


@dataclass
class Summary:
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    encrypted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    up_to_date: bool = False


# --------------------------------------------------------------------------- staging


def staging_parent() -> str | None:
    """A memory-backed temp directory when the system has one (the staging directory holds
    no secret, but it is scratch); else the system temp directory. Never inside the
    repository."""
    return memory_dir()


STAGING_PREFIX = "home-ops-configure-"

#: The earlier name of :func:`tasks.lib.errors.signals_deferred` (now also SIGTERM/SIGHUP).
interrupts_deferred = signals_deferred


@contextlib.contextmanager
def staging_dir() -> Iterator[Path]:
    with private_scratch(STAGING_PREFIX, staging_parent()) as path:
        yield path


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- secrets


def sops_decrypt(paths: Paths) -> Callable[[Path], str]:
    """A decrypt function for :func:`build_context` (plaintext to memory only)."""

    def decrypt(path: Path) -> str:
        (outcome,) = run_many([(decrypt_argv(str(path)), None)], paths=paths)
        if not outcome.ok:
            raise UserError(sops_failure(paths.rel(path), "decrypt", outcome))
        return outcome.stdout.decode()

    return decrypt


#: What sops prints when none of the operator's keys fits a file.
NO_KEY_MARKERS = ("no identity matched", "no master key was able to decrypt", "0 successful groups required")


def sops_failure(label: str, action: str, outcome: Outcome) -> str:
    text = outcome.error_text.strip()
    lines = text.splitlines()
    reason = lines[-1] if lines else f"exit {outcome.returncode}"
    if any(marker in text for marker in NO_KEY_MARKERS):
        reason = "no key in the age key file can decrypt it (wrong or missing age key; see `inv init`)"
    return f"{label}: sops could not {action} it: {reason}"


def same_yaml(first: bytes, second: bytes) -> bool:
    """Whether two YAML texts hold the same data (sops re-serialises what it decrypts)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="safe", pure=True)
    try:
        return list(yaml.load_all(first)) == list(yaml.load_all(second))
    except YAMLError:
        return first == second


@dataclass
class Encrypted:
    """What :func:`encrypt_staged` decided for each secret."""

    ciphertexts: dict[str, bytes]  # relative path -> the bytes to write
    digests: dict[str, str]  # relative path -> keyed digest of the plaintext
    encrypted: list[str]
    kept: list[str]


def encrypt_staged(
    paths: Paths,
    sops_config: Path,
    plaintexts: dict[str, bytes],
    context: RenderContext,
    manifest: mf.Manifest,
    key: bytes,
) -> Encrypted:
    """Encrypt every rendered secret (``plaintexts``: relative path -> plaintext, in memory),
    in parallel, feeding sops on stdin and writing nothing.

    A secret whose plaintext is unchanged keeps the ciphertext already in the tree, known
    either from the manifest's keyed digest (no sops call at all) or by decrypting the
    tree's copy and comparing; only a secret that changed gets new ciphertext."""
    names = sorted(plaintexts)
    digests = {name: mf.keyed_digest(key, plaintexts[name]) for name in names}
    recipient = context.data.get("age_public_key")
    kept: list[str] = []
    to_compare: list[str] = []
    for name in names:
        current = paths.root / name
        if not current.is_file() or age_recipients_of(current) != [recipient]:
            continue
        entry = manifest.files.get(name)
        if entry and entry.plaintext == digests[name] and entry.sha256 == mf.sha256(current.read_bytes()):
            kept.append(name)
        elif is_encrypted_text(current.read_text(errors="replace")):
            to_compare.append(name)
    outcomes = run_many([(decrypt_argv(str(paths.root / n)), None) for n in to_compare], paths=paths)
    kept += [
        n for n, o in zip(to_compare, outcomes, strict=True) if o.ok and same_yaml(o.stdout, plaintexts[n])
    ]
    ciphertexts = {name: (paths.root / name).read_bytes() for name in kept}
    fresh = [name for name in names if name not in kept]
    env = {"SOPS_CONFIG": str(sops_config)}
    outcomes = run_many(
        [(encrypt_argv(n), plaintexts[n]) for n in fresh], cwd=sops_config.parent, paths=paths, env=env
    )
    failures = [sops_failure(n, "encrypt", o) for n, o in zip(fresh, outcomes, strict=True) if not o.ok]
    if failures:
        raise UserError(*(redact(line, context.secret_values) for line in failures))
    for name, outcome in zip(fresh, outcomes, strict=True):
        if not is_encrypted_text(outcome.stdout.decode(errors="replace")):
            raise UserError(f"{name}: sops returned it unencrypted — does .sops.yaml have a rule for it?")
        ciphertexts[name] = outcome.stdout
    return Encrypted(ciphertexts, digests, sorted(fresh), sorted(kept))


# --------------------------------------------------------------------------- validation


def kustomization_dirs(out: Path) -> list[str]:
    names = ("kustomization.yaml", "kustomization.yml", "Kustomization")
    return sorted({str(p.parent.relative_to(out)) for n in names for p in out.rglob(n)})


def is_component(out: Path, directory: str) -> bool:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        path = out / directory / name
        if path.is_file():
            return any(line.strip() == "kind: Component" for line in path.read_text().splitlines())
    return False


def combined_root(out: Path, dirs: Sequence[str], root: Path) -> Path:
    """One kustomization that builds every directory at once, so a single kustomize process
    does what one process per directory would. Each directory sits in a wrapper with its
    own ``namePrefix`` (so equal names in different directories cannot collide); a
    Component is built the way one is used, through ``components:``."""
    root.mkdir()
    wrappers = []
    for index, directory in enumerate(dirs):
        wrapper = root / f"d{index:04d}"
        wrapper.mkdir()
        target = os.path.relpath(out / directory, wrapper)
        if is_component(out, directory):
            body = f"components:\n  - {target}\n"
        else:
            body = f"namePrefix: v{index:04d}-\nresources:\n  - {target}\n"
        (wrapper / "kustomization.yaml").write_text(
            f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n{body}"
        )
        wrappers.append(wrapper.name)
    (root / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
        + "".join(f"  - {name}\n" for name in wrappers)
    )
    return root


def kustomize_problems(paths: Paths, out: Path, dirs: Sequence[str]) -> list[str]:
    """Build every kustomization directory: all in one kustomize run; only when that fails,
    each directory on its own (in parallel) to say exactly which ones are broken."""
    if not dirs:
        return []
    root = combined_root(out, dirs, out.parent / "validate")
    try:
        (combined,) = run_many([(kustomize_argv(str(root)), None)], cwd=out, paths=paths)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if combined.ok:
        return []
    problems = []
    outcomes = run_many([(kustomize_argv(d), None) for d in dirs], cwd=out, paths=paths)
    for directory, outcome in zip(dirs, outcomes, strict=True):
        if not outcome.ok:
            problems.append(f"{directory}: kustomize build failed: {last_line(outcome)}")
    return problems or [f"kustomize build of all directories together failed: {last_line(combined)}"]


def last_line(outcome: Outcome) -> str:
    """The last line a failing tool printed, secrets masked (a tool may echo its input)."""
    lines = outcome.error_text.strip().splitlines()
    return lines[-1] if lines else f"exit {outcome.returncode}"


def yaml_problems(out: Path, config: ClusterConfig | None = None) -> list[str]:
    """Every rendered YAML file must parse (libyaml's C parser: fast, with positions).
    With ``config``, a problem also names the cluster.yaml/nodes.yaml key behind it."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    problems = []
    for path in sorted(out.rglob("*.y*ml")):
        try:
            for _ in yaml.load_all(path.read_bytes(), Loader=loader):
                pass
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark
            where = f"{path.relative_to(out)}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
            cause = ""
            if config is not None and mark is not None:
                first = error.context_mark.line + 1 if error.context_mark else None
                cause = explain_rendered_error(config, path.read_text(errors="replace"), mark.line + 1, first)
            problems.append(f"{where}: rendered YAML does not parse: {error.problem}{cause}")
        except yaml.YAMLError as error:
            problems.append(f"{path.relative_to(out)}: rendered YAML does not parse: {error}")
    return problems


def validate_staged(paths: Paths, out: Path, say: Say, config: ClusterConfig | None = None) -> None:
    """YAML-parse every file, build every kustomization and, when talhelper is installed,
    validate the Talos config. Every problem is reported, then we stop."""
    dirs = kustomization_dirs(out)
    with ThreadPoolExecutor(max_workers=1) as pool:
        building = pool.submit(kustomize_problems, paths, out, dirs)  # kustomize runs meanwhile
        problems = yaml_problems(out, config)
        problems += building.result()
    talos = out / "talos"
    note = ""
    if (talos / "talconfig.yaml").is_file() and find_tool("talhelper"):
        argv = ["talhelper", "validate", "talconfig", "talconfig.yaml", "--env-file", "talenv.yaml"]
        (outcome,) = run_many([(argv, None)], cwd=talos, paths=paths)
        if not outcome.ok:
            problems.append(f"talos/talconfig.yaml: talhelper validate failed: {last_line(outcome)}")
    elif (talos / "talconfig.yaml").is_file():
        note = (
            "; talos/talconfig.yaml NOT validated: talhelper is not installed "
            "(`inv doctor --install` builds it, or `mise install`)"
        )
    if problems:
        raise UserError("the rendered tree does not validate; nothing was written:", *problems)
    say(f"validated {len(dirs)} kustomizations and every YAML file{note}")


# --------------------------------------------------------------------------- plan and swap


def make_plan(root: Path, staged: dict[str, bytes], manifest: mf.Manifest, owned: str = "") -> Plan:
    """Compare the staged files with the tree. ``owned`` (the manifest itself) is always
    configure's to write."""
    plan = Plan()
    for name, content in sorted(staged.items()):
        current = root / name
        if not current.exists():
            plan.write.append(name)
            continue
        existing = current.read_bytes()
        if existing == content:
            plan.unchanged.append(name)
            continue
        plan.write.append(name)
        entry = manifest.files.get(name)
        if name == owned:
            continue
        if entry is None:
            plan.foreign.append(name)
        elif entry.sha256 != mf.sha256(existing):
            plan.hand_edited.append(name)
    for name, entry in sorted(manifest.files.items()):
        if name in staged:
            continue
        current = root / name
        if not current.exists():
            continue
        plan.remove.append(name)
        if entry.sha256 != mf.sha256(current.read_bytes()):
            plan.hand_edited.append(name)
    return plan


# --------------------------------------------------------------------------- the pipeline


def render_inputs(paths: Paths, operator: OperatorFiles) -> tuple[list[Path], list[str]]:
    """Every file and value a render depends on (the key material as values)."""
    files = [paths.root / name for name in (*RENDER_INPUT_FILES, *RENDER_CODE)]
    files += [p for p in paths.templates.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return files, [operator.age_public_key, operator.deploy_key, operator.push_token]


def import_renderer(paths: Paths) -> None:
    """Load makejinja ahead of time (in a background thread). A failure is left for the
    render to report, in the main thread, as one line."""
    from tasks.lib.config.render import makejinja_app

    with contextlib.suppress(UserError):
        makejinja_app(paths)


def guard_plaintext_token(paths: Paths, context: RenderContext) -> None:
    """A Cloudflare token in cluster.yaml (the Taskfile template's habit) is accepted only
    while git ignores cluster.yaml; otherwise it would be committed in plaintext."""
    if not context.config.cluster.get("cloudflare_token") or "cloudflare_token" not in context.data:
        return
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(paths.cluster_config)],
        cwd=paths.root,
        capture_output=True,
        check=False,
    )
    if ignored.returncode != 0:
        raise UserError(
            "cluster.yaml: cloudflare_token: a plaintext secret in a file git would commit — "
            "move it to cluster.sops.yaml (`inv sops.edit cluster.sops.yaml`) and delete it here"
        )


def stage(
    paths: Paths, context: RenderContext, out: Path, manifest: mf.Manifest, key: bytes, say: Say
) -> Staged:
    """Render into ``out``, encrypt the secrets, validate the tree. The secrets are rendered
    into memory first and encrypted (by sops, on the other core, fed on stdin) while the
    rest renders into ``out``; then their ciphertext joins it and the whole tree is
    validated. No plaintext secret is ever in ``out``."""
    from tasks.lib.config.render import render, render_secrets

    rendered = render_secrets(paths, context)
    plaintexts = {name: text.encode() for name, text in rendered.items() if is_sops_name(name)}
    for name, text in rendered.items():
        if not is_sops_name(name):  # .sops.yaml: how to encrypt, not a secret
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(text)
    del rendered
    sops_config = out / ".sops.yaml"
    with ThreadPoolExecutor(max_workers=1) as pool:
        encrypting = pool.submit(encrypt_staged, paths, sops_config, plaintexts, context, manifest, key)
        try:
            files = render(paths, context, out, part="rest")
        finally:
            wait([encrypting])  # never leave while sops still runs
        encrypted = encrypting.result()
    del plaintexts
    for name, ciphertext in encrypted.ciphertexts.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(ciphertext)
    say(f"rendered {len(files) + len(encrypted.ciphertexts)} files")
    validate_staged(paths, out, say, context.config)
    say(f"secrets: {len(encrypted.encrypted)} encrypted, {len(encrypted.kept)} unchanged (ciphertext kept)")
    return Staged(read_tree(out), encrypted.digests, encrypted.encrypted, encrypted.kept)


def new_manifest(staged: Staged, inputs: str) -> mf.Manifest:
    entries = {
        name: mf.Entry(mf.sha256(content), staged.secrets.get(name)) for name, content in staged.files.items()
    }
    return mf.Manifest(entries, inputs)


def is_up_to_date(paths: Paths, manifest: mf.Manifest, inputs: str) -> bool:
    if not manifest.files or manifest.inputs != inputs:
        return False
    for name, entry in manifest.files.items():
        path = paths.root / name
        if not path.is_file() or mf.sha256(path.read_bytes()) != entry.sha256:
            return False
    return True


def configure(paths: Paths, options: Options) -> Summary:
    """Run the whole pipeline under the repository's configure lock; raises
    :class:`UserError` (tree untouched) on any problem. An interrupt says truthfully
    whether the new tree is in place."""
    swapped: list[bool] = []
    try:
        with swap.configure_lock(paths.root, optional=options.check or options.dry):
            settle_interrupted_run(paths, options)
            return run_pipeline(paths, options, swapped)
    except KeyboardInterrupt as error:
        if isinstance(error, Interrupted) and error.message:
            raise
        signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
        message = (
            "the swap had finished: the new tree is in place"
            if swapped
            else "nothing was written: the tree is as it was"
        )
        raise Interrupted(signum, message) from None


def settle_interrupted_run(paths: Paths, options: Options) -> None:
    """Finish what a killed run left behind (its journal, temporary files), before anything
    looks at the tree; ``--check`` and ``--dry`` only say so, they write nothing."""
    if not swap.pending(paths.root):
        if not (options.check or options.dry):
            swap.recover(paths.root, options.say)  # stray temporaries only
        return
    if options.check or options.dry:
        raise UserError(
            "an interrupted configure left its swap unfinished (.configure-journal.json) — "
            "run `inv configure` to finish it"
        )
    swap.recover(paths.root, options.say)


def run_pipeline(paths: Paths, options: Options, swapped: list[bool]) -> Summary:
    say = options.say
    operator = read_operator_files(paths)
    register_secrets([operator.age_key, operator.deploy_key, operator.push_token])
    manifest = mf.Manifest.load(paths.manifest)
    key = mf.secret_key(operator.age_key)
    inputs = mf.inputs_digest(key, *render_inputs(paths, operator))
    if not (options.check or options.force) and is_up_to_date(paths, manifest, inputs):
        # Same inputs as the last (validated) render, and the tree is what it wrote.
        say("nothing changed since the last configure: the tree is up to date")
        return Summary(unchanged=len(manifest.files), up_to_date=True)
    from tasks.lib.config.render import read_settings

    read_settings(paths)  # a broken makejinja.toml: one line now, before anything loads it
    warm = threading.Thread(target=import_renderer, args=(paths,), daemon=True)
    warm.start()  # makejinja loads while the config is validated and sops decrypts the secrets
    config = load_config(paths.cluster_config, paths.nodes_config, paths.root)
    count = len(config.nodes)
    say(f"config: cluster.yaml and nodes.yaml are valid ({count} node{'s' * (count != 1)})")
    context = build_context(paths, sops_decrypt(paths), config, operator)
    register_secrets(context.secret_values)
    warm.join()
    label = paths.rel(paths.secrets_config)
    for placeholder in context.placeholder_keys:
        print(
            f"warning: {label}: {placeholder} still holds a placeholder — `inv sops.edit {label}`",
            file=sys.stderr,
        )
    guard_plaintext_token(paths, context)

    with staging_dir() as staging:
        out = staging / "out"
        out.mkdir()
        staged = stage(paths, context, out, manifest, key, say)
    manifest_name = paths.rel(paths.manifest)
    files = dict(staged.files)
    files[manifest_name] = new_manifest(staged, inputs).dumps().encode()
    plan = make_plan(paths.root, files, manifest, owned=manifest_name)
    if options.check:
        # The inputs digest is a cache key, not output: a stale one is not a difference.
        if manifest_name in plan.write and only_inputs_differ(paths, files[manifest_name]):
            plan.write.remove(manifest_name)
        report_check(paths, plan, files, staged)
        return Summary(unchanged=len(plan.unchanged), encrypted=staged.encrypted, kept=staged.kept)
    if plan.conflicts and not options.force:
        raise UserError(
            "these generated files were changed since configure wrote them; nothing was written:",
            *(
                f"  {name}{' (not written by configure)' if name in plan.foreign else ''}"
                for name in plan.conflicts
            ),
            "move your edits into the templates or the config, or overwrite them: `inv configure --force`",
        )
    if options.dry:
        for name in plan.write:
            say(f"would write {name}")
        for name in plan.remove:
            say(f"would remove {name}")
        return Summary(unchanged=len(plan.unchanged), encrypted=staged.encrypted, kept=staged.kept)
    # The manifest last: until it is in place, the old manifest describes the old files.
    order = sorted(plan.write, key=lambda name: name == manifest_name)
    swap.swap_in(paths.root, files, order, plan.remove)
    swapped.append(True)
    return Summary(plan.write, len(plan.unchanged), plan.remove, staged.encrypted, staged.kept)


def only_inputs_differ(paths: Paths, new_manifest_text: bytes) -> bool:
    import json

    try:
        current = json.loads(paths.manifest.read_text())
        new = json.loads(new_manifest_text)
    except (OSError, ValueError):
        return False
    current.pop("inputs", None)
    new.pop("inputs", None)
    return bool(current == new)


def report_check(paths: Paths, plan: Plan, files: dict[str, bytes], staged: Staged) -> None:
    """Raise when the tree is not what configure would write, with a diff of each file
    (secrets: named only, compared by decrypted content, never printed)."""
    import difflib

    if not plan.changes:
        return
    lines = [f"the tree differs from what configure would write ({len(plan.changes)} files):"]
    for name in plan.write:
        current = paths.root / name
        if is_sops_name(name):
            lines.append(f"  {name}: secret content differs (not shown)")
            continue
        if not current.exists():
            lines.append(f"  {name}: missing")
            continue
        lines.append(f"  {name}: differs")
        before = current.read_text(errors="replace").splitlines(keepends=True)
        after = files[name].decode(errors="replace").splitlines(keepends=True)
        diff = difflib.unified_diff(before, after, f"a/{name}", f"b/{name}")
        lines += [f"    {line.rstrip()}" for line in diff]
    lines += [f"  {name}: would be removed" for name in plan.remove]
    lines.append("run `inv configure` and commit the result")
    raise UserError(*lines)


def describe(summary: Summary) -> str:
    if summary.up_to_date:
        return f"up to date: {summary.unchanged} files unchanged"
    return (
        f"{len(summary.written)} written, {summary.unchanged} unchanged, {len(summary.removed)} removed; "
        f"secrets: {len(summary.encrypted)} encrypted, {len(summary.kept)} kept"
    )
