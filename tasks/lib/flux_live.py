"""Flux on the live cluster: the calls that ``flux.*``, ``reconcile`` and ``dev.*`` share."""

from __future__ import annotations

from invoke.context import Context

from tasks.lib.paths import paths_for
from tasks.lib.tools.runner import is_dry, require, require_files, run

FLUX_NS = "flux-system"


def reconcile_flux(c: Context) -> None:
    """Have Flux fetch the repository and apply the root Kustomization now."""
    run(
        c,
        ["flux", "--namespace", FLUX_NS, "reconcile", "kustomization", FLUX_NS, "--with-source"],
        stream=True,
    )


def needs_cluster(c: Context, *tools: str) -> None:
    paths = paths_for(c)
    require(c, *tools)
    if not is_dry(c):
        require_files(
            (paths.kubeconfig, "point KUBECONFIG at the cluster or bootstrap it first"), paths=paths
        )
