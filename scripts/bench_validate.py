#!/usr/bin/env python3
"""Benchmark `inv dev.validate` against the approaches it replaces, in paired runs.

For any real repository given with ``--repo PATH``, the committed example tree when present,
and generated Flux trees of N apps (the layout of the Talos + Flux home-ops family: one
namespace Kustomization per namespace, one Flux Kustomization per app with components and
postBuild substitution, an OCIRepository + HelmRelease per app), it times, each in its own
process (wall time, CPU, peak memory of the process and what it started):

- ours: ``inv dev.validate`` as a user runs it (interpreter start included: discovery,
  batched parallel kustomize builds, substitution, every check, kubeconform);
- flux-local: ``flux-local build all`` (and ``flux-local test`` with ``--flux-local-test``)
  on the cluster folder, when flux-local and the tools it needs are installed;
- flux build: one ``flux build kustomization NAME --path P --kustomization-file F
  --dry-run`` per Flux Kustomization we found (what a CI loop around the flux CLI does);
- kustomize: one ``kubectl kustomize`` (or ``kustomize build``) per kustomization
  directory, sequentially, nothing else.

The machine may be shared and busy: after an untimed warm-up round the contenders run in
turn, round after round (``--runs``), so each round meets the same load; the report gives
each one's median wall and CPU time, the median of the per-round ratios to ours, peak
memory and the 1-minute load average around the runs, then checks that our time per app
stays flat from 50 to 500 apps, and ends with a markdown table. A tool that is missing is
reported as not run, never as a failure. The baselines run with this checkout's tools first
on PATH (the same kustomize, flux and helm as ours).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAMESPACES = 10

CLUSTER_KS = """---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: cluster-apps
  namespace: flux-system
spec:
  interval: 1h
  path: ./kubernetes/apps
  prune: true
  postBuild:
    substituteFrom:
      - kind: ConfigMap
        name: cluster-settings
  sourceRef:
    kind: GitRepository
    name: flux-system
  patches:
    - patch: |-
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: _
        spec:
          postBuild:
            substituteFrom:
              - kind: ConfigMap
                name: cluster-settings
      target:
        group: kustomize.toolkit.fluxcd.io
        kind: Kustomization
"""

COMPONENT = """---
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
  - ./pvc.yaml
"""

PVC = """---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: "${APP}"
spec:
  accessModes: ["ReadWriteOnce"]
  resources:
    requests:
      storage: "${VOLSYNC_CAPACITY:=1Gi}"
"""

SETTINGS = """---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-settings
data:
  DOMAIN: example.com
"""

APP_KS = """---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {app}
spec:
  components:
    - ../../../../components/volsync
  dependsOn:
    - name: {dep}
  interval: 1h
  path: ./kubernetes/apps/{ns}/{app}/app
  postBuild:
    substitute:
      APP: {app}
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
    namespace: flux-system
  targetNamespace: {ns}
"""

APP_KUSTOMIZATION = """---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ./ocirepository.yaml
  - ./helmrelease.yaml
"""

OCI = """---
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: {app}
spec:
  interval: 1h
  ref:
    tag: 4.4.0
  url: oci://ghcr.io/bjw-s-labs/helm/app-template
"""

RELEASE = """---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: {app}
spec:
  chartRef:
    kind: OCIRepository
    name: {app}
  interval: 1h
  values:
    controllers:
      app:
        containers:
          app:
            image:
              repository: ghcr.io/example/{app}
              tag: 1.0.0
    route:
      app:
        hostnames: ["{app}.${{DOMAIN}}"]
"""


KUSTOMIZATION = "---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"

GATE_KS = """---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: cluster-apps-ready
  namespace: {ns}
