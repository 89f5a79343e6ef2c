"""``inv app.*``: add your own apps, laid out like the bundled ones."""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context

from tasks.lib.paths import paths_for
from tasks.lib.taskdef import task
from tasks.lib.tools.runner import is_dry


@task(
    help={
        "name": "the app's name: a DNS-1123 label of at most 53 characters (also its HelmRelease's)",
        "namespace": "the namespace it runs in (its folder under kubernetes/apps is created when new)",
        "chart": "the Helm chart's OCI URL, oci://HOST/PATH/CHART",
        "version": "the chart version to pin (default: the newest stable one, asked of the registry)",
        "plain-http": "talk to the chart's registry over plain HTTP (a registry on your network)",
    }
)
def new(
    c: Context, name: str, namespace: str = "", chart: str = "", version: str = "", plain_http: bool = False
) -> None:
    """Scaffold an app from a Helm chart: ks.yaml, app/ with HelmRelease and OCIRepository.

    Writes kubernetes/apps/NAMESPACE/NAME/ks.yaml (its Flux Kustomization) and app/ (the
    HelmRelease, the OCIRepository pinned to the chart version, their kustomization), and
    lists the app in kubernetes/apps/NAMESPACE/kustomization.yaml (a new namespace gets its
    folder, namespace.yaml and kustomization.yaml). Checks every argument first, never
    overwrites, writes all files or none. Then set the chart's values in the HelmRelease,
    run `inv dev.validate`, commit and push; Flux deploys it.
    """
    from tasks.lib.apps import scaffold

    paths = paths_for(c)
    dry = is_dry(c)
    app, written = scaffold(paths, name, namespace, chart, version, plain_http, dry)
    verb = "would write" if dry else "wrote"
    for file in written:
        print(f"{verb} {file}")
    if not dry:
        print(f"app {app.namespace}/{app.name}: chart {app.chart} version {app.version}")
        print(f"next: set the chart's values in {app.folder}/app/helmrelease.yaml, run `inv dev.validate`,")
        print("      then commit and push: Flux deploys it (`inv reconcile` to not wait for the interval)")


ns = Collection("app")
ns.add_task(new)
