"""Flux on the live cluster: reconcile from Git, and one readable status view."""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context

from tasks.lib.flux_live import needs_cluster, reconcile_flux
from tasks.lib.taskdef import task
from tasks.lib.tools.runner import is_dry, run

#: (title, kubectl get arguments) of every section of `inv flux.status`.
STATUS_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Nodes", ("nodes", "--output", "wide")),
    ("Kustomizations", ("kustomizations.kustomize.toolkit.fluxcd.io", "--all-namespaces")),
    ("HelmReleases", ("helmreleases.helm.toolkit.fluxcd.io", "--all-namespaces")),
    (
        "Sources",
        (
            "gitrepositories.source.toolkit.fluxcd.io,ocirepositories.source.toolkit.fluxcd.io,"
            "helmrepositories.source.toolkit.fluxcd.io",
            "--all-namespaces",
        ),
    ),
    ("Certificates", ("certificates.cert-manager.io", "--all-namespaces")),
    ("HTTPRoutes", ("httproutes.gateway.networking.k8s.io", "--all-namespaces")),
    (
        "Pods not running",
        ("pods", "--all-namespaces", "--field-selector", "status.phase!=Running,status.phase!=Succeeded"),
    ),
)


@task
def reconcile(c: Context) -> None:
    """Make Flux pull the Git repository now and apply it (flux-system Kustomization)."""
    needs_cluster(c, "flux")
    reconcile_flux(c)


@task
def status(c: Context) -> None:
    """Show nodes, Kustomizations, HelmReleases, sources, certificates, routes and failing pods."""
    needs_cluster(c, "kubectl")
    for title, args in STATUS_SECTIONS:
        result = run(c, ["kubectl", "get", *args], check=False)
        if is_dry(c):
            continue
        print(f"== {title}")
        output = result.stdout.rstrip()
        if result.failed:
            reason = (
                "not installed in the cluster"
                if "doesn't have a resource type" in result.stderr
                else result.last_line
            )
            print(f"  ({reason})")
        else:
            print(output or "  (none)")
        print()


ns = Collection("flux")
for _task in (reconcile, status):
    ns.add_task(_task)