spec:
  interval: 1h
  path: ./kubernetes/flux/gate
  targetNamespace: {ns}
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
    namespace: flux-system
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def generate(root: Path, apps: int) -> Path:
    """A Flux repository with ``apps`` apps spread over a few namespaces."""
    k = root / "kubernetes"
    write(k / "flux/cluster/ks.yaml", CLUSTER_KS)
    write(
        k / "flux/cluster/settings.yaml",
        SETTINGS.replace("  name: cluster-settings", "  name: cluster-settings\n  namespace: flux-system"),
    )
    write(k / "components/volsync/kustomization.yaml", COMPONENT)
    write(k / "components/volsync/pvc.yaml", PVC)
    per_ns: dict[str, list[str]] = {}
    for index in range(apps):
        ns = f"ns{index % NAMESPACES}"
        app = f"app{index}"
        previous = per_ns.setdefault(ns, [])
        dep = previous[-1] if previous else app
        if dep == app:
            dep = "cluster-apps-ready"
        write(k / f"apps/{ns}/{app}/ks.yaml", APP_KS.format(app=app, ns=ns, dep=dep))
        write(k / f"apps/{ns}/{app}/app/kustomization.yaml", APP_KUSTOMIZATION)
        write(k / f"apps/{ns}/{app}/app/ocirepository.yaml", OCI.format(app=app))
        write(k / f"apps/{ns}/{app}/app/helmrelease.yaml", RELEASE.format(app=app))
        previous.append(app)
    for ns, names in per_ns.items():
        resources = "".join(f"  - ./{name}/ks.yaml\n" for name in names)
        write(k / f"apps/{ns}/settings.yaml", SETTINGS)
        write(
            k / f"apps/{ns}/namespace.yaml",
            f"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n",
        )
        write(
            k / f"apps/{ns}/kustomization.yaml",
            KUSTOMIZATION
            + f"namespace: {ns}\nresources:\n  - ./namespace.yaml\n  - ./settings.yaml\n{resources}",
        )
    # The first app of each namespace depends on a Kustomization that gates the namespace.
    gate = "".join(GATE_KS.format(ns=ns) for ns in per_ns)
    write(k / "apps/gates.yaml", gate)
    write(k / "flux/gate/kustomization.yaml", KUSTOMIZATION + "resources:\n  - ./ready.yaml\n")
    write(k / "flux/gate/ready.yaml", "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ready\n")
    write(
        k / "apps/kustomization.yaml",
        KUSTOMIZATION + "resources:\n  - ./gates.yaml\n" + "".join(f"  - ./{ns}\n" for ns in per_ns),
    )
    return root


def kustomize_argv(directory: Path) -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(directory)]
    return ["kubectl", "kustomize", str(directory)]


def kustomization_dirs(root: Path) -> list[Path]:
    """Every directory holding a kustomization that can be built on its own (not a Component)."""
    dirs = []
    for path in sorted((root / "kubernetes").rglob("kustomization.yaml")):
        if "kind: Component" not in path.read_text():
            dirs.append(path.parent)
    return dirs


@dataclass
class Measure:
    wall: float  # seconds
    cpu: float  # seconds of user + system time of the process and what it waited for
    peak_mb: float  # largest resident set of the process or any command it waited for
    ok: bool
    load: float  # 1-minute load average when it started


def _measure(
    started: float, load: float, status: int, usage: resource.struct_rusage, ok: tuple[int, ...]
) -> Measure:
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    return Measure(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code in ok, load)


def measured(argv: list[str], ok_codes: tuple[int, ...] = (0,)) -> Measure:
    """Run ``argv`` and measure it (wait4 reports the CPU and peak memory of it and its commands)."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        process = subprocess.Popen(argv, stdout=devnull, stderr=devnull, stdin=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(process.pid, 0)
    return _measure(started, load, status, usage, ok_codes)


def measured_loop(commands: list[list[str]]) -> Measure:
    """Several commands one after the other, measured as one (a forked child runs them)."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        failed = 0
        for argv in commands:
            failed |= subprocess.run(argv, capture_output=True, check=False).returncode
        os._exit(1 if failed else 0)
    _pid, status, usage = os.wait4(pid, 0)
    return _measure(started, load, status, usage, (0,))


def ours(path: Path) -> Callable[[], Measure]:
    """``inv dev.validate`` in its own interpreter (exit 1, problems found, is a result too)."""
    argv = [
        sys.executable,
        "-m",
        "invoke",
        "--search-root",
        str(ROOT),
        "dev.validate",
        "--json",
        "--path",
        str(path),
    ]
    return lambda: measured(argv, ok_codes=(0, 1))


