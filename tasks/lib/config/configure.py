"""The ``configure`` pipeline: config -> render -> encrypt -> validate -> swap in.

Nothing touches the repository until every step has passed, and no plaintext secret is
ever written to any file, memory-backed ones included: the secret templates are rendered
into memory and handed to sops on stdin, and everything that needs files (the YAML checks,
kustomize, the swap) works on the ciphertext, which kustomize builds just as well. The rest
is rendered into a private staging directory outside the repository, validated there, and
swapped into the work tree all or nothing (see :mod:`tasks.lib.swap`), one run at a
time. A failure, Ctrl-C, SIGTERM or SIGHUP leaves the tree as it was; SIGKILL or power loss
in the middle of the swap is finished by the next run.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import signal
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from tasks.lib import swap
from tasks.lib.boundary import rendered_name_problem, shown
from tasks.lib.config.blame import explain_rendered_error
from tasks.lib.config.checks import load_config
from tasks.lib.config.document import MAX_FILE_BYTES
from tasks.lib.config.examples import ExampleValue, advice
from tasks.lib.config.schema import ClusterConfig
from tasks.lib.config.template_context import RenderContext, build_context
from tasks.lib.errors import Interrupted, UserError, signals_deferred
from tasks.lib.files import MAX_TEXT_BYTES, memory_dir, private_scratch, read_bytes
from tasks.lib.paths import Paths
from tasks.lib.secrets.keys import age_recipients_of
from tasks.lib.secrets.sopsfile import decrypt_argv, encrypt_argv, is_encrypted_text, is_sops_name
from tasks.lib.tools.failures import explain, reason_lines
from tasks.lib.tools.kustomize import kustomize_argv
from tasks.lib.tools.runner import (
    Command,
    Outcome,
    find_tool,
    install_hint,
    redact,
    register_secrets,
    run_many,
    run_one,
    started,
)

from . import cache, merge, plan
from . import manifest as mf

Say = Callable[[str], None]


@dataclass
class Options:
    force: bool = False
    check: bool = False
    dry: bool = False
    say: Say = print
    resolved: tuple[str, ...] = ()  # files whose edits are the user's resolution of a conflict


@dataclass
class Staged:
    """The staged render: relative path -> bytes, with the secrets already encrypted."""

    files: dict[str, bytes]
    secrets: dict[str, str]  # relative path -> HMAC of its plaintext
    encrypted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


@dataclass
class Summary:
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    encrypted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    up_to_date: bool = False
    merged: list[str] = field(default_factory=list)  # your edits merged into the new render
    edits_kept: list[str] = field(default_factory=list)  # your edits the render left alone
    forced: list[str] = field(default_factory=list)  # what --force overwrote and lost (lines)


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


def decrypt_command(paths: Paths, path: Path) -> Command:
    return Command(tuple(decrypt_argv(str(path))), what=f"decrypting {paths.rel(path)}")


def plaintext_of(paths: Paths, path: Path, outcome: Outcome) -> str:
    if not outcome.ok:
        raise UserError(sops_failure(paths.rel(path), "decrypt", outcome))
    return outcome.stdout


def sops_decrypt(paths: Paths) -> Callable[[Path], str]:
    """A decrypt function for :func:`build_context` (plaintext to memory only)."""

    def decrypt(path: Path) -> str:
        return plaintext_of(paths, path, run_one(decrypt_command(paths, path), paths=paths))

    return decrypt


@contextlib.contextmanager
def decrypting_early(paths: Paths) -> Iterator[Callable[[Path], str]]:
    """A decrypt function for :func:`build_context` whose sops starts now on
    ``cluster.sops.yaml``, so it decrypts in its own process while this one checks the
    config and loads the renderer. Started only for a regular file of bounded size (what
    :func:`load_secrets` reads first), so sops never blocks on a pipe or reads a device;
    for any other file decryption waits until asked, and the usual checks say what is
    wrong in their usual order. Whatever ends the block, sops does not outlive it."""
    secrets = paths.secrets_config
    try:
        read_bytes(secrets, limit=MAX_FILE_BYTES)
    except UserError:
        yield sops_decrypt(paths)
        return
    with started([decrypt_command(paths, secrets)], paths=paths) as batch:

        def decrypt(path: Path) -> str:
            if path != secrets:
                return sops_decrypt(paths)(path)
            (outcome,) = batch.wait()
            return plaintext_of(paths, path, outcome)

        yield decrypt


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


KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def kustomization_dirs(out: Path, generated: Collection[str] | None = None) -> list[str]:
    """The folders of ``out`` with a kustomization; with ``generated``, only the folders of
    generated ones (the user's own files are in ``out`` only for these to build)."""
    if generated is not None:
        return sorted({str(Path(n).parent) for n in generated if Path(n).name in KUSTOMIZATION_NAMES})
    return sorted({str(p.parent.relative_to(out)) for n in KUSTOMIZATION_NAMES for p in out.rglob(n)})


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


def talhelper_problems(outcome: Outcome) -> list[str]:
    """``talhelper validate`` failed: every line of its reason (it prints the problems on
    stdout and a bare log timestamp on stderr), the template behind the file, the fix."""
    lines = explain(
        "talos/talconfig.yaml (from templates/config/talos/talconfig.yaml.j2): talhelper validate failed:",
        outcome.stdout,
        outcome.stderr,
    )
    return lines if len(lines) > 1 else [f"{lines[0]} exit {outcome.returncode}"]


def talhelper_warnings(outcome: Outcome) -> str:
    """What a passing ``talhelper validate`` still warns of (e.g. a Talos version newer than
    the talhelper knows), for the summary line."""
    warned = [line.strip(" *") for line in reason_lines(outcome.stdout) if "WARNING" in line]
    return "".join(f"; talos/talconfig.yaml: talhelper {line}" for line in warned)


def last_line(outcome: Outcome) -> str:
    """Why a tool failed, in one line: the limit it hit, or the last line it printed
    (secrets masked: a tool may echo its input)."""
    return outcome.problem if outcome.limit else outcome.last_line


def yaml_problems(
    out: Path, config: ClusterConfig | None = None, generated: Collection[str] | None = None
) -> list[str]:
    """Every rendered YAML file (with ``generated``: every one of those) must parse
    (libyaml's C parser: fast, with positions). With ``config``, a problem also names the
    cluster.yaml/nodes.yaml key behind it."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    problems = []
    if generated is None:
        files = sorted(out.rglob("*.y*ml"))
    else:
        files = [out / n for n in sorted(generated) if n.endswith((".yaml", ".yml"))]
    for path in files:
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


def validate_staged(
    paths: Paths,
    out: Path,
    say: Say,
    config: ClusterConfig | None = None,
    generated: Collection[str] | None = None,
) -> None:
    """YAML-parse every file, build every kustomization and, when talhelper is installed,
    validate the Talos config. With ``generated`` only those files are checked (``out`` also
    holds the user's own, for kustomize). kustomize (one run for every directory) and
    talhelper work in their own processes while the YAML is parsed here. Every problem is
    reported, then we stop."""
    dirs = kustomization_dirs(out, generated)
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
        problems = yaml_problems(out, config, generated)
        outcomes = checking.wait()
    shutil.rmtree(out.parent / "validate", ignore_errors=True)
    if dirs:
        problems += kustomize_problems(paths, out, dirs, outcomes[0])
    if checks_talos and not outcomes[-1].ok:
        problems += talhelper_problems(outcomes[-1])
    note = ""
    if checks_talos and outcomes[-1].ok:
        note = talhelper_warnings(outcomes[-1])
    if has_talos and not checks_talos:
        note = (
            "; talos/talconfig.yaml NOT validated: talhelper is not installed "
            f"(install it with {install_hint('talhelper')})"
        )
    if problems:
        raise UserError("the rendered tree does not validate; nothing was written:", *problems)
    say(f"validated {len(dirs)} kustomizations and every YAML file{note}")


# --------------------------------------------------------------------------- the pipeline


def stray_outputs(names: Iterable[str]) -> list[str]:
    """Rendered files outside the folders configure owns (``makejinja.toml`` pointing its
    inputs elsewhere): never written, and never recorded in the manifest."""
    return [
        f"the render produced {shown(name)}: {problem} — check the inputs in makejinja.toml"
        for name in sorted(names)
        if (problem := rendered_name_problem(name)) is not None
    ]


def warn_examples(found: Sequence[ExampleValue]) -> None:
    """Say which of the example's values (and ``inv init``'s placeholders) are still in
    place, one warning line each: they render fine, but a cluster bootstrapped from them
    is not the user's (``bootstrap.*`` refuses them)."""
    for value in found:
        print(f"warning: {value.line()}", file=sys.stderr)
    if found:
        print(
            f"warning: `inv bootstrap.*` refuses the example's values: {advice(list(found))}", file=sys.stderr
        )


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
    """Render into ``out`` and encrypt the secrets. The secrets are rendered into memory
    first and encrypted (by sops, on the other core, fed on stdin) while the rest renders
    into ``out``; then their ciphertext joins it. No plaintext secret is ever in ``out``.
    The result is validated once the user's edits and apps are in (:func:`validate_plan`).
    A secret whose plaintext did not change keeps the tree's ciphertext
    (:func:`unchanged_secrets`)."""
    # deferred: makejinja loads only when templates render (bootstrap imports this module to decrypt)
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
    say(f"secrets: {len(fresh)} encrypted, {len(kept)} unchanged (ciphertext kept)")
    return Staged(read_tree(out), digests, fresh, kept)


# --------------------------------------------------------------------------- the tree to be

#: Where the user's own files are copied for validation (kustomize builds need them).
OWN_FILES_ROOT = "kubernetes"
#: At most this many of the user's files are copied for validation.
MAX_OWN_FILES = 20_000


def copy_own_files(root: Path, out: Path, generated: Collection[str]) -> None:
    """Copy the user's own files under kubernetes/ (everything configure does not generate)
    into ``out``, so the generated kustomizations that list the user's apps build there.
    Symbolic links are not followed; oversized files are left out."""
    base = root / OWN_FILES_ROOT
    if base.is_symlink() or not base.is_dir():
        return
    count = 0
    for directory, folders, names in os.walk(base):
        folders[:] = [f for f in folders if not (Path(directory) / f).is_symlink()]
        for file_name in names:
            path = Path(directory) / file_name
            name = path.relative_to(root).as_posix()
            if name in generated or path.is_symlink() or not path.is_file():
                continue
            if path.stat().st_size > MAX_TEXT_BYTES:
                continue
            count += 1
            if count > MAX_OWN_FILES:
                raise UserError(f"{OWN_FILES_ROOT}/ holds more than {MAX_OWN_FILES} files of your own")
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / name)


