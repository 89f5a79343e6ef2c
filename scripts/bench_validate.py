#!/usr/bin/env python3
"""Benchmark `inv dev.validate` against the approaches it replaces.

For generated Flux trees of N apps (the layout of the Talos + Flux home-ops family: one
namespace Kustomization per namespace, one Flux Kustomization per app with components and
postBuild substitution, an OCIRepository + HelmRelease per app) and for the committed
example tree when present, it times:

- ours: the offline validator (discovery, batched parallel kustomize builds, substitution,
  every check);
- baseline: the anchor's approach done by hand -- one kustomize build per kustomization
  directory, sequentially, nothing else;
- flux-local: `flux-local test` on the same tree, when it and the tools it needs (a
  standalone kustomize and the flux CLI) are installed; otherwise it says why not.

Prints wall time, the ratio to ours, and CPU utilisation ((user+sys) / wall / cores, of
the process and its children), then checks that our time grows about linearly with N.

    python scripts/bench_validate.py                 # 50 and 200 apps (quick)
    python scripts/bench_validate.py --sizes 50 200 500
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


def measured(func: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU utilisation of this process and its children over all cores)."""
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    func()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(
        (a.ru_utime - b.ru_utime) + (a.ru_stime - b.ru_stime) for a, b in zip(after, before, strict=True)
    )
    return wall, cpu / wall / (os.cpu_count() or 1)


def ours(root: Path) -> Callable[[], object]:
    from tasks.lib.fluxtree import validate

    def run() -> None:
        tree = validate(root)
        if tree.problems:
            raise SystemExit(f"unexpected problems in {root}: {[str(p) for p in tree.problems[:5]]}")

    return run


def baseline(root: Path) -> Callable[[], object]:
    def run() -> None:
        for directory in kustomization_dirs(root):
            subprocess.run(kustomize_argv(directory), capture_output=True, check=True)

    return run


def flux_local_unavailable() -> str | None:
    missing = [tool for tool in ("flux-local", "kustomize", "flux") if shutil.which(tool) is None]
    if missing:
        needs = "flux-local needs a standalone kustomize and the flux CLI"
        return f"not run: {', '.join(missing)} not installed ({needs})"
    return None


def flux_local(root: Path) -> Callable[[], object]:
    def run() -> None:
        subprocess.run(["flux-local", "test", "--path", str(root / "kubernetes/flux/cluster")], check=False)

    return run


def bench(label: str, root: Path, apps: int | None, rows: list[tuple[str, int | None, float]]) -> None:
    wall, cpu = measured(ours(root))
    rows.append((label, apps, wall))
    print(f"{label:>14}  ours      {wall:7.2f}s  cpu {cpu:4.0%}")
    base_wall, base_cpu = measured(baseline(root))
    print(f"{'':>14}  baseline  {base_wall:7.2f}s  cpu {base_cpu:4.0%}  ({base_wall / wall:.1f}x ours)")
    if flux_local_unavailable() is None:
        fl_wall, fl_cpu = measured(flux_local(root))
        print(f"{'':>14}  flux-local {fl_wall:6.2f}s  cpu {fl_cpu:4.0%}  ({fl_wall / wall:.1f}x ours)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[50, 200], help="numbers of apps (default 50 200)"
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} core(s); kustomize: {' '.join(kustomize_argv(Path('DIR'))[:-1])}")
    rows: list[tuple[str, int | None, float]] = []
    reason = flux_local_unavailable()
    if reason:
        print(f"flux-local: {reason}")
    if (ROOT / "kubernetes/flux/cluster").is_dir():
        bench("example", ROOT, None, rows)
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        for apps in args.sizes:
            bench(f"{apps} apps", generate(Path(tmp) / f"r{apps}", apps), apps, rows)
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