def baseline(root: Path) -> Callable[[], Measure]:
    tool = ["kubectl", "kustomize"] if shutil.which("kubectl") else kustomize_argv(Path("."))[:-1]
    return lambda: measured_loop([[*tool, str(directory)] for directory in kustomization_dirs(root)])


@dataclass
class Found:
    """What our validator finds in a tree: the Flux build loop's commands and the counts."""

    kustomizations: int
    built: int
    flux_jobs: list[list[str]]


def survey(path: Path, work: Path) -> Found:
    """Our validator's Kustomizations at ``path``, and one ``flux build kustomization`` per
    Kustomization it built (the spec it saw written to a file in ``work``)."""
    from tasks.lib.fluxtree import validate
    from tasks.lib.fluxtree.yamlio import dump

    tree = validate(path)
    jobs = []
    real = [ks for ks in tree.kustomizations.values() if not ks.synthetic]
    for index, ks in enumerate(real):
        if not ks.built:
            continue
        body = {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": ks.name, "namespace": ks.namespace},
            "spec": ks.spec,
        }
        file = work / f"ks{index}.yaml"
        file.write_text(dump(body))
        jobs.append(
            ["flux", "build", "kustomization", ks.name, "--namespace", ks.namespace,
             "--path", str(Path(tree.root) / ks.path), "--kustomization-file", str(file), "--dry-run"]
        )  # fmt: skip
    return Found(len(real), sum(1 for ks in real if ks.built), jobs)


def flux_local_unavailable() -> str | None:
    missing = [tool for tool in ("flux-local", "kustomize", "flux", "helm") if shutil.which(tool) is None]
    if missing:
        needs = "flux-local needs a standalone kustomize, the flux CLI and helm"
        return f"not run: {', '.join(missing)} not installed ({needs})"
    return None


def git_repository(entry: Path) -> None:
    """flux-local finds the repository root with git: a generated tree becomes one."""
    probe = ["git", "rev-parse", "--show-toplevel"]
    if (entry / ".git").exists() or subprocess.run(probe, cwd=entry, capture_output=True).returncode == 0:
        return
    root = entry.parents[2] if entry.match("kubernetes/flux/cluster") else entry
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *argv]
        subprocess.run(git, cwd=root, capture_output=True, check=True)


def flux_local(entry: Path, what: str) -> Callable[[], Measure]:
    """``flux-local build all PATH`` or ``flux-local test --path PATH`` on the cluster folder."""
    git_repository(entry)
    if what == "build":
        argv = ["flux-local", "build", "all", str(entry)]
    else:
        argv = ["flux-local", "test", "--path", str(entry)]
    return lambda: measured(argv)


def commit_of(path: Path) -> str:
    """The short commit of the checkout at ``path`` (``+changes`` when its tree differs), or "-"."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True, text=True)
    if head.returncode != 0:
        return "-"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=path, capture_output=True
    )
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One tree's paired results: each contender's measures, round by round."""

    label: str
    commit: str
    found: Found
    results: dict[str, list[Measure]]
    apps: int | None = None

    def wall(self, name: str) -> float:
        return median([m.wall for m in self.results[name]])

    def cpu(self, name: str) -> float:
        return median([m.cpu for m in self.results[name]])

    def peak(self, name: str) -> float:
        return max(m.peak_mb for m in self.results[name])

    def ratio(self, name: str, what: str) -> float:
        """Median over rounds of the contender's time divided by ours in the same round."""
        pairs = zip(self.results[name], self.results["ours"], strict=True)
        return median([getattr(theirs, what) / getattr(mine, what) for theirs, mine in pairs])

    def loads(self) -> tuple[float, float]:
        loads = [m.load for measures in self.results.values() for m in measures]
        return min(loads), max(loads)


