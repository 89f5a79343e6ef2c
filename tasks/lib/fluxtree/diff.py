"""Object-level diffs between two validated trees, as markdown for a pull request comment."""

from __future__ import annotations

import copy
import difflib
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.lib.errors import UserError
from tasks.lib.gitremote import git_query

from . import analyse, yamlio
from .checks import check_rendered
from .entry import EntryNotFound
from .model import Obj, Tree

if TYPE_CHECKING:
    from .engine import Engine

NOISY_LABELS = frozenset({"helm.sh/chart", "app.kubernetes.io/version", "chart", "heritage", "release"})
NOISY_ANNOTATION_PREFIXES = ("checksum/", "config.kubernetes.io/")
DEFAULT_LIMIT = 60_000
REDACTED = "<redacted>"


def normalize(body: dict[str, Any]) -> dict[str, Any]:
    """A copy without attributes that change on every render (chart labels, versions,
    checksums) and with Secret values hidden (they are ciphertext that changes on every
    re-encryption, or plaintext that must not land in a comment)."""
    obj = copy.deepcopy(body)
    obj.pop("sops", None)
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        for key, noisy in (("labels", _noisy_label), ("annotations", _noisy_annotation)):
            values = metadata.get(key)
            if isinstance(values, dict):
                kept = {k: v for k, v in values.items() if not noisy(str(k))}
                if kept:
                    metadata[key] = kept
                else:
                    metadata.pop(key)
    if obj.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if isinstance(obj.get(field), dict):
                obj[field] = dict.fromkeys(obj[field], REDACTED)
    return obj


def _noisy_label(key: str) -> bool:
    return key in NOISY_LABELS


def _noisy_annotation(key: str) -> bool:
    return key.startswith(NOISY_ANNOTATION_PREFIXES)


RENDERED = "HelmRelease "


def _label(obj: Obj) -> str:
    return f"{obj.kind} {obj.namespace}/{obj.name}" if obj.namespace else f"{obj.kind} {obj.name}"


def snapshot(tree: Tree) -> dict[tuple[str, str], str]:
    """(Flux Kustomization, object) -> normalised YAML, for every object the tree applies;
    (``HelmRelease ns/name``, object) for what the charts of rendered releases render."""
    out: dict[tuple[str, str], str] = {}
    for obj in tree.objects():
        out[(obj.owner, _label(obj))] = yamlio.dump(normalize(obj.body))
    for release, objects in tree.rendered.items():
        for obj in objects:
            out[(f"{RENDERED}{release}", _label(obj))] = yamlio.dump(normalize(obj.body))
    return out


def _release_inputs(tree: Tree) -> dict[str, str]:
    """HelmRelease id -> everything its render depends on: the release, its chart source,
    the ConfigMaps/Secrets of its valuesFrom (Secrets by digest only)."""
    objects = {(o.kind, o.namespace, o.name): o for o in tree.objects()}
    out = {}
    for hr in tree.helmreleases():
        parts = [yamlio.dump(normalize(hr.body))]
        refs = [hr.spec.get("chartRef"), ((hr.spec.get("chart") or {}).get("spec") or {}).get("sourceRef")]
        refs += list(hr.spec.get("valuesFrom") or [])
        for ref in refs:
            if not isinstance(ref, dict):
                continue
            found = objects.get(
                (str(ref.get("kind")), str(ref.get("namespace") or hr.namespace), str(ref.get("name")))
            )
            if found is None:
                continue
            text = yamlio.dump(found.body)
            parts.append(hashlib.sha256(text.encode()).hexdigest() if found.kind == "Secret" else text)
        out[f"{hr.namespace}/{hr.name}"] = "\n".join(parts)
    return out


def changed_releases(base: Tree, head: Tree) -> set[str]:
    """The HelmReleases of ``head`` whose render may differ from ``base``'s: new, or with a
    different spec, chart source or valuesFrom input."""
    before, after = _release_inputs(base), _release_inputs(head)
    return {release for release, inputs in after.items() if before.get(release) != inputs}


@dataclass
class Change:
    owner: str
    label: str
    status: str  # added | removed | changed
    diff: str


