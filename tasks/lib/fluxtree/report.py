"""Rendering a validated tree: a one-screen summary, or JSON."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tasks.lib.errors import verdict

from .model import PROBLEM_KINDS, Tree


def summary(tree: Tree) -> dict[str, Any]:
    kss = [ks for ks in tree.kustomizations.values() if not ks.synthetic]
    sources = Counter(o.kind for o in tree.sources())
    kinds = Counter(p.kind for p in tree.problems)
    return {
        "root": tree.root,
        "entry": tree.entry,
        "kustomizations": len(kss),
        "built": sum(1 for ks in kss if ks.built),
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
        f"Flux tree {info['entry']} ({info['root']}), {info['seconds']:.2f}s, "
        f"{info['kustomize_processes']} kustomize process(es)",
        f"  Kustomizations  {info['kustomizations']} ({info['built']} built, {len(info['skipped'])} skipped)",
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
