"""home-ops task library: the root Invoke namespace, ``ns``.

Collections live in ``tasks/*.py``, one module per namespace; the code they call lives in
``tasks/lib/`` (see docs/architecture.md). Importing this package does nothing else: ``ns``
is built when it is first read (by ``inv``, which also lives here: ``tasks/__main__.py``),
so library modules and the pre-commit hook import ``tasks.lib`` without loading Invoke.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from invoke.collection import Collection


def build_namespace() -> Collection:
    """The root namespace: the root tasks, then one collection per module."""
    # deferred: importing `tasks` (the library, the hook) loads neither Invoke nor a collection
    from invoke.collection import Collection

    # deferred: importing `tasks` (the library, the pre-commit hook) loads no collection
    from tasks import app, bootstrap, ci, dev, flux, lint, root, sops, talos

    namespace = Collection()
    # Root tasks: the main job, the machine check, and the shortcut the Taskfile had.
    for root_task in (root.init, root.configure, root.doctor):
        namespace.add_task(root_task)
    namespace.add_task(flux.reconcile, name="reconcile")
    # One collection per module, in bootstrap order, then day 2.
    for module in (talos, bootstrap, flux, app, dev, lint, sops):
        namespace.add_collection(module.ns)
    # What the GitHub Actions workflows call (they run the same on a workstation).
    namespace.add_collection(ci.ns)
    namespace.configure({"home_ops": {"root": None}})
    return namespace


def __getattr__(name: str) -> Collection:
    if name != "ns":
        raise AttributeError(f"module 'tasks' has no attribute {name!r}")
    namespace = build_namespace()
    globals()["ns"] = namespace
    return namespace
