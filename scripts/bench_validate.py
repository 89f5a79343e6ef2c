#!/usr/bin/env python3
"""Benchmark `inv dev.validate` against the approaches it replaces.

For generated Flux trees of N apps (the layout of the Talos + Flux home-ops family: one
namespace Kustomization per namespace, one Flux Kustomization per app with components and
postBuild substitution, an OCIRepository + HelmRelease per app), for the committed example
tree when present, and for any real repository given with ``--repo PATH``, it times, in one
run and each in its own process (wall time, CPU, peak memory of the process and what it
started):

- ours: the offline validator (discovery, batched parallel kustomize builds, substitution,
  every check);
- flux build: one ``flux build kustomization NAME --path P --kustomization-file F
  --dry-run`` per Flux Kustomization we found (what a CI loop around the flux CLI does);
- kustomize: one ``kubectl kustomize`` (or ``kustomize build``) per kustomization
  directory, sequentially, nothing else (the anchor's approach);
- flux-local: ``flux-local get ks`` and ``get hr`` on the same tree (its own builds), when it
  and the tools it needs (a standalone kustomize and the flux CLI) are installed.

Prints each time, its ratio to ours and the peak memory, then checks that our time grows
about linearly with N. A tool that is missing is reported as not run, never as a failure.

    python scripts/bench_validate.py                          # 50 and 200 apps (quick)
    python scripts/bench_validate.py --sizes 50 200 500 --repo ~/src/home-ops
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def measured(func: Callable[[], object]) -> Measure:
    """Run ``func`` in a forked child and measure it (wait4 reports the child's peak memory,
    its commands' included)."""
    sys.stdout.flush()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            func()
        except BaseException as error:
            print(f"    failed: {error}", file=sys.stderr)
            code = 1
        sys.stdout.flush()
        os._exit(code)
    _pid, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    cpu = (usage.ru_utime + usage.ru_stime) / wall / (os.cpu_count() or 1)
    return Measure(wall, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status) == 0)


def ours(path: Path, strict: bool) -> Callable[[], object]:
    from tasks.lib.fluxtree import validate

    def run() -> None:
        tree = validate(path)
        if strict and tree.problems:
            raise SystemExit(f"unexpected problems in {path}: {[str(p) for p in tree.problems[:5]]}")

    return run


def baseline(root: Path) -> Callable[[], object]:
    tool = ["kubectl", "kustomize"] if shutil.which("kubectl") else kustomize_argv(Path("."))[:-1]

    def run() -> None:
        for directory in kustomization_dirs(root):
            subprocess.run([*tool, str(directory)], capture_output=True, check=False)

    return run


def flux_builds(path: Path) -> tuple[Callable[[], object], int] | None:
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

    def run() -> None:
        for argv in jobs:
            subprocess.run(argv, capture_output=True, check=False)

    return run, len(jobs)


def flux_local_unavailable() -> str | None:
    missing = [tool for tool in ("flux-local", "kustomize", "flux") if shutil.which(tool) is None]
    if missing:
        needs = "flux-local needs a standalone kustomize and the flux CLI"
        return f"not run: {', '.join(missing)} not installed ({needs})"
    return None


def flux_local(entry: Path) -> Callable[[], object]:
    """``flux-local get ks`` and ``get hr`` from the cluster folder (flux-local finds the
    repository root with git, so generated trees are made git repositories first)."""
    if (
        not (entry / ".git").exists()
        and subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=entry, capture_output=True, check=False
        ).returncode
    ):
        root = entry.parents[2] if entry.match("kubernetes/flux/cluster") else entry
        for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
            subprocess.run(
                ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *argv[1:]],
                cwd=root,
                capture_output=True,
                check=True,
            )

    def run() -> None:
        for what in ("ks", "hr"):
            done = subprocess.run(
                ["flux-local", "get", what, "--all-namespaces", "--path", str(entry)],
                capture_output=True,
                text=True,
                errors="replace",
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(done.stderr.strip().splitlines()[-1:])

    return run


def show(label: str, name: str, m: Measure, reference: Measure | None) -> None:
    ratio = f"  {m.wall / reference.wall:5.1f}x ours" if reference else ""
    failed = "" if m.ok else "  (failed)"
    print(
        f"{label:>16}  {name:<11} {m.wall:7.2f}s  cpu {m.cpu:4.0%}  peak {m.peak_mb:6.0f} MB{ratio}{failed}"
    )


def bench(
    label: str,
    path: Path,
    root: Path,
    apps: int | None,
    rows: list[tuple[str, int | None, float]],
    slow: bool = True,
) -> None:
    mine = measured(ours(path, strict=apps is not None))
    rows.append((label, apps, mine.wall))
    show(label, "ours", mine, None)
    show("", "kustomize", measured(baseline(root)), mine)
    if not slow:
        print(f"{'':>16}  flux build / flux-local  not run (--slow-max-apps)")
        return
    loop = flux_builds(path)
    if loop is None:
        print(f"{'':>16}  flux build  not run: flux not installed")
    else:
        show("", f"flux x{loop[1]}", measured(loop[0]), mine)
    if flux_local_unavailable() is None:
        from tasks.lib.fluxtree import locate

        show("", "flux-local", measured(flux_local(locate(path)[1])), mine)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[50, 200], help="numbers of apps (default 50 200)"
    )
    parser.add_argument(
        "--repo", type=Path, action="append", default=[], help="a real Flux repository (or cluster folder)"
    )
    parser.add_argument(
        "--slow-max-apps",
        type=int,
        default=None,
        help="run the flux build loop and flux-local only on generated trees up to this size",
    )
    args = parser.parse_args()
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
        bench(repo.name[:16], repo, root, None, rows)
    if (ROOT / "kubernetes/flux/cluster").is_dir() and not args.repo:
        bench("example", ROOT, ROOT, None, rows)
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        for apps in args.sizes:
            root = generate(Path(tmp) / f"r{apps}", apps)
            slow = args.slow_max_apps is None or apps <= args.slow_max_apps
            bench(f"{apps} apps", root, root, apps, rows, slow=slow)
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