def changes(base: Tree, head: Tree, *, base_label: str, head_label: str) -> list[Change]:
    before, after = snapshot(base), snapshot(head)
    out = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, ""), after.get(key, "")
        if old == new:
            continue
        status = "added" if not old else "removed" if not new else "changed"
        lines = difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), base_label, head_label, n=3
        )
        out.append(Change(key[0], key[1], status, "".join(lines)))
    return out


def markdown(
    base: Tree, head: Tree, *, base_label: str, head_label: str = "working tree", limit: int = DEFAULT_LIMIT
) -> str:
    """The whole comment: a headline, then one collapsible diff per object, grouped by
    Flux Kustomization, cut at ``limit`` characters."""
    found = changes(base, head, base_label=base_label, head_label=head_label)
    counts = {s: sum(1 for c in found if c.status == s) for s in ("changed", "added", "removed")}
    owners = sorted({c.owner for c in found})
    lines = [f"## Flux diff: `{base_label}` → {head_label}", ""]
    if not found:
        lines.append("No changes to Kustomizations, HelmReleases or the objects they apply.")
    else:
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        releases = sum(1 for owner in owners if owner.startswith(RENDERED))
        where = f"{len(owners) - releases} Flux Kustomization(s)"
        where += f" and the charts of {releases} HelmRelease(s)" if releases else ""
        lines.append(f"**{summary}** object(s) in {where}.")
    if head.problems:
        lines.append(
            f"\n:warning: {len(head.problems)} validation problem(s) in {head_label}: run `inv dev.validate`."
        )
    body: list[str] = []
    size = sum(len(line) + 1 for line in lines)
    shown = 0
    for owner in owners:
        heading = (
            f"HelmRelease `{owner.removeprefix(RENDERED)}` (what its chart renders)"
            if owner.startswith(RENDERED)
            else f"Kustomization `{owner}`"
        )
        section = [f"\n### {heading}"]
        for change in (c for c in found if c.owner == owner):
            block = [
                f"<details><summary>{change.label} ({change.status})</summary>",
                "",
                "```diff",
                change.diff.rstrip("\n"),
                "```",
                "</details>",
            ]
            cost = sum(len(line) + 1 for line in [*section, *block])
            if size + cost > limit:
                rest = len(found) - shown
                body.append(
                    f"\n… {rest} more object diff(s) not shown (comment limit of {limit} characters)."
                )
                return "\n".join([*lines, *body]) + "\n"
            section += block
            shown += 1
        size += sum(len(line) + 1 for line in section)
        body += section
    return "\n".join([*lines, *body]) + "\n"


def base_engine(worktree: Path) -> Engine | None:
    """The validation of a checkout of the base; None when the base has no Flux tree yet
    (then everything is new)."""
    try:
        return analyse(worktree)
    except EntryNotFound:
        return None


def diff_against(
    root: Path, ref: str, head: Engine, limit: int = DEFAULT_LIMIT, helm: bool = False, label: str = ""
) -> str:
    """The markdown diff of ``head`` (the work tree's validation) against ``ref`` (a commit,
    named ``label`` in the markdown), built from a temporary git worktree of ``ref`` that is
    always removed. With ``helm``, the charts of the HelmReleases whose inputs changed are
    rendered on both sides (the base's while its worktree, and so its local charts, still
    exists) and what they render is diffed too."""
    changed: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="home-ops-diff-") as scratch:
        worktree = Path(scratch) / "base"
        if git_query(root, "worktree", "add", "--detach", "--quiet", str(worktree), ref) is None:
            raise UserError(f"could not check out {ref} into a temporary worktree")
        try:
            engine = base_engine(worktree)
            base = engine.tree if engine is not None else Tree(root=str(worktree), entry="")
            if helm:
                changed = changed_releases(base, head.tree)
                if engine is not None and changed:
                    check_rendered(engine, only=changed)
        finally:
            git_query(root, "worktree", "remove", "--force", str(worktree))
            git_query(root, "worktree", "prune")
    if changed:
        check_rendered(head, only=changed)
    return markdown(base, head.tree, base_label=label or ref, limit=limit)
