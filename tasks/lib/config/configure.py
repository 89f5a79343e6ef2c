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
import importlib.util
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
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
from tasks.lib.tools.runner import (
    Command,
    Outcome,
    find_tool,
    redact,
    register_secrets,
    run_many,
    run_one,
    started,
)

from . import manifest as mf
from . import swap

#: Files whose bytes decide what a render produces (besides templates/ and the operator's
#: key material, which are added separately).
RENDER_INPUT_FILES = ("cluster.yaml", "nodes.yaml", "cluster.sops.yaml", "makejinja.toml")
#: The modules whose code decides what a render produces (by module name: a module that
#: moves or is renamed stops configure with a bug line instead of silently dropping out of
#: the digest; a test checks that every module of tasks.lib.config a render loads is listed).
RENDER_CODE = (
    "tasks.lib.config.schema",
    "tasks.lib.config.constraints",
    "tasks.lib.config.network",
    "tasks.lib.config.document",
    "tasks.lib.config.checks",
    "tasks.lib.config.template_context",
    "tasks.lib.config.render",
)


def module_file(name: str) -> Path:
    """The source file of module ``name``, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"configure's render cache names the module {name}, which does not exist")
    return Path(spec.origin)


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
        outcome = run_one(
            Command(tuple(decrypt_argv(str(path))), what=f"decrypting {paths.rel(path)}"), paths=paths
        )
        if not outcome.ok:
            raise UserError(sops_failure(paths.rel(path), "decrypt", outcome))
        return outcome.stdout

    return decrypt


#: What sops prints when none of the operator's keys fits a file.
NO_KEY_MARKERS = ("no identity matched", "no master key was able to decrypt", "0 successful groups required")


def sops_failure(label: str, action: str, outcome: Outcome) -> str:
    if outcome.limit:
        return outcome.problem
    text = outcome.stderr.strip()
    reason = outcome.last_line
    if any(marker in text for marker in NO_KEY_MARKERS):
        reason = "no key in the age key file can decrypt it (wrong or missing age key; see `inv init`)"
    return f"{label}: sops could not {action} it: {reason}"


def same_yaml(first: str | bytes, second: str | bytes) -> bool:
    """Whether two YAML texts hold the same data (sops re-serialises what it decrypts)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="safe", pure=True)
    try:
        return list(yaml.load_all(first)) == list(yaml.load_all(second))
    except YAMLError:
        return first == second


def unchanged_secrets(
    paths: Paths,
    plaintexts: dict[str, bytes],
    digests: dict[str, str],
    recipient: object,
    manifest: mf.Manifest,
) -> list[str]:
    """The secrets whose plaintext did not change, so the tree's ciphertext stays: known
    from the manifest's keyed digest (no sops call at all), or by decrypting the tree's
    copy and comparing (a tree configure did not write, e.g. fresh from git)."""
    kept: list[str] = []
    to_compare: list[str] = []
    for name in sorted(plaintexts):
        current = paths.root / name
        if not current.is_file() or age_recipients_of(current) != [recipient]:
            continue
        entry = manifest.files.get(name)
        if entry and entry.plaintext == digests[name] and entry.sha256 == mf.sha256(current.read_bytes()):
            kept.append(name)
        elif is_encrypted_text(current.read_text(errors="replace")):
            to_compare.append(name)
    commands = [Command(tuple(decrypt_argv(str(paths.root / n))), what=f"decrypting {n}") for n in to_compare]
    outcomes = run_many(commands, paths=paths)
    kept += [
        n for n, o in zip(to_compare, outcomes, strict=True) if o.ok and same_yaml(o.stdout, plaintexts[n])
    ]
    return sorted(kept)


def encrypt_commands(sops_config: Path, plaintexts: dict[str, bytes], names: Sequence[str]) -> list[Command]:
    """One sops run per secret, fed its plaintext on stdin, following the staged .sops.yaml."""
    env = {"SOPS_CONFIG": str(sops_config)}
    return [
        Command(
            tuple(encrypt_argv(n)),
            stdin=plaintexts[n],
            cwd=sops_config.parent,
            env=env,
            what=f"encrypting {n}",
        )
        for n in names
    ]


def encryption_result(
    context: RenderContext, names: Sequence[str], outcomes: Sequence[Outcome]
) -> dict[str, bytes]:
    """The ciphertext sops returned for each secret, or one line per failure."""
    failures = [sops_failure(n, "encrypt", o) for n, o in zip(names, outcomes, strict=True) if not o.ok]
    if failures:
        raise UserError(*(redact(line, context.secret_values) for line in failures))
    ciphertexts: dict[str, bytes] = {}
    for name, outcome in zip(names, outcomes, strict=True):
        if not is_encrypted_text(outcome.stdout):
            raise UserError(f"{name}: sops returned it unencrypted — does .sops.yaml have a rule for it?")
        ciphertexts[name] = outcome.stdout.encode()
    return ciphertexts


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


def kustomize_problems(paths: Paths, out: Path, dirs: Sequence[str], combined: Outcome) -> list[str]:
    """What broke when the build of every kustomization at once failed: each directory
    built on its own (in parallel) to say exactly which ones are broken."""
    if combined.ok:
        return []
    commands = [Command(tuple(kustomize_argv(d)), cwd=out, what=f"building {d}") for d in dirs]
    problems = [
        f"{d}: kustomize build failed: {last_line(o)}"
        for d, o in zip(dirs, run_many(commands, paths=paths), strict=True)
        if not o.ok
    ]
    return problems or [f"kustomize build of all directories together failed: {last_line(combined)}"]


