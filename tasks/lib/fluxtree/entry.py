"""Where a repository's Flux tree starts, from whatever folder the user points at.

Accepted: a repository root (``kubernetes/flux/cluster``, or the one cluster a
``FluxInstance``/``flux-system`` Kustomization syncs, or a ``*/flux/cluster`` folder), a
cluster folder (holding Flux Kustomizations), or an apps folder (Flux Kustomizations in its
sub-folders), with or without ``.git``. Without ``.git`` the repository root is the nearest
folder from which the entry's ``spec.path`` values exist.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tasks.lib.errors import HomeOpsError

from . import yamlio

CLUSTER_DIR = Path("kubernetes/flux/cluster")
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".terraform", ".github"})
MAX_DEPTH = 7
_FLUX_KS = re.compile(r"^apiVersion:\s*['\"]?kustomize\.toolkit\.fluxcd\.io/", re.MULTILINE)
LOOKED_FOR = (
    f"{CLUSTER_DIR}/, a FluxInstance or flux-system Kustomization naming its sync path, "
    "or Flux Kustomization manifests (kustomize.toolkit.fluxcd.io)"
)


class EntryNotFound(HomeOpsError):
    """No Flux tree where we looked."""


def _yaml_files(directory: Path, depth: int = MAX_DEPTH) -> list[Path]:
    found: list[Path] = []
    base = len(directory.parts)
    for current, dirs, files in os.walk(directory):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and len(here.parts) - base < depth)
        found += [here / f for f in sorted(files) if f.endswith((".yaml", ".yml"))]
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _flux_files(files: list[Path]) -> list[Path]:
    return [f for f in files if _FLUX_KS.search(_read(f))]


def _git_toplevel(path: Path) -> Path | None:
    from tasks.lib.tools.runner import Command, find_tool, run_one

    if find_tool("git") is None:
        return None
    outcome = run_one(Command(("git", "rev-parse", "--show-toplevel"), cwd=path))
    text = outcome.stdout.strip()
    return Path(text).resolve() if outcome.ok and text else None


def sync_paths(directory: Path, root: Path) -> tuple[list[str], list[str]]:
    """Repository-relative sync paths: (those a FluxInstance -- also one rendered by a
    HelmRelease's values -- or a ``flux-system`` Kustomization (``flux bootstrap``'s
    gotk-sync) names; those of a Kustomization managing the folder it sits in, the
    ``flux/config/cluster.yaml`` layout, when no other Kustomization applies it)."""
    named: list[str] = []
    kustomizations: list[tuple[Path, Path]] = []  # (file, target folder)
    for file in _yaml_files(directory):
        text = _read(file)
        if "FluxInstance" not in text and "instance:" not in text and not _FLUX_KS.search(text):
            continue
        try:
            docs = yamlio.load_all(text)
        except (yamlio.YAMLError, ValueError):
            continue
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            kind = doc.get("kind")
            spec: dict[str, Any] = doc["spec"] if isinstance(doc.get("spec"), dict) else {}
            sync = None
            if kind == "FluxInstance":
                sync = spec.get("sync")
            elif kind == "HelmRelease" and isinstance(spec.get("values"), dict):
                instance = spec["values"].get("instance")
                sync = instance.get("sync") if isinstance(instance, dict) else None
            elif kind == "Kustomization" and str(doc.get("apiVersion", "")).startswith(
                "kustomize.toolkit.fluxcd.io/"
            ):
                path = str(spec.get("path") or "").strip().removeprefix("./").strip("/")
                if (doc.get("metadata") or {}).get("name") == "flux-system":
                    sync = spec
                elif path and "${" not in path:
                    kustomizations.append((file, (root / path).resolve()))
            if isinstance(sync, dict) and isinstance(sync.get("path"), str) and "${" not in sync["path"]:
                named.append(sync["path"].strip().removeprefix("./").strip("/"))
    roots = [
        target
        for file, target in kustomizations
        if target.is_dir()
        and file.is_relative_to(target)
        and not any(other != file and file.is_relative_to(t) for other, t in kustomizations if t != target)
    ]
    return named, [os.path.relpath(t, root) for t in roots]


def _spec_paths(files: list[Path]) -> list[str]:
    """``spec.path`` of the Flux Kustomizations in ``files``."""
    out: list[str] = []
    for file in files:
        try:
            docs = yamlio.load_all(_read(file))
        except (yamlio.YAMLError, ValueError):
            continue
        for doc in docs:
            if (
                isinstance(doc, dict)
                and doc.get("kind") == "Kustomization"
                and str(doc.get("apiVersion", "")).startswith("kustomize.toolkit.fluxcd.io/")
                and isinstance(doc.get("spec"), dict)
            ):
                path = str(doc["spec"].get("path") or "").strip().removeprefix("./").strip("/")
                if path and "${" not in path:
                    out.append(path)
    return out


def _root_for(entry: Path, start: Path) -> Path:
    """The repository root for ``entry``: of git's top level and the entry's ancestors, the
    one from which most of the entry's ``spec.path`` values exist (git's top level, then the
    nearest, on a tie), else git's top level, else ``start``."""
    paths = _spec_paths(_flux_files(_yaml_files(entry, 3))[:40])
    top = _git_toplevel(entry)
    candidates = [c for c in [top, entry, *entry.parents] if c is not None and entry.is_relative_to(c)]
    scores = [(sum((c / p).is_dir() for p in paths), -index, c) for index, c in enumerate(candidates)]
    best = max(scores, default=None, key=lambda score: score[:2])
    if best is not None and best[0] > 0:
        return best[2]
    if top is not None and entry.is_relative_to(top):
        return top
    return start if entry.is_relative_to(start) else entry


def _clusters(path: Path, root: Path) -> list[Path]:
    """Cluster entry folders found below ``path``."""
    found: dict[Path, None] = {}
    named, self_managed = sync_paths(path, root)
    for sync in named:
        for base in (root, path):
            if sync and (base / sync).is_dir():
                found[(base / sync).resolve()] = None
                break
    for file in _yaml_files(path, 5):
        parent = file.parent
        if parent.name == "cluster" and parent.parent.name == "flux":
            found[parent.resolve()] = None
    if not found:
        found = dict.fromkeys((root / p).resolve() for p in self_managed)
    # A cluster folder inside another one is part of it (a root managing its own folder).
    return sorted(c for c in found if not any(c != o and c.is_relative_to(o) for o in found))


def locate(path: Path) -> tuple[Path, Path]:
    """(repository root, entry folder) for ``path``; :class:`EntryNotFound` with one line
    saying what was looked for when there is no Flux tree there."""
    path = path.expanduser().resolve()
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise EntryNotFound(f"{path} is not a directory")
    if (path / CLUSTER_DIR).is_dir():
        return path, path / CLUSTER_DIR
    top = _git_toplevel(path) or path
    if _flux_files(_yaml_files(path, 1)):
        return _root_for(path, top), path
    clusters = [c for c in _clusters(path, top) if c.is_relative_to(top) or c.is_relative_to(path)]
    if len(clusters) == 1:
        return _root_for(clusters[0], top), clusters[0]
    if len(clusters) > 1:
        listed = ", ".join(os.path.relpath(c, path) for c in clusters)
        raise EntryNotFound(
            f"{path} holds {len(clusters)} Flux clusters ({listed}): pass one of them with --path"
        )
    if _flux_files(_yaml_files(path)):
        return _root_for(path, top), path
    raise EntryNotFound(f"no Flux tree under {path}: looked for {LOOKED_FOR}")
