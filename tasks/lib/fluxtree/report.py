"""Rendering a validated tree: a one-screen summary, or JSON."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tasks.lib.errors import verdict

from .model import PROBLEM_KINDS, Tree


def skip_reason(reason: str) -> str:
    """The kind of a skip reason, for the summary ("external source", "missing source")."""
    if reason.endswith("is external, not built"):
        return "external source"
    if reason.endswith("does not exist"):
        return "missing source"
    return "other"


def summary(tree: Tree) -> dict[str, Any]:
    kss = [ks for ks in tree.kustomizations.values() if not ks.synthetic]
    sources = Counter(o.kind for o in tree.sources())
    kinds = Counter(p.kind for p in tree.problems)
    skipped = Counter(skip_reason(ks.skipped) for ks in kss if ks.skipped)
    return {
        "root": tree.root,
        "entry": tree.entry,
        "kustomizations": len(kss),
        "built": sum(1 for ks in kss if ks.built),
        "failed": sum(1 for ks in kss if not ks.built and not ks.skipped),
        "skipped_by_reason": dict(sorted(skipped.items())),
        "skipped": sorted(f"{ks.id}: {ks.skipped}" for ks in kss if ks.skipped),
        "external": sorted(f"{ks.id}: {ks.source_ref()}" for ks in kss if ks.skipped.endswith("not built")),
        "helmreleases": len(tree.helmreleases()),
        "sources": dict(sorted(sources.items())),
        "objects": len(tree.objects()),
        "problems": len(tree.problems),
        "problem_kinds": {k: kinds[k] for k in PROBLEM_KINDS if kinds[k]},
        "kustomize_processes": tree.builds,
        "seconds": round(tree.seconds, 3),
    }


def _reasons(info: dict[str, Any]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in info["skipped_by_reason"].items())


def coverage(info: dict[str, Any]) -> str:
    """ "4 validated, 1 failed to build, 67 skipped: 67 external source"."""
    parts = [f"{info['built']} validated"]
    if info["failed"]:
        parts.append(f"{info['failed']} failed to build")
    skipped = sum(info["skipped_by_reason"].values())
    parts.append(f"{skipped} skipped" + (f": {_reasons(info)}" if skipped else ""))
    return ", ".join(parts)


def coverage_warning(info: dict[str, Any]) -> list[str]:
    """A leading warning when more than half of the Kustomizations were not validated."""
    total, skipped = info["kustomizations"], len(info["skipped"])
    if not total or skipped * 2 <= total:
        return []
    return [
        f"WARNING: {skipped} of {total} Kustomizations were not validated ({_reasons(info)}): "
        f"this report covers only {info['built']}; --strict makes that an error."
    ]


def as_json(tree: Tree, extra_notes: list[str] | None = None) -> str:
    data = {
        "summary": summary(tree),
        "problems": [p.as_dict() for p in tree.problems],
        "kustomizations": [
            {
                "id": ks.id,
                "path": ks.path,
                "file": ks.file,
                "parent": ks.parent,
                "built": ks.built,
                "skipped": ks.skipped,
                "objects": len(ks.objects),
                "dependsOn": ks.depends_on(),
            }
            for ks in sorted(tree.kustomizations.values(), key=lambda k: k.id)
            if not ks.synthetic
        ],
        "helmreleases": [
            {"id": f"{o.namespace}/{o.name}", "file": o.file, "kustomization": o.owner}
            for o in sorted(tree.helmreleases(), key=lambda o: (o.namespace, o.name))
        ],
        "sources": [
            {"kind": o.kind, "id": f"{o.namespace}/{o.name}", "file": o.file, "url": o.spec.get("url", "")}
            for o in sorted(tree.sources(), key=lambda o: (o.kind, o.namespace, o.name))
        ],
        "notes": [*tree.notes, *(extra_notes or [])],
    }
    return json.dumps(data, indent=2, default=str)


def as_text(tree: Tree, extra_notes: list[str] | None = None) -> str:
    info = summary(tree)
    sources = ", ".join(f"{n} {k}" for k, n in info["sources"].items()) or "none"
    lines = [
        *coverage_warning(info),
        f"Flux tree {info['entry']} ({info['root']}), {info['seconds']:.2f}s, "
        f"{info['kustomize_processes']} kustomize process(es)",
        f"  Kustomizations  {info['kustomizations']} ({coverage(info)})",
        f"  HelmReleases    {info['helmreleases']}",
        f"  Sources         {sum(info['sources'].values())} ({sources})",
        f"  Objects         {info['objects']}",
        f"  Problems        {info['problems']}"
        + (
            " (" + ", ".join(f"{n} {k}" for k, n in info["problem_kinds"].items()) + ")"
            if info["problems"]
            else ""
        ),
    ]
    for skipped in info["skipped"]:
        lines.append(f"  skipped: {skipped}")
    for note in [*tree.notes, *(extra_notes or [])]:
        lines.append(f"  note: {note}")
    if tree.problems:
        lines.append("")
        lines += [str(p) for p in tree.problems]
    return "\n".join(lines)


@contextlib.contextmanager
def errors_as_json(enabled: bool) -> Iterator[None]:
    """With ``--json``, an error that stops the validation is also printed as the JSON
    ``{"error": "..."}`` (the same words the guard prints), so a consumer of the output
    always gets JSON; the error then goes on to the guard."""
    try:
        yield
    except (Exception, KeyboardInterrupt) as error:
        if enabled and not isinstance(error, KeyboardInterrupt | BrokenPipeError):
            lines, _code = verdict(error)
            print(json.dumps({"error": " ".join(line.strip() for line in lines)}, indent=2))
        raise
