"""Offline validation and diffs of Flux repositories, with kustomize as the only tool.

Plain functions, no Invoke: :func:`validate` returns a :class:`~.model.Tree` (every Flux
Kustomization, the objects each applies, and the problems found); :mod:`.report` renders
it; :mod:`.diff` compares two trees; :mod:`.entry` finds where a repository's Flux tree
starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from .entry import CLUSTER_DIR, EntryNotFound, locate
from .model import PROBLEM_KINDS, FluxKustomization, Obj, Problem, Tree

if TYPE_CHECKING:
    from .engine import Engine

#: ``progress(done, total, what)``: called while building, for a progress line on a terminal.
Progress = Callable[[int, int, str], None]


class Options(TypedDict, total=False):
    """How :func:`validate` runs: ``variables`` stand for ``postBuild`` values that live
    only in the cluster (``--var``); ``strict`` makes every Kustomization that could not be
    validated a problem; ``helm`` renders every HelmRelease (``helm template``) and checks
    what it renders too."""

    workers: int | None
    variables: Mapping[str, str] | None
    progress: Progress | None
    strict: bool
    helm: bool


def analyse(path: Path, **options: Unpack[Options]) -> Engine:
    """Build the Flux tree at ``path`` and run every check; the engine, for what needs more
    than the tree (rendering charts afterwards). See :func:`validate`."""
    # deferred: importing any submodule (as provision does) runs this first; load the validator when used
    from .build import wait_cleanup
    from .checks import check_not_validated, check_rendered, run_checks
    from .engine import Engine
    from .entry import forget

    forget()
    root, entry = locate(path)
    engine = Engine(
        root,
        entry,
        workers=options.get("workers"),
        variables=options.get("variables"),
        progress=options.get("progress"),
    )
    try:
        engine.run()
        if options.get("helm"):
            check_rendered(engine)
        run_checks(engine)
        if options.get("strict"):
            check_not_validated(engine)
        engine.finish()
    finally:
        wait_cleanup()  # the temporary build folders are removed while the checks run
    return engine


def validate(path: Path, **options: Unpack[Options]) -> Tree:
    """Build the Flux tree at ``path`` and run every check (see :class:`Options`)."""
    return analyse(path, **options).tree


__all__ = [
    "CLUSTER_DIR",
    "PROBLEM_KINDS",
    "EntryNotFound",
    "FluxKustomization",
    "Obj",
    "Problem",
    "Progress",
    "Tree",
    "analyse",
    "locate",
    "validate",
]
