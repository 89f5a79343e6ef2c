"""Development tasks: validate and diff the Flux tree offline, test a branch on the cluster."""

from __future__ import annotations

import contextlib
import json as jsonlib
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit

from tasks.lib.errors import UserError, os_error_line
from tasks.lib.files import check_output_path, write_output
from tasks.lib.flux_live import FLUX_NS, reconcile_flux
from tasks.lib.paths import paths_for
from tasks.lib.selftest import STEPS, report, resolve_configs, run_config, step_label, worktree_files
from tasks.lib.taskdef import task
from tasks.lib.tools.runner import (
    GB,
    Command,
    find_tool,
    is_dry,
    observe,
    require,
    require_files,
    run,
    run_one,
)

ORIGINAL_REF = "home-ops.dev/original-ref"
#: How long the whole test suite may run.
TEST_DEADLINE = 7200.0
FLUXINSTANCE = "fluxinstances.fluxcd.controlplane.io"


# Offline validation ------------------------------------------------------------------------
def _validate_tree(path: Path, variables: dict[str, str] | None = None, progress: bool = False) -> Any:
    from tasks.lib.fluxtree import EntryNotFound, validate

    try:
        return validate(path, variables=variables, progress=_progress_line if progress else None)
    except EntryNotFound as error:
        raise UserError(str(error)) from None
    finally:
        if progress:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _progress_line(done: int, total: int, what: str) -> None:
    print(f"\r\033[Kbuilding {done} of {total} Kustomizations ({what})", end="", file=sys.stderr, flush=True)


def _dry_echo(command: Command) -> None:
    """Under --dry the validator still runs (it only reads, building in temporary folders);
    each command it runs is shown on stderr."""
    print(f"ran (read-only): {command.line}", file=sys.stderr)


def _variables(var: list[str], vars_file: str) -> dict[str, str]:
    from tasks.lib.fluxtree.varsfile import parse_assignments, read_vars_file

    values = read_vars_file(Path(vars_file).expanduser()) if vars_file else {}
    values.update(parse_assignments(var))
    return values


def _emit(text: str) -> None:
    """Print ``text``; a reader that went away (``| head``) is not an error."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@task(
    iterable=["var"],
    help={
        "path": "a Flux repository, cluster folder or apps folder to validate; default: this repository",
        "json": "print the full result as JSON",
        "helm": "also inflate HelmReleases with helm template and check schemas with kubeconform",
        "var": "KEY=VALUE: a postBuild variable that lives only in the cluster (repeatable)",
        "vars_file": "file of such variables: KEY=VALUE lines, a YAML mapping, or a ConfigMap/Secret",
    },
)
def validate(
    c: Context,
    path: str = "",
    json: bool = False,
    helm: bool = False,
    var: list[str] | None = None,
    vars_file: str = "",
) -> None:
    """Validate the Flux tree offline: build every Kustomization as Flux would, report problems.

    Starts at the cluster entry (kubernetes/flux/cluster, a FluxInstance's sync path, or the
    folder given), follows nested Kustomizations built from this repository (components,
    patches, postBuild substitution; other sources are listed as external, not built),
    collects HelmReleases and their sources, and reports broken YAML, missing files,
    unknown or cyclic dependsOn, missing sources, objects applied twice, unencrypted
    *.sops.* files, substituteFrom without a creator and ${VARS} without a value, each with
    its file, line and Kustomization chain. Needs only kustomize (or kubectl). Exits 1 on
    any problem.
    """
    from tasks.lib.fluxtree import report

    require(c, "kustomize" if find_tool("kustomize") else "kubectl")
    variables = _variables(var or [], vars_file)
    target = Path(path).expanduser() if path else paths_for(c).root
    try:
        with observe(_dry_echo) if is_dry(c) else contextlib.nullcontext():
            tree = _validate_tree(
                target, variables, progress=sys.stderr.isatty() and not json and not is_dry(c)
            )
        notes = _helm(tree) if helm else []
        text = report.as_json(tree, notes) if json else report.as_text(tree, notes)
    except OSError as error:  # a path the OS refuses (too long, no permission): the user's to fix
        problem = UserError(os_error_line(error))
        if json:
            _emit(jsonlib.dumps({"error": " ".join(problem.lines)}, indent=2))
        raise problem from None
    except UserError as error:
        if json:
            _emit(jsonlib.dumps({"error": " ".join(error.lines)}, indent=2))
        raise
    except Exception as error:
        message = f"dev.validate failed unexpectedly ({type(error).__name__}: {error}); this is a bug"
        if json:
            _emit(jsonlib.dumps({"error": message}, indent=2))
        print(message, file=sys.stderr)
        raise Exit(code=2) from None
    _emit(text)
    if tree.problems:
        raise Exit(code=1)


def _helm(tree: Any) -> list[str]:
    from tasks.lib.fluxtree.helm import inflate

    return inflate(tree, helm=find_tool("helm"), kubeconform=find_tool("kubeconform"))


# Diff --------------------------------------------------------------------------------------
def _git(root: Path, *args: str) -> tuple[int, str]:
    """Read-only git query (runs under --dry too: it changes nothing)."""
    outcome = run_one(Command(("git", *args), cwd=root))
    return outcome.returncode, outcome.stdout.strip()


def default_branch(root: Path) -> str:
    """origin/HEAD's branch when the remote told us, else main."""
    code, ref = _git(root, "symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD")
    return ref if code == 0 and ref else "main"