def last_line(outcome: Outcome) -> str:
    """Why a tool failed, in one line: the limit it hit, or the last line it printed
    (secrets masked: a tool may echo its input)."""
    return outcome.problem if outcome.limit else outcome.last_line


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


TALHELPER_VALIDATE = ("talhelper", "validate", "talconfig", "talconfig.yaml", "--env-file", "talenv.yaml")


def validate_staged(paths: Paths, out: Path, say: Say, config: ClusterConfig | None = None) -> None:
    """YAML-parse every file, build every kustomization and, when talhelper is installed,
    validate the Talos config. kustomize (one run for every directory) and talhelper work
    in their own processes while the YAML is parsed here. Every problem is reported, then
    we stop."""
    dirs = kustomization_dirs(out)
    talos = out / "talos"
    has_talos = (talos / "talconfig.yaml").is_file()
    commands = []
    if dirs:
        root = combined_root(out, dirs, out.parent / "validate")
        commands.append(
            Command(tuple(kustomize_argv(str(root))), cwd=out, what="building every kustomization")
        )
    checks_talos = has_talos and find_tool("talhelper") is not None
    if checks_talos:
        commands.append(Command(TALHELPER_VALIDATE, cwd=talos, what="validating talos/talconfig.yaml"))
    with started(commands, paths=paths) as checking:
        problems = yaml_problems(out, config)
        outcomes = checking.wait()
    shutil.rmtree(out.parent / "validate", ignore_errors=True)
    if dirs:
        problems += kustomize_problems(paths, out, dirs, outcomes[0])
    if checks_talos and not outcomes[-1].ok:
        problems.append(f"talos/talconfig.yaml: talhelper validate failed: {last_line(outcomes[-1])}")
    note = ""
    if has_talos and not checks_talos:
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
    files = [paths.root / name for name in RENDER_INPUT_FILES] + [module_file(m) for m in RENDER_CODE]
    files += [p for p in paths.templates.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return files, [operator.age_public_key, operator.deploy_key, operator.push_token]


def guard_plaintext_token(paths: Paths, context: RenderContext) -> None:
    """A Cloudflare token in cluster.yaml (the Taskfile template's habit) is accepted only
    while git ignores cluster.yaml; otherwise it would be committed in plaintext."""
    if not context.config.cluster.get("cloudflare_token") or "cloudflare_token" not in context.data:
        return
    ignored = run_one(Command(("git", "check-ignore", "-q", str(paths.cluster_config)), cwd=paths.root))
    if not ignored.ok:
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
    validated. No plaintext secret is ever in ``out``. A secret whose plaintext did not
    change keeps the tree's ciphertext (:func:`unchanged_secrets`)."""
    from tasks.lib.config.render import render, render_secrets

    rendered = render_secrets(paths, context)
    plaintexts = {name: text.encode() for name, text in rendered.items() if is_sops_name(name)}
    for name, text in rendered.items():
        if not is_sops_name(name):  # .sops.yaml: how to encrypt, not a secret
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(text)
    del rendered
    digests = {name: mf.keyed_digest(key, text) for name, text in plaintexts.items()}
    kept = unchanged_secrets(paths, plaintexts, digests, context.data.get("age_public_key"), manifest)
    fresh = [name for name in sorted(plaintexts) if name not in kept]
    commands = encrypt_commands(out / ".sops.yaml", plaintexts, fresh)
    with started(commands, paths=paths, workers=len(commands) or 1) as encrypting:
        files = render(paths, context, out, part="rest")  # while sops encrypts
        outcomes = encrypting.wait()
    del plaintexts
    ciphertexts = {name: (paths.root / name).read_bytes() for name in kept}
    ciphertexts.update(encryption_result(context, fresh, outcomes))
    for name, ciphertext in ciphertexts.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(ciphertext)
    say(f"rendered {len(files) + len(ciphertexts)} files")
    validate_staged(paths, out, say, context.config)
    say(f"secrets: {len(fresh)} encrypted, {len(kept)} unchanged (ciphertext kept)")
    return Staged(read_tree(out), digests, fresh, kept)


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
    swapped = False
    try:
        with swap.configure_lock(paths.root, optional=options.check or options.dry):
            settle_interrupted_run(paths, options)
            result = run_pipeline(paths, options)
            if isinstance(result, Summary):
                return result
            swap.swap_in(paths.root, result.files, result.order, result.remove)
            swapped = True
            return result.summary
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


@dataclass
class Ready:
    """A validated render, ready to be swapped into the tree: every file to write, in
    order, and the files to remove."""

    files: dict[str, bytes]
    order: list[str]
    remove: list[str]
    summary: Summary


def run_pipeline(paths: Paths, options: Options) -> Summary | Ready:
    """Everything up to the swap: the finished :class:`Summary` when nothing is to be
    written (up to date, ``--check``, ``--dry``), else what to swap in."""
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
    config = load_config(paths.cluster_config, paths.nodes_config, paths.root)
    count = len(config.nodes)
    say(f"config: cluster.yaml and nodes.yaml are valid ({count} node{'s' * (count != 1)})")
    context = build_context(paths, sops_decrypt(paths), config, operator)
    register_secrets(context.secret_values)
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
    summary = Summary(plan.write, len(plan.unchanged), plan.remove, staged.encrypted, staged.kept)
    return Ready(files, order, plan.remove, summary)


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