def validate_plan(
    paths: Paths, out: Path, staging: Path, the_plan: plan.Plan, config: ClusterConfig, say: Say
) -> dict[str, Path]:
    """Validate the tree as it will be: the render with the user's edits merged in and apps
    listed, beside the user's own files. Returns where each pure render now is (the merged
    ones were moved aside, for their git blobs)."""
    pure_dir = staging / "pure"
    locations = {name: out / name for name in the_plan.entries}
    for name, content in the_plan.files.items():
        target = out / name
        if target.is_file() and target.read_bytes() != content:
            aside = pure_dir / name
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, aside)
            locations[name] = aside
            target.write_bytes(content)
    generated = set(the_plan.files)
    copy_own_files(paths.root, out, generated)
    validate_staged(paths, out, say, config, generated)
    return locations


# --------------------------------------------------------------------------- configure


def configure(paths: Paths, options: Options) -> Summary:
    """Run the whole pipeline under the repository's configure lock; raises
    :class:`UserError` (tree untouched) on any problem. An interrupt says truthfully
    whether the new tree is in place."""
    swapped = False
    try:
        with swap.locked(paths.root, "configure", optional=options.check or options.dry):
            cache.settle(paths, read_only=options.check or options.dry, say=options.say)
            result = run_pipeline(paths, options)
            if isinstance(result, Summary):
                return result
            swap.swap_in(paths.root, result.changes(paths), "configure", paths.key_dirs)
            swapped = True
            return result.summary
    except KeyboardInterrupt as error:
        if isinstance(error, Interrupted) and error.message:
            raise
        signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
        message = (
            "the swap had finished: the new files are in place"
            if swapped
            else "nothing was written: the tree is as it was"
        )
        raise Interrupted(signum, message) from None