@task(
    help={
        "base": "git ref to compare against; default: the default branch (origin/HEAD, else main)",
        "output_file": "also write the markdown to this file",
        "limit": "maximum size of the markdown in characters (default 60000)",
    }
)
def diff(c: Context, base: str = "", output_file: str = "", limit: int = 60_000) -> None:
    """Diff the Flux tree of the working tree against a base ref, as a PR comment.

    Renders both trees offline (the base from a temporary git worktree, always removed) and
    prints object-level unified diffs of Kustomizations, HelmReleases and what they apply,
    without noisy chart labels, versions and checksums, capped in size.
    """
    from tasks.lib.fluxtree.diff import markdown

    root = paths_for(c).root
    if output_file:
        check_output_path(Path(output_file))  # before the work, not after it
    if limit <= 0:
        raise UserError(f"--limit {limit}: must be a positive number of characters")
    require(c, "git", "kustomize" if find_tool("kustomize") else "kubectl")
    ref = base or default_branch(root)
    code, _sha = _git(root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
    if code != 0:
        raise UserError(f"unknown git ref '{ref}': pass --base with a branch, tag or commit")
    if is_dry(c):
        print(
            f"would build the Flux tree at {ref} (temporary git worktree) and the working tree, and diff them"
        )
        return
    head = _validate_tree(root)
    with tempfile.TemporaryDirectory(prefix="home-ops-diff-") as tmp:
        worktree = Path(tmp) / "base"
        code, _out = _git(root, "worktree", "add", "--detach", "--quiet", str(worktree), ref)
        if code != 0:
            raise UserError(f"could not check out {ref} into a temporary worktree")
        try:
            base_tree = _base_tree(worktree)
        finally:
            _git(root, "worktree", "remove", "--force", str(worktree))
            _git(root, "worktree", "prune")
    text = markdown(base_tree, head, base_label=ref, limit=limit)
    if output_file:
        write_output(Path(output_file), text)
        print(f"wrote {output_file}", file=sys.stderr)
    print(text, end="")


def _base_tree(worktree: Path) -> Any:
    """The base's tree; an empty one when the base has no Flux tree yet (everything is new)."""
    from tasks.lib.fluxtree import EntryNotFound, Tree, validate

    try:
        return validate(worktree)
    except EntryNotFound:
        return Tree(root=str(worktree), entry="")


# Branch testing ----------------------------------------------------------------------------
def current_branch(root: Path) -> str:
    code, branch = _git(root, "symbolic-ref", "--short", "-q", "HEAD")
    if code != 0 or not branch:
        raise UserError("HEAD is detached: check out the branch you want Flux to follow")
    return branch


def ensure_pushed(c: Context, branch: str) -> None:
    """HEAD is on ``branch`` of the repository Flux pulls from (cluster.yaml's
    ``repository_name``, when there is a cluster.yaml)."""
    from tasks.lib import gitremote
    from tasks.lib.config.checks import load_config

    paths = paths_for(c)
    repository = None
    if paths.cluster_config.exists():
        repository = load_config(paths.cluster_config, paths.nodes_config, paths.root).repository
    problem = gitremote.push_problem(paths.root, repository, branch)
    if problem:
        raise UserError(problem)


def _kubectl_json(c: Context, *args: str) -> Any:
    outcome = run_one(Command(("kubectl", *args, "-o", "json")), paths=paths_for(c))
    if not outcome.ok:
        message = [outcome.problem] if outcome.limit else outcome.stderr.strip().splitlines()
        raise UserError(f"kubectl {' '.join(args)} failed", *(f"  {m}" for m in message[-3:]))
    return jsonlib.loads(outcome.stdout or "{}")


def find_instance(c: Context) -> dict[str, Any]:
    """The cluster's FluxInstance (the Flux operator's sync settings)."""
    items = _kubectl_json(c, "get", FLUXINSTANCE, "--all-namespaces").get("items") or []
    if not items:
        raise UserError("no FluxInstance found in the cluster: is the Flux operator installed?")
    instance: dict[str, Any] = items[0]
    return instance


def _managing_release(instance: dict[str, Any]) -> tuple[str, str] | None:
    """The HelmRelease that renders the FluxInstance (it would revert a patched ref)."""
    labels = (instance.get("metadata") or {}).get("labels") or {}
    name = labels.get("helm.toolkit.fluxcd.io/name")
    namespace = labels.get("helm.toolkit.fluxcd.io/namespace") or FLUX_NS
    return (namespace, name) if name else None


def _release_suspended(c: Context, release: tuple[str, str]) -> bool:
    body = _kubectl_json(
        c, "--namespace", release[0], "get", "helmreleases.helm.toolkit.fluxcd.io", release[1]
    )
    return bool((body.get("spec") or {}).get("suspend"))


def _preconditions(c: Context) -> None:
    paths = paths_for(c)
    require(c, "kubectl", "flux")
    if not is_dry(c):
        require_files(
            (paths.kubeconfig, "point KUBECONFIG at the cluster or bootstrap it first"), paths=paths
        )


def _patch_instance(c: Context, instance: dict[str, Any], patch: dict[str, Any]) -> None:
    metadata = instance["metadata"]
    run(
        c,
        [
            "kubectl",
            "--namespace",
            metadata.get("namespace", FLUX_NS),
            "patch",
            FLUXINSTANCE,
            metadata["name"],
            "--type",
            "merge",
            "--patch",
            jsonlib.dumps(patch, separators=(",", ":")),
        ],
    )


@task
def start(c: Context) -> None:
    """Point the cluster's Flux at the current branch to test it live.

    Refuses on the default branch, on a detached HEAD and on a branch that is not pushed.
    Suspends the HelmRelease that manages the FluxInstance (it would revert the change),
    patches the FluxInstance's sync ref, remembers the previous ref, and reconciles.
    Does nothing it does not need to; `inv dev.stop` undoes it.
    """
    root = paths_for(c).root
    branch = current_branch(root)
    default = default_branch(root).split("/", 1)[-1]
    if branch in {default, "main"}:
        raise UserError(
            f"on '{branch}', the default branch: Flux already follows it (dev.start is for other branches)"
        )
    ensure_pushed(c, branch)
    _preconditions(c)
    instance = find_instance(c)
    wanted = f"refs/heads/{branch}"
    current = str(((instance.get("spec") or {}).get("sync") or {}).get("ref") or "")
    changed = []
    release = _managing_release(instance)
    if release and not _release_suspended(c, release):
        run(c, ["flux", "--namespace", release[0], "suspend", "helmrelease", release[1]])
        changed.append(f"suspended HelmRelease {release[0]}/{release[1]} (it would revert the sync ref)")
    if current != wanted:
        annotations = instance["metadata"].get("annotations") or {}
        original = annotations.get(ORIGINAL_REF) or current
        _patch_instance(
            c,
            instance,
            {"metadata": {"annotations": {ORIGINAL_REF: original}}, "spec": {"sync": {"ref": wanted}}},
        )
        changed.append(
            f"FluxInstance {instance['metadata']['name']}: sync ref {current or '(none)'} -> {wanted}"
        )
    for line in changed or [f"Flux already follows {wanted}: nothing to change"]:
        print(line)
    reconcile_flux(c)


@task
def stop(c: Context) -> None:
    """Point the cluster's Flux back at the default branch after `inv dev.start`.

    Restores the FluxInstance's sync ref (the one dev.start remembered, else the default
    branch), resumes the HelmRelease that manages it, and reconciles. Idempotent.
    """
    root = paths_for(c).root
    _preconditions(c)
    instance = find_instance(c)
    annotations = instance["metadata"].get("annotations") or {}
    wanted = annotations.get(ORIGINAL_REF) or f"refs/heads/{default_branch(root).split('/', 1)[-1]}"
    current = str(((instance.get("spec") or {}).get("sync") or {}).get("ref") or "")
    changed = []
    if current != wanted or ORIGINAL_REF in annotations:
        _patch_instance(
            c,
            instance,
            {"metadata": {"annotations": {ORIGINAL_REF: None}}, "spec": {"sync": {"ref": wanted}}},
        )
        changed.append(
            f"FluxInstance {instance['metadata']['name']}: sync ref {current or '(none)'} -> {wanted}"
        )
    release = _managing_release(instance)
    if release and _release_suspended(c, release):
        run(c, ["flux", "--namespace", release[0], "resume", "helmrelease", release[1]], stream=True)
        changed.append(f"resumed HelmRelease {release[0]}/{release[1]}")
    for line in changed or [f"Flux already follows {wanted}: nothing to change"]:
        print(line)
    reconcile_flux(c)


__all__ = ["diff", "start", "stop", "validate"]


# --------------------------------------------------------------------------- the repository testing itself


@task(
    iterable=["config"],
    help={
        "config": "a test configuration's name (tests/fixtures/configs/NAME) or a directory with "
        "cluster.yaml and nodes.yaml; repeat for several; default: every test configuration",
        "keep": "keep each scratch copy and print where it is, to look at what was rendered",
    },
)
def e2e(c: Context, config: list[str] | None = None, keep: bool = False) -> None:
    """Run configure and the bootstrap dry runs on test configurations, in scratch copies.

    For each configuration (the bundled example and every one in tests/fixtures/configs):
    copy the repository (as it is on disk, uncommitted changes included, git-ignored files
    left out) to a temporary directory, put its cluster.yaml and nodes.yaml in, and run `inv
    configure`, `inv configure --check`, `inv sops.check`, `inv dev.validate`, `inv --dry
    bootstrap.talos` and `inv --dry bootstrap.apps` there. Secrets and keys are the bundled
    example's test-only ones, never yours (a configuration whose choices need other secrets
    brings its own cluster.sops.yaml, encrypted to the same key): it tests the template, on
    any clone. The work tree is never touched.
    Exits 1 when any configuration fails, after running all of them.
    """
    from tasks.lib.selftest import require_example

    paths = paths_for(c)
    chosen = resolve_configs(paths.root, config or [])
    require_example(paths.root)
    if is_dry(c):
        names = ", ".join(f"{t.name} ({paths.rel(t.directory)})" for t in chosen)
        print(f"would run, for each of {names}, in a scratch copy of the repository:")
        for step in STEPS:
            print(f"  {step_label(step)}")
        return
    files = worktree_files(paths.root)
    print(f"e2e: {len(chosen)} configuration(s), {len(files)} files copied for each", flush=True)
    results = [run_config(paths, files, t, keep, lambda line: print(line, flush=True)) for t in chosen]
    for line in report(results):
        print(line)
    if not all(r.ok for r in results):
        raise Exit(code=1)


@task(
    help={"workers": "pytest-xdist workers: a number, or auto (one per core; the default); 0 runs serially"}
)
def test(c: Context, workers: str = "auto") -> None:
    """Run the test suite (pytest, in parallel); arguments after `--` go to pytest.

    `inv dev.test -- -k configure -x` passes `-k configure -x` through. The suite needs
    nothing but the project's Python dependencies: cluster tools are faked, and sops,
    kubectl and yamlfmt are the pip-installed ones.
    """
    argv = [sys.executable, "-m", "pytest", "-n", workers, *shlex.split(c.remainder or "")]
    result = run(
        c, argv, cwd=paths_for(c).root, stream=True, check=False, timeout=TEST_DEADLINE, memory=4 * GB
    )
    if result.failed:
        raise Exit(code=result.returncode or 1)


ns = Collection("dev")
for _task in (validate, diff, start, stop, e2e, test):
    ns.add_task(_task)