def show(row: Row) -> None:
    """The tree's results as plain lines, as soon as they are known."""
    low, high = row.loads()
    rounds = len(row.results["ours"])
    print(f"{row.label}: {rounds} round(s), load {low:.1f}-{high:.1f} (1-minute average)")
    for name, measures in row.results.items():
        ratio = ""
        if name != "ours":
            walls = [t.wall / o.wall for t, o in zip(measures, row.results["ours"], strict=True)]
            ratio = (
                f"  {row.ratio(name, 'wall'):5.1f}x wall, {row.ratio(name, 'cpu'):5.1f}x cpu"
                f" (rounds {', '.join(f'{r:.1f}' for r in walls)})"
            )
        failed = "" if all(m.ok for m in measures) else "  (failed)"
        print(
            f"  {name:<20} {row.wall(name):7.2f}s  cpu {row.cpu(name):6.2f}s  "
            f"peak {row.peak(name):5.0f} MB{ratio}{failed}"
        )


def cell(row: Row, name: str) -> str:
    if name not in row.results:
        return "not run"
    failed = "" if all(m.ok for m in row.results[name]) else " (failed)"
    return f"{row.wall(name):.2f} s / {row.cpu(name):.2f} s{failed}"


def versus(row: Row, name: str) -> str:
    if name not in row.results:
        return "-"
    return f"{row.ratio(name, 'wall'):.1f}x / {row.ratio(name, 'cpu'):.1f}x"


def peaks(row: Row) -> str:
    return " / ".join(f"{row.peak(name):.0f}" if name in row.results else "-" for name in CONTENDERS[:3])


CONTENDERS = ("ours", "flux-local", "flux build loop", "kustomize per folder")


