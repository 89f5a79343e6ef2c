"""``inv bootstrap.*``: take bare Talos nodes to a running Flux cluster.

``bootstrap.talos`` creates the Talos secrets (once), generates and applies the node
configs, bootstraps etcd and fetches the kubeconfig. ``bootstrap.apps`` waits for the
nodes, creates the namespaces, applies the bootstrap secrets and CRDs and syncs the
bootstrap helmfile (CNI, DNS, cert-manager, Flux). Both are safe to run again.

The work is :mod:`tasks.lib.provision.bootstrap`'s; plaintext secrets exist only in memory
(from ``talhelper gensecret`` or ``sops --decrypt`` to the next command's stdin).
"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context

from tasks.lib.paths import paths_for
from tasks.lib.taskdef import task
from tasks.lib.tools.runner import is_dry

YES_HELP = "bootstrap although the example's values (example.com, its repository, fake secrets) are in place"


@task(
    help={
        "deadline": "seconds to keep retrying the etcd bootstrap, and again the kubeconfig (default 600)",
        "interval": "seconds between attempts (default 10)",
        "attempt-timeout": "seconds one attempt may hang before it counts as failed (default 120)",
        "yes": YES_HELP,
    }
)
def talos(
    c: Context,
    deadline: float = 600.0,
    interval: float = 10.0,
    attempt_timeout: float = 120.0,
    yes: bool = False,
) -> None:
    """Bootstrap Talos on nodes in maintenance mode and fetch the kubeconfig.

    Creates talos/talsecret.sops.yaml if absent (encrypted in memory), generates the node
    configs, applies them (insecure), retries the etcd bootstrap and the kubeconfig fetch
    until they succeed or the deadline passes. Safe to run again. Stops while the example's
    values are still in place, unless --yes."""
    from tasks.lib.provision.bootstrap import bootstrap_talos

    paths = paths_for(c)
    bootstrap_talos(c, paths, float(deadline), float(interval), float(attempt_timeout), bool(yes))
    if not is_dry(c):
        print(f"done: {paths.rel(paths.root / 'kubeconfig')} is ready; next: inv bootstrap.apps")


@task(
    help={
        "deadline": "seconds to wait for the nodes to register (default 600)",
        "interval": "seconds between checks (default 10)",
        "sync": "run `helmfile sync` even when every release is deployed with its version and values",
        "yes": YES_HELP,
    }
)
def apps(
    c: Context, deadline: float = 600.0, interval: float = 10.0, sync: bool = False, yes: bool = False
) -> None:
    """Install the bootstrap apps (Cilium, CoreDNS, cert-manager, Flux) on the new cluster.

    First checks that your commit is on the repository and branch Flux deploys (fetching
    it), then waits for the nodes, creates the namespaces of kubernetes/apps, applies the
    bootstrap secrets (decrypted in memory) and the CRDs server-side, and `helmfile sync`s
    bootstrap/helmfile.d/01-apps.yaml. Safe to run again: what is current is skipped (the
    sync only when every release runs its pinned chart version with the helmfile's values).
    Stops while the example's values are still in place, unless --yes."""
    from tasks.lib.provision.bootstrap import bootstrap_apps

    changed = bootstrap_apps(c, paths_for(c), float(deadline), float(interval), bool(sync), bool(yes))
    if is_dry(c):
        return
    if changed:
        print(f"done: {', '.join(changed)}")
    else:
        print("done: nothing changed — namespaces, bootstrap secrets, CRDs and releases were already current")


ns = Collection("bootstrap")
for _task in (talos, apps):
    ns.add_task(_task)
