"""``--helm``: inflate HelmReleases with ``helm template`` and check schemas with kubeconform.

Both tools are optional; what cannot run is reported as skipped, never as a problem. OCI
and HTTP charts need the network, so a chart that cannot be fetched fails like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import yamlio
from .model import Obj, Problem, Ref, Tree


def _source(tree: Tree, hr: Obj) -> tuple[Obj | None, str]:
    spec = hr.spec
    ref = spec.get("chartRef")
    chart = ""
    if not isinstance(ref, dict):
        chart_spec = (spec.get("chart") or {}).get("spec") or {}
        ref, chart = chart_spec.get("sourceRef") or {}, str(chart_spec.get("chart", ""))
    wanted = Ref(
        str(ref.get("kind", "")), str(ref.get("namespace") or hr.namespace), str(ref.get("name", ""))
    )
    for obj in tree.sources():
        if obj.ref == wanted:
            return obj, chart
    return None, chart


def template_argv(hr: Obj, source: Obj, chart: str) -> list[str] | None:
    """The ``helm template`` command for one HelmRelease (values on stdin), or None when the
    chart's source cannot be templated offline-style (Git/Bucket sources)."""
    spec = source.spec
    name = str(hr.spec.get("releaseName") or hr.name)
    namespace = str(hr.spec.get("targetNamespace") or hr.namespace)
    argv = ["helm", "template", name]
    if source.kind == "OCIRepository":
        ref = spec.get("ref") or {}
        argv += [str(spec.get("url", ""))]
        version = ref.get("tag") or ref.get("semver")
    elif source.kind == "HelmRepository":
        url = str(spec.get("url", ""))
        version = ((hr.spec.get("chart") or {}).get("spec") or {}).get("version")
        argv += [f"{url.rstrip('/')}/{chart}"] if url.startswith("oci://") else [chart, "--repo", url]
    else:
        return None
    if version:
        argv += ["--version", str(version)]
    return [*argv, "--namespace", namespace, "--include-crds", "--values", "-"]


def inflate(tree: Tree, *, helm: str | None, kubeconform: str | None) -> list[str]:
    """Run the optional tools; add problems to the tree; return notes on what was skipped."""
    from tasks.lib.tools.runner import run_many

    notes: list[str] = []
    releases = tree.helmreleases()
    rendered: list[str] = []
    if helm is None:
        notes.append(f"--helm: helm is not installed, {len(releases)} HelmRelease(s) not inflated")
    else:
        jobs: list[tuple[Sequence[str], bytes | None]] = []
        owners: list[Obj] = []
        for hr in releases:
            source, chart = _source(tree, hr)
            argv = template_argv(hr, source, chart) if source else None
            if argv is None:
                notes.append(f"--helm: {hr.namespace}/{hr.name} not inflated (chart source not templatable)")
                continue
            if hr.spec.get("valuesFrom"):
                notes.append(f"--helm: {hr.namespace}/{hr.name} inflated without its valuesFrom")
            jobs.append((argv, yamlio.dump(hr.spec.get("values") or {}).encode()))
            owners.append(hr)
        for hr, outcome in zip(owners, run_many(jobs), strict=True):
            if outcome.ok:
                rendered.append(outcome.stdout.decode("utf-8", "replace"))
            else:
                message = " ".join(outcome.stderr.decode("utf-8", "replace").split())[:300]
                text = f"HelmRelease {hr.namespace}/{hr.name}: {message}"
                tree.problems.append(Problem(hr.file, "helm-template-failed", text, hr.owner))
    if kubeconform is None:
        notes.append("--helm: kubeconform is not installed, schemas not checked")
        return notes
    documents = [yamlio.dump(o.body) for o in tree.objects()] + rendered
    argv = ["kubeconform", "-ignore-missing-schemas", "-summary", "-"]
    outcome = run_many([(argv, "\n---\n".join(documents).encode())])[0]
    if not outcome.ok:
        for line in outcome.stdout.decode("utf-8", "replace").splitlines():
            if " is invalid" in line or "failed validation" in line or "error" in line.lower():
                tree.problems.append(Problem(tree.entry, "schema-invalid", line.strip()[:300]))
    return notes
