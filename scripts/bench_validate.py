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

The machine may be shared and busy: the contenders run in turn, round after round
(``--runs``), so each round meets the same load; the table gives each one's median, the
median of the per-round ratios to ours, and the 1-minute load average around the runs. Our
time is then checked to grow about linearly with N. A tool that is missing is reported as
not run, never as a failure. The baselines run with this checkout's tools first on PATH
(the same kustomize, flux and helm as ours).

    python scripts/bench_validate.py                          # 50 and 200 apps (quick)
    python scripts/bench_validate.py --runs 5 --sizes 50 200 500 --repo ~/src/home-ops
"""

from __future__ import annotations

import argparse
import os
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
    wall: float
    cpu: float  # utilisation over all cores
    peak_mb: float  # largest resident set of the process or any command it waited for
    ok: bool
    load: float  # 1-minute load average when it started


def measured(argv: list[str], ok_codes: tuple[int, ...] = (0,)) -> Measure:
    """Run ``argv`` and measure it (wait4 reports the peak memory of it and its commands)."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        process = subprocess.Popen(argv, stdout=devnull, stderr=devnull, stdin=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    cpu = (usage.ru_utime + usage.ru_stime) / wall / (os.cpu_count() or 1)
    code = os.waitstatus_to_exitcode(status)
    return Measure(wall, cpu, usage.ru_maxrss / 1024, code in ok_codes, load)


def measured_loop(commands: list[list[str]]) -> Measure:
    """Several commands one after the other, measured as one (a forked child runs them)."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        for argv in commands:
            subprocess.run(argv, capture_output=True, check=False)
        os._exit(0)
    _pid, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    cpu = (usage.ru_utime + usage.ru_stime) / wall / (os.cpu_count() or 1)
    return Measure(wall, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status) == 0, load)


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


def flux_builds(path: Path) -> tuple[Callable[[], Measure], int] | None:
    """One ``flux build kustomization`` per Flux Kustomization our validator built."""
    if shutil.which("flux") is None:
        return None
    from tasks.lib.fluxtree import validate
    from tasks.lib.fluxtree.yamlio import dump

    tree = validate(path)
    jobs = []
    work = Path(tempfile.mkdtemp(prefix="bench-flux-"))
    for index, ks in enumerate(tree.kustomizations.values()):
        if ks.synthetic or not ks.built:
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
    return (lambda: measured_loop(jobs)), len(jobs)


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


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def show(label: str, name: str, runs: list[Measure], mine: list[Measure] | None) -> None:
    wall = median([m.wall for m in runs])
    ratio = ""
    if mine:
        paired = [t.wall / o.wall for t, o in zip(runs, mine, strict=False)]
        ratio = f"  {median(paired):5.1f}x ours (rounds {', '.join(f'{r:.1f}' for r in paired)})"
    failed = "" if all(m.ok for m in runs) else "  (failed)"
    cpu = median([m.cpu for m in runs])
    peak = max(m.peak_mb for m in runs)
    print(f"{label:>16}  {name:<13} {wall:7.2f}s  cpu {cpu:4.0%}  peak {peak:6.0f} MB{ratio}{failed}")


def bench(
    label: str,
    path: Path,
    root: Path,
    runs: int,
    rows: list[tuple[str, int | None, float]],
    apps: int | None = None,
    slow: bool = True,
    flux_local_test: bool = False,
) -> None:
    from tasks.lib.fluxtree import locate

    contenders: dict[str, Callable[[], Measure]] = {"ours": ours(path)}
    if slow and flux_local_unavailable() is None:
        entry = locate(path)[1]
        contenders["flux-local"] = flux_local(entry, "build")
        if flux_local_test:
            contenders["flux-local test"] = flux_local(entry, "test")
    loop = flux_builds(path) if slow else None
    if loop is not None:
        contenders[f"flux x{loop[1]}"] = loop[0]
    contenders["kustomize"] = baseline(root)
    results: dict[str, list[Measure]] = {name: [] for name in contenders}
    for _round in range(runs):
        for name, run in contenders.items():  # in turn: each round meets the same load
            results[name].append(run())
    mine = results["ours"]
    rows.append((label, apps, median([m.wall for m in mine])))
    loads = [m.load for ms in results.values() for m in ms]
    print(f"{label:>16}  {runs} round(s), load {min(loads):.1f}-{max(loads):.1f} (1-minute average)")
    for name, measures in results.items():
        show("", name, measures, None if name == "ours" else mine)
    if not slow:
        print(f"{'':>16}  flux build / flux-local  not run (--slow-max-apps)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[50, 200], help="numbers of apps (default 50 200)"
    )
    parser.add_argument(
        "--repo", type=Path, action="append", default=[], help="a real Flux repository (or cluster folder)"
    )
    parser.add_argument("--runs", type=int, default=3, help="rounds of paired runs (default 3)")
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
    print(f"{os.cpu_count()} core(s); kustomize: {' '.join(kustomize_argv(Path('DIR'))[:-1])}")
    rows: list[tuple[str, int | None, float]] = []
    reason = flux_local_unavailable()
    if reason:
        print(f"flux-local: {reason}")
    from tasks.lib.fluxtree import EntryNotFound, locate

    for repo in args.repo:
        try:
            root, _entry = locate(repo)
        except EntryNotFound as error:
            print(f"{repo}: skipped ({error})")
            continue
        bench(repo.name[:16], repo, root, args.runs, rows, flux_local_test=args.flux_local_test)
    if (ROOT / "kubernetes/flux/cluster").is_dir() and not args.repo:
        bench("example", ROOT, ROOT, args.runs, rows, flux_local_test=args.flux_local_test)
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        for apps in args.sizes:
            root = generate(Path(tmp) / f"r{apps}", apps)
            slow = args.slow_max_apps is None or apps <= args.slow_max_apps
            bench(f"{apps} apps", root, root, args.runs, rows, apps, slow, args.flux_local_test)
    sized = [(apps, wall) for _label, apps, wall in rows if apps]
    if len(sized) >= 2:
        (small, t_small), (large, t_large) = sized[0], sized[-1]
        growth = t_large / t_small
        print(f"growth: {large / small:.0f}x apps -> {growth:.1f}x time ", end="")
        per_app = [wall / apps for apps, wall in sized]
        verdict = "linear or better" if per_app[-1] <= per_app[0] * 1.25 else "SUPERLINEAR"
        print(f"(per app {', '.join(f'{1000 * p:.1f}ms' for p in per_app)}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
