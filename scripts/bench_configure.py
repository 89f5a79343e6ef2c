#!/usr/bin/env python3
"""Benchmark `inv configure` against the Taskfile era's flow, and `inv --list` against Invoke.

For the bundled example and for a 12-node variant, in throw-away copies of the repository
(this checkout's code, the example's inputs from tests/fixtures/example and its test-only
key: the work tree's own cluster.yaml, nodes.yaml and cluster.sops.yaml are never read, so
the benchmark gives the same figures before and after `inv init`):

- baseline: the anchor's sequential flow done by hand: the makejinja CLI, then one
  `sops --encrypt --in-place` per secret file, then one `kubectl kustomize` per
  kustomization directory (what `task configure` ran);
- `inv configure` on a tree with nothing rendered yet (fresh);
- `inv configure` again with nothing changed (no-change re-run).

Then `inv --list` of this task library against `inv --list` of Invoke itself with a
one-task module (Invoke's own floor). Runs are paired (baseline, then ours, on the same
fresh copy's twin) so background load hits both alike; each figure is the median of --runs
pairs, with the machine's load average before and after. Targets: configure at least 3x
faster than the baseline, a no-change re-run within 0.05 s of `inv --list`, `inv --list`
within 1.15x of Invoke's floor.

    python scripts/bench_configure.py [--runs 5]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks.lib.tools.runner import find_tool  # noqa: E402

OPERATOR = ROOT / "tests" / "fixtures" / "example-operator"
EXAMPLE = ROOT / "tests" / "fixtures" / "example"
SCRIPTS = Path(sys.executable).parent
CODE = ("tasks", "templates", "makejinja.toml", ".mise.toml", ".gitignore")
INPUTS = ("cluster.yaml", "nodes.yaml", "cluster.sops.yaml")


def environment() -> dict[str, str]:
    # A normal shell: Python may cache bytecode (some sandboxes forbid it, which would
    # charge every run for compiling makejinja, Jinja and Invoke from source).
    dropped = ("SOPS_CONFIG", "KUBECONFIG", "TALOSCONFIG", "PYTHONDONTWRITEBYTECODE", "SOPS_AGE_KEY")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["HOME_OPS_OPERATOR_DIR"] = str(OPERATOR)
    env["SOPS_AGE_KEY_FILE"] = str(OPERATOR / "age.key")
    env["PATH"] = f"{env.get('PATH', '')}{os.pathsep}{SCRIPTS}"
    return env


def fresh_copy(base: Path, nodes_yaml: str | None) -> Path:
    """This checkout's code and the bundled example's inputs (never the work tree's)."""
    repo = Path(tempfile.mkdtemp(dir=base))
    for item in CODE:
        source = ROOT / item
        if source.is_dir():  # with its compiled modules: a repository that has been used before
            shutil.copytree(source, repo / item)
        else:
            shutil.copy2(source, repo / item)
    for name in INPUTS:
        shutil.copy2(EXAMPLE / name, repo / name)
    if nodes_yaml is not None:
        (repo / "nodes.yaml").write_text(nodes_yaml)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo


def twelve_nodes() -> str:
    lines = ["---", "nodes:"]
    for index in range(12):
        lines += [
            f"  - name: k8s-{index}",
            f"    address: 192.168.1.{10 + index}",
            f"    controller: {'true' if index < 3 else 'false'}",
            "    disk: /dev/sda",
            f"    mac_addr: 00:00:5e:00:53:{10 + index:02x}",
            "    schematic_id: 376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba",
        ]
    return "\n".join(lines) + "\n"


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def check(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{result.stdout}\n{result.stderr}")


def baseline(repo: Path, env: dict[str, str]) -> None:
    """The anchor's `task configure`, step by step, one process at a time. sops is the Go
    binary itself (as mise installs it), not the launcher its wheel puts on PATH."""
    # The copy's own task library for the plugin (the installed project is this checkout,
    # whose cluster.sops.yaml `inv init` may have encrypted to another key).
    check([str(SCRIPTS / "makejinja")], repo, {**env, "PYTHONPATH": str(repo)})
    sops = find_tool("sops") or "sops"
    for root in ("bootstrap", "kubernetes", "talos"):
        for path in sorted((repo / root).rglob("*.sops.*")):
            check([sops, "--encrypt", "--in-place", str(path)], repo, env)
    for kustomization in sorted(repo.rglob("kustomization.yaml")):
        check(["kubectl", "kustomize", str(kustomization.parent)], repo, env)


def inv(repo: Path, env: dict[str, str], *args: str) -> None:
    """`inv ARGS` as the repository's own program runs it (`python -m tasks` in the copy)."""
    check([sys.executable, "-m", "tasks", *args], repo, env)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f}s (min {min(values):4.2f})"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


def measure_configure(label: str, nodes_yaml: str | None, runs: int, base: Path) -> dict[str, float]:
    """Baseline and ours alternate, so background noise hits both alike."""
    env = environment()
    results: dict[str, list[float]] = {"baseline": [], "fresh": [], "rerun": []}
    ratios: list[float] = []
    for _ in range(runs):
        repo = fresh_copy(base, nodes_yaml)
        results["baseline"].append(timed(lambda repo=repo: baseline(repo, env)))
        repo = fresh_copy(base, nodes_yaml)
        results["fresh"].append(timed(lambda repo=repo: inv(repo, env, "configure")))
        results["rerun"].append(timed(lambda repo=repo: inv(repo, env, "configure")))
        ratios.append(results["baseline"][-1] / results["fresh"][-1])
    medians = {key: statistics.median(values) for key, values in results.items()}
    medians["ratio"] = statistics.median(ratios)
    print(
        f"{label:<16} baseline {summary(results['baseline'])}   inv configure {summary(results['fresh'])}"
        f"   {medians['ratio']:3.1f}x faster (median of {runs} pairs)"
        f"   no-change re-run {summary(results['rerun'])}"
    )
    return medians


def measure_list(runs: int, base: Path) -> tuple[float, float]:
    env = environment()
    floor = Path(tempfile.mkdtemp(dir=base))
    # Invoke refuses a module without tasks, so its floor holds one no-op task.
    (floor / "tasks.py").write_text("from invoke import task\n\n\n@task\ndef noop(c):\n    pass\n")
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(runs):
        ours.append(timed(lambda: inv(ROOT, env, "--list")))
        bare.append(timed(lambda: check([sys.executable, "-m", "invoke", "--list"], floor, env)))
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"inv --list       ours {summary(ours)}   Invoke's floor {summary(bare)}   ratio {ratio:4.2f}x")
    return statistics.median(ours), statistics.median(bare)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="pairs per figure (median reported)")
    args = parser.parse_args()
    # A repository that has been used before has its own modules compiled, too.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "tasks"), str(ROOT / "templates")], check=True
    )
    print(f"before: {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-configure-") as scratch:
        base = Path(scratch)
        example = measure_configure("bundled example", None, args.runs, base)
        twelve = measure_configure("12 nodes", twelve_nodes(), args.runs, base)
        ours, bare = measure_list(max(args.runs * 4, 20), base)
    print(f"after:  {load()}")
    rerun = max(example["rerun"], twelve["rerun"])
    print(f"no-change re-run - inv --list: {rerun - ours:+.3f}s")
    targets = [
        ("configure >= 3x faster (example)", example["ratio"] >= 3),
        ("configure >= 3x faster (12 nodes)", twelve["ratio"] >= 3),
        ("no-change re-run within 0.05 s of inv --list", rerun - ours <= 0.05),
        ("inv --list within 1.15x of Invoke's floor", ours / bare <= 1.15),
    ]
    for name, met in targets:
        print(f"  [{'met' if met else 'MISSED'}] {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
