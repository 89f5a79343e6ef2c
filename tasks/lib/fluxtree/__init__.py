"""Offline validation and diffs of Flux repositories, with kustomize as the only tool.

Plain functions, no Invoke: :func:`validate` returns a :class:`~.model.Tree` (every Flux
Kustomization, the objects each applies, and the problems found); :mod:`.report` renders
it; :mod:`.diff` compares two trees.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .model import PROBLEM_KINDS, FluxKustomization, Obj, Problem, Tree

CLUSTER_DIR = Path("kubernetes/flux/cluster")


class EntryNotFound(Exception):
    """No Flux cluster Kustomization where we looked."""


def _git_toplevel(path: Path) -> Path | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return Path(out) if out else None


def _has_flux_kustomization(directory: Path) -> bool:
    for file in [*directory.glob("*.yaml"), *directory.glob("*.yml")]:
        try:
            if "kustomize.toolkit.fluxcd.io" in file.read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def locate(path: Path) -> tuple[Path, Path]:
    """(repository root, cluster directory) for ``path``: a repository holding
    ``kubernetes/flux/cluster``, the cluster directory itself, or its ``ks.yaml``."""
    path = path.resolve()
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise EntryNotFound(f"{path} is not a directory")
    if (path / CLUSTER_DIR).is_dir():
        return path, path / CLUSTER_DIR
    if _has_flux_kustomization(path):
        for candidate in [_git_toplevel(path), *path.parents]:
            if candidate is not None and (candidate / ".git").exists():
                return candidate.resolve(), path
        if len(path.parents) >= 3 and path.parts[-3:] == CLUSTER_DIR.parts:
            return path.parents[2], path
    raise EntryNotFound(f"no Flux cluster Kustomization under {path} (looked for {CLUSTER_DIR}/)")


def validate(path: Path, *, workers: int | None = None) -> Tree:
    """Build the Flux tree at ``path`` and run every check."""
    from .checks import run_checks
    from .engine import Engine

    root, entry = locate(path)
    engine = Engine(root, entry, workers=workers)
    engine.run()
    run_checks(engine)
    engine.tree.problems = sorted(
        set(engine.tree.problems), key=lambda p: (p.file, p.line or 0, p.kind, p.message)
    )
    return engine.tree


__all__ = [
    "PROBLEM_KINDS",
    "EntryNotFound",
    "FluxKustomization",
    "Obj",
    "Problem",
    "Tree",
    "locate",
    "validate",
]
