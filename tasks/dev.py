"""Development tasks: validate and diff the Flux tree offline, test a branch on the cluster."""

from __future__ import annotations

import contextlib
import shlex
import sys
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit

from tasks.lib.boundary import git_commit
from tasks.lib.errors import UserError
from tasks.lib.files import check_output_path, write_output
from tasks.lib.flux_live import follow_branch, follow_default, needs_cluster, reconcile_flux
from tasks.lib.paths import paths_for
from tasks.lib.taskdef import task
from tasks.lib.terminal import StatusLine
from tasks.lib.tools.runner import GB, Command, find_tool, is_dry, observe, require, run

#: How long the whole test suite may run.
TEST_DEADLINE = 7200.0


def _show_read_only(command: Command) -> None:
    """Under --dry the validator still runs (it only reads, building in temporary folders);
    each command it runs is shown on stderr."""
    print(f"ran (read-only): {command.line}", file=sys.stderr)


@task(
    iterable=["var"],
    help={
        "path": "a Flux repository, cluster folder or apps folder to validate; default: this repository",
        "json": "print the full result as JSON",
        "helm": "also render every HelmRelease (helm template, charts cached) and check what it renders",
        "var": "KEY=VALUE: a postBuild variable that lives only in the cluster (repeatable)",
        "vars_file": "file of such variables: KEY=VALUE lines, a YAML mapping, or a ConfigMap/Secret",
        "strict": "also fail on Kustomizations that could not be validated (external or missing source)",
    },
)
def validate(
    c: Context,
    path: str = "",
    json: bool = False,
    helm: bool = False,
    var: list[str] | None = None,
    vars_file: str = "",
    strict: bool = False,
) -> None:
    """Validate the Flux tree offline: build every Kustomization as Flux would, report problems.

    Starts at the cluster entry (kubernetes/flux/cluster, a FluxInstance's sync path, or the
    folder given), follows nested Kustomizations built from this repository (components,
    patches, postBuild substitution; other sources are listed as external, not built),
    honouring .sourceignore and Flux's load restrictions, collects HelmReleases and their
    sources, and reports broken YAML, missing or outside files, unknown or cyclic dependsOn,
    missing sources, objects applied twice, unencrypted *.sops.* files, substituteFrom
    without a creator, ${VARS} without a value (fatal since Flux 2.9) and objects the API
    server would refuse (kubeconform), each at the line to edit with its Kustomization
    chain. Says how many Kustomizations were validated and why others were skipped
    (--strict fails on them). Needs kustomize (or kubectl); kubeconform and helm when
    installed. Exits 1 on any problem.
    """
    from tasks.lib import fluxtree, swap
    from tasks.lib.fluxtree import report as fluxtree_report
    from tasks.lib.fluxtree.varsfile import variables

    require(c, "kustomize" if find_tool("kustomize") else "kubectl")
    swap.require_settled(paths_for(c).root)  # a half-swapped tree would validate as something else
    target = Path(path).expanduser() if path else paths_for(c).root
    live = sys.stderr.isatty() and not json and not is_dry(c)
    status = StatusLine(sys.stderr)
    with fluxtree_report.errors_as_json(json):
        values = variables(var or [], vars_file)
        with observe(_show_read_only) if is_dry(c) else contextlib.nullcontext():
            tree = fluxtree.validate(
                target,
                variables=values,
                progress=(
                    lambda done, total, what: status.update(
                        f"building {done} of {total} Kustomizations ({what})"
                    )
                )
                if live
                else None,
                strict=strict,
                helm=helm,
            )
        status.finish()
        text = fluxtree_report.as_json(tree) if json else fluxtree_report.as_text(tree)
    print(text)
    if tree.problems:
        raise Exit(code=1)


@task(
    help={
        "base": "git ref to compare against; default: the default branch (origin/HEAD, else main)",
        "output_file": "also write the markdown to this file",
        "limit": "maximum size of the markdown in characters (default 60000)",
        "helm": "also diff what the charts of changed HelmReleases render (helm template)",
    }
)
def diff(c: Context, base: str = "", output_file: str = "", limit: int = 60_000, helm: bool = False) -> None:
    """Diff the Flux tree of the working tree against a base ref, as a PR comment.

    Renders both trees offline (the base from a temporary git worktree, always removed) and
    prints object-level unified diffs of Kustomizations, HelmReleases and what they apply,
    without noisy chart labels, versions and checksums, Secret values hidden, capped in size.
    With --helm, the charts of the HelmReleases whose spec, chart source or values changed
    are rendered on both sides and what they render is diffed too.
    """
    from tasks.lib import fluxtree, swap
    from tasks.lib.fluxtree.diff import diff_against
    from tasks.lib.gitremote import default_branch

    root = paths_for(c).root
    swap.require_settled(root)
    if output_file:
        check_output_path(Path(output_file))  # before the work, not after it
    if limit <= 0:
        raise UserError(f"--limit {limit}: must be a positive number of characters")
    require(c, "git", "kustomize" if find_tool("kustomize") else "kubectl")
    ref = base or default_branch(root)
    commit = git_commit(root, ref)  # never an option to git, whatever --base says
    if is_dry(c):
        print(
            f"would build the Flux tree at {ref} (temporary git worktree) and the working tree, and diff them"
        )
        return
    text = diff_against(root, commit, fluxtree.analyse(root), limit=limit, helm=helm, label=ref)
    if output_file:
        write_output(Path(output_file), text)
        print(f"wrote {output_file}", file=sys.stderr)
    print(text, end="")


