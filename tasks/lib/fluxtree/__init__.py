"""Offline validation and diffs of Flux repositories, with kustomize as the only tool.

Plain functions, no Invoke: :func:`validate` returns a :class:`~.model.Tree` (every Flux
Kustomization, the objects each applies, and the problems found); :mod:`.report` renders
it; :mod:`.diff` compares two trees; :mod:`.entry` finds where a repository's Flux tree
starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from .entry import CLUSTER_DIR, EntryNotFound, locate
from .model import PROBLEM_KINDS, FluxKustomization, Obj, Problem, Tree

#: ``progress(done, total, what)``: called while building, for a progress line on a terminal.
Progress = Callable[[int, int, str], None]


def validate(
    path: Path,
    *,
    workers: int | None = None,
    variables: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    strict: bool = False,
) -> Tree:
    """Build the Flux tree at ``path`` and run every check. ``variables`` stand for
    ``postBuild`` values that live only in the cluster (``--var``); ``strict`` makes every
    Kustomization that could not be validated a problem."""
    from .checks import check_not_validated, run_checks
    from .engine import Engine

    root, entry = locate(path)
    engine = Engine(root, entry, workers=workers, variables=variables, progress=progress)
    from .build import wait_cleanup

    try:
        engine.run()
        run_checks(engine)
        if strict:
            check_not_validated(engine)
        engine.finish()
    finally:
        wait_cleanup()  # the temporary build folders are removed while the checks run
    return engine.tree


__all__ = [
    "CLUSTER_DIR",
    "PROBLEM_KINDS",
    "EntryNotFound",
    "FluxKustomization",
    "Obj",
    "Problem",
    "Progress",
    "Tree",
    "locate",
    "validate",
]
