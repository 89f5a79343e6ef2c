"""``--helm``: inflate HelmReleases with ``helm template`` and check schemas with kubeconform.

Both tools are optional; what cannot run is reported as skipped, never as a problem. OCI
and HTTP charts need the network, so a chart that cannot be fetched fails like any other.
kubeconform reads the Kubernetes schemas shipped in a wheel (``schemas.py``), never the web;
objects whose kind has no schema there (custom resources) are named as not checked.
"""

from __future__ import annotations

import json as jsonlib
from collections import Counter

from . import yamlio
from .model import Obj, Problem, Ref, Tree
from .schemas import Schemas, local_schemas


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
    from tasks.lib.tools.runner import Command, run_many

    notes: list[str] = []
    releases = tree.helmreleases()
    rendered: list[str] = []
    if helm is None:
        notes.append(f"--helm: helm is not installed, {len(releases)} HelmRelease(s) not inflated")
    else:
        commands: list[Command] = []
        owners: list[Obj] = []
        for hr in releases:
            source, chart = _source(tree, hr)
            argv = template_argv(hr, source, chart) if source else None
            if argv is None:
                notes.append(f"--helm: {hr.namespace}/{hr.name} not inflated (chart source not templatable)")
                continue
            if hr.spec.get("valuesFrom"):
                notes.append(f"--helm: {hr.namespace}/{hr.name} inflated without its valuesFrom")
            values = yamlio.dump(hr.spec.get("values") or {}).encode()
            commands.append(
                Command(tuple(argv), stdin=values, what=f"inflating HelmRelease {hr.namespace}/{hr.name}")
            )
            owners.append(hr)
        for hr, outcome in zip(owners, run_many(commands), strict=True):
            if outcome.ok:
                rendered.append(outcome.stdout)
            else:
                message = outcome.problem if outcome.limit else " ".join(outcome.stderr.split())[:300]
                text = f"HelmRelease {hr.namespace}/{hr.name}: {message}"
                tree.problems.append(Problem(hr.file, "helm-template-failed", text, hr.owner))
    if kubeconform is None:
        notes.append("--helm: kubeconform is not installed, schemas not checked")
        return notes
    documents = [yamlio.dump(o.body) for o in tree.objects()] + rendered
    notes += schema_check(tree, documents)
    return notes


def schema_check(tree: Tree, documents: list[str], schemas: Schemas | None = None) -> list[str]:
    """kubeconform over ``documents`` against the locally shipped schemas: invalid objects
    become problems; the notes say how many were checked and which kinds were not."""
    from tasks.lib.tools.runner import Command, run_one

    schemas = schemas or local_schemas()
    if schemas is None:
        # Without local schemas kubeconform would try to download them: never claim that.
        return [
            f"--helm: no local Kubernetes schemas (the kubernetes-validate wheel is not installed), "
            f"{len(documents)} object(s) not schema-checked"
        ]
    argv = ["kubeconform", *schemas.argv(), "-ignore-missing-schemas", "-output", "json", "-verbose", "-"]
    stdin = "\n---\n".join(documents).encode()
    outcome = run_one(Command(tuple(argv), stdin=stdin, what="checking the objects against their schemas"))
    try:
        resources = jsonlib.loads(outcome.stdout or "{}").get("resources") or []
    except ValueError:
        message = outcome.problem if outcome.limit else " ".join(outcome.stderr.split())[:300]
        tree.problems.append(Problem(tree.entry, "schema-check-failed", f"kubeconform: {message}"))
        return []
    return schema_notes(tree, resources, schemas.kubernetes_version)


def schema_notes(tree: Tree, resources: list[dict[str, str]], kubernetes_version: str) -> list[str]:
    """Problems for invalid objects; notes counting checked objects and unchecked kinds."""
    skipped: Counter[str] = Counter()
    checked = 0
    for res in resources:
        status = res.get("status", "")
        what = f"{res.get('kind', '?')} {res.get('name', '?')}"
        if status in {"statusInvalid", "statusError"}:
            checked += status == "statusInvalid"
            message = str(res.get("msg", ""))
            message = "at " + message.split(" - at ", 1)[1] if " - at " in message else message
            tree.problems.append(Problem(tree.entry, "schema-invalid", f"{what}: {message}"[:300]))
        elif status == "statusSkipped":
            skipped[str(res.get("kind", "?"))] += 1
        elif status in {"statusValid", "statusEmpty"}:
            checked += status == "statusValid"
    notes = [
        f"--helm: kubeconform checked {checked} object(s) against the Kubernetes {kubernetes_version} schemas"
    ]
    if skipped:
        kinds = ", ".join(f"{kind} x{count}" for kind, count in sorted(skipped.items()))
        notes.append(
            f"--helm: {sum(skipped.values())} object(s) not schema-checked (no schema for the kind): {kinds}"
        )
    return notes