# Branch testing ----------------------------------------------------------------------------
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


@task
def start(c: Context) -> None:
    """Point the cluster's Flux at the current branch to test it live.

    Refuses on the default branch, on a detached HEAD and on a branch that is not pushed.
    Suspends the HelmRelease that manages the FluxInstance (it would revert the change),
    patches the FluxInstance's sync ref, remembers the previous ref, and reconciles.
    Does nothing it does not need to; `inv dev.stop` undoes it.
    """
    from tasks.lib.gitremote import current_branch, default_branch

    root = paths_for(c).root
    branch = current_branch(root)
    default = default_branch(root).split("/", 1)[-1]
    if branch in {default, "main"}:
        raise UserError(
            f"on '{branch}', the default branch: Flux already follows it (dev.start is for other branches)"
        )
    ensure_pushed(c, branch)
    needs_cluster(c, "kubectl", "flux")
    for line in follow_branch(c, branch):
        print(line)
    reconcile_flux(c)


@task
def stop(c: Context) -> None:
    """Point the cluster's Flux back at the default branch after `inv dev.start`.

    Restores the FluxInstance's sync ref (the one dev.start remembered, else the default
    branch), resumes the HelmRelease that manages it, and reconciles. Idempotent.
    """
    from tasks.lib.gitremote import default_branch

    needs_cluster(c, "kubectl", "flux")
    for line in follow_default(c, default_branch(paths_for(c).root).split("/", 1)[-1]):
        print(line)
    reconcile_flux(c)


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
    from tasks.lib.selftest import (
        STEPS,
        require_example,
        resolve_configs,
        run_config,
        step_label,
        summary_lines,
        worktree_files,
    )

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
    for line in summary_lines(results):
        print(line)
    if not all(r.ok for r in results):
        raise Exit(code=1)


@task(
    help={
        "controlplanes": "how many controllers to boot, or how many of --nodes are controllers (default 1)",
        "workers": "workers to boot (default 1); with --nodes: the addresses after the controllers",
        "nodes": "ADDR,ADDR,...: nodes someone else booted in maintenance mode, controllers first",
        "cidr": "the VM network (default 10.5.0.0/24, talosctl's own)",
        "gateway": "this machine's address on that network (default: its first address)",
        "diagnostics": "a folder in the repository for the diagnostics (default cluster-test-diagnostics)",
    }
)
def cluster_test(
    c: Context,
    controlplanes: int = 1,
    workers: int = -1,
    nodes: str = "",
    cidr: str = "10.5.0.0/24",
    gateway: str = "",
    diagnostics: str = "cluster-test-diagnostics",
) -> None:
    """Boot Talos VMs, bootstrap this repository onto them and prove Flux, SOPS and day 2 work.

    Boots maintenance-mode VMs with `talosctl cluster create qemu` (needs KVM, QEMU and sudo),
    or takes --nodes someone else booted; discovers them, writes nodes.yaml and a cluster.yaml
    for their network in a scratch copy of the repository (your own files are never touched),
    runs init (a throw-away key) and configure there, serves it over git from this machine,
    runs bootstrap.talos and bootstrap.apps, and waits until nodes, system pods and every Flux
    object are Ready. Then configure and both bootstraps again (idempotent), a SOPS Secret
    Flux must decrypt, app.new pushed until Ready and talos.upgrade of one node. A failure
    collects the cluster's state into --diagnostics; the VMs, the server and the scratch copy
    are always removed, Ctrl-C included. `inv --dry dev.cluster-test` prints every step.
    """
    from tasks.lib.clustertest import journey

    options = journey.Options(
        controlplanes=controlplanes,
        workers=workers,
        nodes=nodes,
        cidr=cidr,
        gateway=gateway,
        diagnostics=diagnostics,
    )
    journey.run(c, paths_for(c), options)


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
for _task in (validate, diff, start, stop, e2e, cluster_test, test):
    ns.add_task(_task)