def run_pipeline(paths: Paths, options: Options) -> Summary | Ready:
    """Everything up to the swap: the finished :class:`Summary` when nothing is to be
    written (up to date, ``--check``, ``--dry``), else what to swap in."""
    say = options.say
    manifest, operator = cache.read_inputs(paths)
    register_secrets([operator.age_key, operator.deploy_key, operator.push_token])
    key = mf.secret_key(operator.age_key)
    inputs = cache.inputs_digest(paths, operator, manifest)
    if not (options.check or options.force or options.resolved) and cache.is_up_to_date(
        paths, manifest, inputs
    ):
        say(cache.UP_TO_DATE)
        return Summary(unchanged=len(manifest.files), up_to_date=True)
    # deferred: makejinja loads only when templates render, not when the tree is up to date
    from tasks.lib.config.render import preload_renderer, read_settings

    read_settings(paths)  # a broken makejinja.toml: one line now, before anything loads it
    with decrypting_early(paths) as decrypt:
        config = load_config(paths.cluster_config, paths.nodes_config, paths.root)
        count = len(config.nodes)
        say(f"config: cluster.yaml and nodes.yaml are valid ({count} node{'s' * (count != 1)})")
        preload_renderer(paths)  # while sops decrypts
        context = build_context(paths, decrypt, config, operator)
    register_secrets(context.secret_values)
    guard_plaintext_token(paths, context)

    with staging_dir() as staging:
        out = staging / "out"
        out.mkdir()
        staged = stage(paths, context, out, manifest, key, say)
        result = finish(paths, options, Rendered(staging, out, staged, manifest, inputs, config))
    warn_examples(context.examples)  # once the render stands: a refusal stays the only line
    return result


