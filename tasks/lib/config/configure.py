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
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tasks.lib.config.blame import explain_rendered_error
from tasks.lib.config.checks import load_config
from tasks.lib.config.examples import ExampleValue, advice
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
from . import merge, ownapps, plan, swap

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


def yaml_problems(
    out: Path, config: ClusterConfig | None = None, generated: Collection[str] | None = None
) -> list[str]:
    """Every rendered YAML file (with ``generated``: every one of those) must parse
    (libyaml's C parser: fast, with positions). With ``config``, a problem also names the
    cluster.yaml/nodes.yaml key behind it."""
    import yaml

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


def validate_staged(
    paths: Paths,
    out: Path,
    say: Say,
    config: ClusterConfig | None = None,
    generated: Collection[str] | None = None,
) -> None:
    """YAML-parse every file, build every kustomization and, when talhelper is installed,
    validate the Talos config. Every problem is reported, then we stop. With ``generated``
    only those files are checked (``out`` also holds the user's own, for kustomize)."""
    dirs = kustomization_dirs(out, generated)
    with ThreadPoolExecutor(max_workers=1) as pool:
        building = pool.submit(kustomize_problems, paths, out, dirs)  # kustomize runs meanwhile
        problems = yaml_problems(out, config, generated)
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


# --------------------------------------------------------------------------- the pipeline


def render_inputs(paths: Paths, operator: OperatorFiles) -> tuple[list[Path], list[str]]:
    """Every file and value a render depends on (the key material as values), and the
    user's app folders (each one is listed in a generated kustomization)."""
    files = [paths.root / name for name in (*RENDER_INPUT_FILES, *RENDER_CODE)]
    files += [p for p in paths.templates.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return files, [operator.age_public_key, operator.deploy_key, operator.push_token]


def own_apps_inputs(paths: Paths, manifest: mf.Manifest) -> list[str]:
    """The user's app folders as inputs of the render (a new or removed one renders again)."""
    return [f"app:{app}" for app in ownapps.apps_on_disk(paths.root, set(manifest.files))]


def import_renderer(paths: Paths) -> None:
    """Load makejinja ahead of time (in a background thread). A failure is left for the
    render to report, in the main thread, as one line."""
    from tasks.lib.config.render import makejinja_app

    with contextlib.suppress(UserError):
        makejinja_app(paths)


def warn_examples(found: Sequence[ExampleValue]) -> None:
    """Say which of the example's values (and ``inv init``'s placeholders) are still in
    place: they render fine, but a cluster bootstrapped from them is not the user's."""
    if not found:
        return
    print(
        "warning: the example's values are still in place (`inv bootstrap.*` refuses them):", file=sys.stderr
    )
    for value in found:
        print(f"  {value.line()}", file=sys.stderr)
    print(f"  {advice(list(found))}", file=sys.stderr)


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
    """Render into ``out`` and encrypt the secrets. The secrets are rendered into memory
    first and encrypted (by sops, on the other core, fed on stdin) while the rest renders
    into ``out``; then their ciphertext joins it. No plaintext secret is ever in ``out``.
    The result is validated once the user's edits and apps are in (:func:`validate_plan`)."""
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
    say(f"secrets: {len(encrypted.encrypted)} encrypted, {len(encrypted.kept)} unchanged (ciphertext kept)")
    return Staged(read_tree(out), encrypted.digests, encrypted.encrypted, encrypted.kept)


def is_up_to_date(paths: Paths, manifest: mf.Manifest, inputs: str) -> bool:
    if not manifest.files or manifest.inputs != inputs:
        return False
    for name, entry in manifest.files.items():
        path = paths.root / name
        if not path.is_file() or mf.sha256(path.read_bytes()) != entry.in_tree:
            return False
    return True


# --------------------------------------------------------------------------- the tree to be

#: Where the user's own files are copied for validation (kustomize builds need them).
OWN_FILES_ROOT = "kubernetes"
#: At most this many of the user's files are copied for validation.
MAX_OWN_FILES = 20_000


def copy_own_files(root: Path, out: Path, generated: Collection[str]) -> None:
    """Copy the user's own files under kubernetes/ (everything configure does not generate)
    into ``out``, so the generated kustomizations that list the user's apps build there.
    Symbolic links are not followed; swap temporaries and oversized files are left out."""
    from tasks.lib.files import MAX_TEXT_BYTES

    base = root / OWN_FILES_ROOT
    if base.is_symlink() or not base.is_dir():
        return
    count = 0
    for directory, folders, names in os.walk(base):
        folders[:] = [f for f in folders if not (Path(directory) / f).is_symlink()]
        for file_name in names:
            path = Path(directory) / file_name
            name = path.relative_to(root).as_posix()
            if name in generated or swap.target_of(path) != path or path.is_symlink() or not path.is_file():
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
    files, values = render_inputs(paths, operator)
    inputs = mf.inputs_digest(key, files, [*values, *own_apps_inputs(paths, manifest)])
    if not (options.check or options.force or options.resolved) and is_up_to_date(paths, manifest, inputs):
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
    warn_examples(context.examples)
    guard_plaintext_token(paths, context)

    with staging_dir() as staging:
        out = staging / "out"
        out.mkdir()
        staged = stage(paths, context, out, manifest, key, say)
        return finish(paths, options, swapped, Rendered(staging, out, staged, manifest, inputs, config))


@dataclass
class Rendered:
    """A render in its staging directory, with what the plan is made from."""

    staging: Path
    out: Path
    staged: Staged
    manifest: mf.Manifest
    inputs: str
    config: ClusterConfig


def finish(paths: Paths, options: Options, swapped: list[bool], rendered: Rendered) -> Summary:
    """Plan against the tree (merging the user's edits, listing their apps), validate the
    tree as it will be, then report (``--check``, ``--dry``) or swap it in."""
    say = options.say
    staged = rendered.staged
    manifest_name = paths.rel(paths.manifest)
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
    swap.swap_in(paths.root, the_plan.files, order, the_plan.remove)
    swapped.append(True)
    summary = summary_of(the_plan, staged, written=True)
    summary.forced = plan.forced_report(the_plan.forced, stored)
    return summary


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
    import difflib

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
        return f"up to date: {summary.unchanged} files unchanged"
    return (
        f"{len(summary.written)} written, {summary.unchanged} unchanged, {len(summary.removed)} removed; "
        f"secrets: {len(summary.encrypted)} encrypted, {len(summary.kept)} kept"
    )