def markdown(rows: list[Row], ours_commit: str) -> str:
    """The results as the markdown table docs/tasks/dev.md publishes."""
    low = min(row.loads()[0] for row in rows)
    high = max(row.loads()[1] for row in rows)
    rounds = len(rows[0].results["ours"])
    lines = [
        f"Machine: {os.cpu_count()} cores, 1-minute load {low:.1f}-{high:.1f}; ours at commit "
        f"`{ours_commit}`; {rounds} paired round(s), medians; times are wall / CPU (user + system "
        "of the process and what it ran); ratios are the median of per-round ratios to ours.",
        "",
        "| Repository | Commit | Kustomizations (built) | Ours | flux-local build all | flux build loop "
        "| vs flux-local (wall / CPU) | vs flux build (wall / CPU) "
        "| Peak MB (ours / flux-local / flux build) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.label} | {row.commit} | {row.found.kustomizations} ({row.found.built}) "
            f"| {cell(row, 'ours')} | {cell(row, 'flux-local')} | {cell(row, 'flux build loop')} "
            f"| {versus(row, 'flux-local')} | {versus(row, 'flux build loop')} | {peaks(row)} |"
        )
    sized = [row for row in rows if row.apps]
    if sized:
        lines += [
            "",
            "| Apps | Kustomizations | Ours (wall) | Per app | Ours CPU | Peak MB |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for row in sized:
            assert row.apps is not None
            lines.append(
                f"| {row.apps} | {row.found.kustomizations} | {row.wall('ours'):.2f} s "
                f"| {1000 * row.wall('ours') / row.apps:.1f} ms | {row.cpu('ours'):.2f} s "
                f"| {row.peak('ours'):.0f} |"
            )
    return "\n".join(lines)


def linearity(rows: list[Row]) -> str | None:
    """Whether our time per app stays flat from the smallest generated tree to the largest."""
    sized = [(row.apps, row.wall("ours")) for row in rows if row.apps]
    if len(sized) < 2:
        return None
    per_app = [wall / apps for apps, wall in sized]
    (small, t_small), (large, t_large) = sized[0], sized[-1]
    verdict = "linear or better" if per_app[-1] <= per_app[0] * 1.25 else "SUPERLINEAR"
    listed = ", ".join(f"{apps}: {1000 * p:.1f} ms" for (apps, _), p in zip(sized, per_app, strict=True))
    return f"growth: {large / small:.0f}x apps -> {t_large / t_small:.1f}x time (per app {listed}): {verdict}"


@dataclass
class Plan:
    runs: int
    warmup: int
    slow: bool = True  # run flux-local and the flux build loop
    flux_local_test: bool = False


def bench(label: str, path: Path, root: Path, plan: Plan, work: Path, apps: int | None = None) -> Row:
    """Every contender on one tree, in turn, round after round (warm-up rounds not counted)."""
    from tasks.lib.fluxtree import locate

    found = survey(path, work)
    contenders: dict[str, Callable[[], Measure]] = {"ours": ours(path)}
    if plan.slow and flux_local_unavailable() is None:
        entry = locate(path)[1]
        contenders["flux-local"] = flux_local(entry, "build")
        if plan.flux_local_test:
            contenders["flux-local test"] = flux_local(entry, "test")
    if plan.slow and shutil.which("flux") is not None:
        jobs = found.flux_jobs
        contenders["flux build loop"] = lambda: measured_loop(jobs)
    contenders["kustomize per folder"] = baseline(root)
    for _round in range(plan.warmup):  # caches (files, Python bytecode) as a user's second run
        for run in contenders.values():
            run()
    results: dict[str, list[Measure]] = {name: [] for name in contenders}
    for _round in range(plan.runs):
        for name, run in contenders.items():  # in turn: each round meets the same load
            results[name].append(run())
    row = Row(label, commit_of(path) if apps is None else "generated", found, results, apps)
    show(row)
    return row


EPILOG = """\
examples:
  scripts/bench_validate.py --sizes 50                 # a quick look (about a minute)
  scripts/bench_validate.py --runs 3 --repo ~/src/home-ops
      the published table: the real repository, then 50/100/250/500 generated apps, every
      contender at every size (about 20 minutes on 2 cores; --slow-max-apps 100 skips
      flux-local and the flux build loop above 100 apps)

flux-local must be on PATH (pip install flux-local) with kustomize, flux and helm; this
checkout's .tools/bin comes first on PATH, so every contender uses the same tools. The
last lines are a markdown table for docs/tasks/dev.md.
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[50, 100, 250, 500],
        help="numbers of apps of the generated trees (default 50 100 250 500; none: --sizes)",
    )
    parser.add_argument(
        "--repo", type=Path, action="append", default=[], help="a real Flux repository (or cluster folder)"
    )
    parser.add_argument("--runs", type=int, default=3, help="rounds of paired runs (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument(
        "--slow-max-apps",
        type=int,
        default=None,
        help="run the flux build loop and flux-local only on generated trees up to this size",
    )
    parser.add_argument("--flux-local-test", action="store_true", help="also time `flux-local test`")
    args = parser.parse_args()
    from tasks.lib.tools.runner import search_path

    os.environ["PATH"] = os.pathsep.join([str(ROOT / ".tools" / "bin"), search_path()])
    # Python caches compiled modules for every contender, as on a user's machine.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"{os.cpu_count()} core(s); kustomize: {' '.join(kustomize_argv(Path('DIR'))[:-1])}")
    reason = flux_local_unavailable()
    if reason:
        print(f"flux-local: {reason}")
    from tasks.lib.fluxtree import EntryNotFound, locate

    rows: list[Row] = []
    plan = Plan(args.runs, args.warmup, flux_local_test=args.flux_local_test)
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        work = Path(tmp)
        for repo in args.repo:
            try:
                root, _entry = locate(repo)
            except EntryNotFound as error:
                print(f"{repo}: skipped ({error})")
                continue
            rows.append(bench(repo.resolve().name, repo, root, plan, work))
        if (ROOT / "kubernetes/flux/cluster").is_dir() and not args.repo:
            rows.append(bench("example", ROOT, ROOT, plan, work))
        for apps in args.sizes:
            root = generate(work / f"r{apps}", apps)
            slow = args.slow_max_apps is None or apps <= args.slow_max_apps
            sized = Plan(args.runs, args.warmup, slow, args.flux_local_test)
            rows.append(bench(f"{apps} apps", root, root, sized, work, apps))
    if verdict := linearity(rows):
        print(verdict)
    if rows:
        print()
        print(markdown(rows, commit_of(ROOT)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