@dataclass
class Rendered:
    """A render in its staging directory, with what the plan is made from."""

    staging: Path
    out: Path
    staged: Staged
    manifest: mf.Manifest
    inputs: str
    config: ClusterConfig


@dataclass
class Ready:
    """A validated render, ready to be swapped into the tree: every file to write, in
    order, and the files to remove."""

    files: dict[str, bytes]
    order: list[str]
    remove: list[str]
    summary: Summary

    def changes(self, paths: Paths) -> list[swap.Change]:
        """What the swap writes and removes, the manifest last (until it is in place, the
        old manifest describes the old files)."""
        manifest = paths.rel(paths.manifest)
        changes = [
            swap.Change(paths.root / name, self.files[name]) for name in self.order if name != manifest
        ]
        changes += [swap.Change(paths.root / name, None) for name in self.remove]
        if manifest in self.order:
            changes.append(swap.Change(paths.manifest, self.files[manifest]))
        return changes


def finish(paths: Paths, options: Options, rendered: Rendered) -> Summary | Ready:
    """Plan against the tree (merging the user's edits, listing their apps), validate the
    tree as it will be, then report (``--check``, ``--dry``) or say what to swap in."""
    say = options.say
    staged = rendered.staged
    manifest_name = paths.rel(paths.manifest)
    if problems := cache.tree_problems(paths.root, staged.files) + stray_outputs(staged.files):
        raise UserError(*problems)
    inputs = plan.Inputs(
        paths.root,
        staged.files,
        staged.secrets,
        rendered.manifest,
        manifest_name,
        normalized_resolved(paths, options.resolved),
        options.force,
    )
    the_plan, unused = plan.make_plan(inputs, rendered.staging / "merge")
    if unused:
        reason = "not a generated file with edits of yours; nothing to resolve"
        raise UserError(*(f"--resolved {name}: {reason}" for name in unused))
    if the_plan.conflicts and not options.check:
        raise UserError(*plan.conflict_report(the_plan.conflicts))
    for folder in the_plan.skipped_apps:
        say(f"warning: {folder} is not listed: name app folders with letters, digits, '.', '_' and '-'")
    locations = validate_plan(paths, rendered.out, rendered.staging, the_plan, rendered.config, say)
    if options.check:
        report_check(paths, the_plan)
        return summary_of(the_plan, staged, written=False)
    if options.dry:
        report_dry(the_plan, say)
        return summary_of(the_plan, staged, written=False)
    write_blobs(paths, the_plan, locations)
    the_plan.files[manifest_name] = mf.Manifest(the_plan.entries, rendered.inputs).dumps().encode()
    current = paths.manifest.read_bytes() if paths.manifest.is_file() else None
    (the_plan.unchanged if the_plan.files[manifest_name] == current else the_plan.write).append(manifest_name)
    stored = store_lost(paths, the_plan.forced)
    # The manifest last: until it is in place, the old manifest describes the old files.
    order = sorted(the_plan.write, key=lambda name: name == manifest_name)
    summary = summary_of(the_plan, staged, written=True)
    summary.forced = plan.forced_report(the_plan.forced, stored)
    return Ready(the_plan.files, order, the_plan.remove, summary)


def normalized_resolved(paths: Paths, names: Sequence[str]) -> list[str]:
    """``--resolved`` paths as repository-relative names (given relative to the root, or
    absolute inside it)."""
    result = []
    for name in names:
        path = Path(name)
        path = path if path.is_absolute() else paths.root / path
        relative = os.path.relpath(os.path.normpath(path), paths.root)
        if relative.startswith(".."):
            raise UserError(f"--resolved {name}: not inside the repository")
        result.append(Path(relative).as_posix())
    return result


def write_blobs(paths: Paths, the_plan: plan.Plan, locations: dict[str, Path]) -> None:
    """Put each pure render into git's object database and record its blob id, so the next
    configure can merge on it (entries carried over keep theirs)."""
    wanted = {name: locations[name] for name, entry in the_plan.entries.items() if entry.blob is None}
    ids = merge.blob_ids(paths.root, wanted, write=True)
    for name, blob in ids.items():
        the_plan.entries[name].blob = blob


def store_lost(paths: Paths, forced: Sequence[plan.Conflict]) -> dict[str, str]:
    """What ``--force`` overwrites goes into git's object database first: name -> blob id."""
    stored: dict[str, str] = {}
    if not forced:
        return stored
    with private_scratch("home-ops-lost-") as scratch:
        files = {}
        for index, conflict in enumerate(forced):
            if conflict.ours is not None:
                files[conflict.name] = scratch / f"f{index}"
                files[conflict.name].write_bytes(conflict.ours)
        stored = merge.blob_ids(paths.root, files, write=True)
    return stored


def summary_of(the_plan: plan.Plan, staged: Staged, written: bool) -> Summary:
    return Summary(
        the_plan.write if written else [],
        len(the_plan.unchanged),
        the_plan.remove if written else [],
        staged.encrypted,
        staged.kept,
        merged=the_plan.merged,
        edits_kept=sorted(the_plan.kept + the_plan.resolved),
    )


def report_dry(the_plan: plan.Plan, say: Say) -> None:
    for name in the_plan.write:
        verb = "would merge your edit into" if name in the_plan.merged else "would write"
        say(f"{verb} {name}")
    for name in the_plan.remove:
        say(f"would remove {name}")
    for conflict in the_plan.forced:
        say(f"would overwrite {conflict.name} (your edit would be lost)")


def report_check(paths: Paths, the_plan: plan.Plan) -> None:
    """Raise when the tree is not what configure would leave, with a diff of each file
    (secrets: named only, compared by decrypted content, never printed) and, for a file
    whose edit conflicts with the new render, the conflict and how to resolve it. The
    manifest is configure's record, not output: only a missing one is a difference."""
    manifest_name = paths.rel(paths.manifest)
    missing_manifest = not paths.manifest.is_file()
    changes = [*the_plan.changes, *([manifest_name] if missing_manifest else [])]
    if not changes and not the_plan.conflicts:
        return
    lines = [f"the tree differs from what configure would write ({len(changes)} files):"] if changes else []
    for name in the_plan.write:
        current = paths.root / name
        if is_sops_name(name):
            lines.append(f"  {name}: secret content differs (not shown)")
            continue
        if not current.exists():
            lines.append(f"  {name}: missing")
            continue
        merged = " (your edit merged into the new render)" if name in the_plan.merged else ""
        lines.append(f"  {name}: differs{merged}")
        before = current.read_text(errors="replace").splitlines(keepends=True)
        after = the_plan.files[name].decode(errors="replace").splitlines(keepends=True)
        diff = difflib.unified_diff(before, after, f"a/{name}", f"b/{name}")
        lines += [f"    {line.rstrip()}" for line in diff]
    lines += [f"  {name}: would be removed" for name in the_plan.remove]
    if missing_manifest:
        lines.append(f"  {manifest_name}: missing")
    if the_plan.conflicts:
        lines += plan.conflict_report(the_plan.conflicts, "`inv configure` stops on it")
    else:
        lines.append("run `inv configure` and commit the result")
    raise UserError(*lines)


def describe(summary: Summary) -> str:
    if summary.up_to_date:
        return cache.up_to_date(summary.unchanged)
    return (
        f"{len(summary.written)} written, {summary.unchanged} unchanged, {len(summary.removed)} removed; "
        f"secrets: {len(summary.encrypted)} encrypted, {len(summary.kept)} kept"
    )
