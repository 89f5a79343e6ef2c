"""Where a repository's Flux tree starts, from whatever folder the user points at.

Accepted: a repository root, a cluster folder (holding Flux Kustomizations), or an apps folder
(Flux Kustomizations in its sub-folders), with or without ``.git``. In order:

1. ``kubernetes/flux/cluster`` (this project's layout);
2. the folder the cluster syncs: a ``FluxInstance`` (also one rendered from a HelmRelease's
   values) or a ``flux-system`` Kustomization (``flux bootstrap``'s gotk-sync), when it lies
   in the folder given. Its path is relative to the source: the git top level, else the
   nearest folder (the one given or above it) where it exists; for an OCI sync, also a
   sub-folder the artifact may have been pushed from;
3. a ``*/flux/cluster`` folder;
4. a Kustomization that manages the folder it sits in (``flux/config/cluster.yaml``, a
   cluster bootstrapped by hand);
5. the folder given, when Flux Kustomizations are anywhere below it (a cluster or apps folder).

Folders the source's ``.sourceignore`` leaves out are never looked in. The same pass finds
what the validator needs to know about the cluster's Flux: the sync URL (this repository,
even without a git remote) and the Flux version it runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.lib.errors import HomeOpsError
from tasks.lib.tools.runner import Command, find_tool, run_one

from . import yamlio
from .ignore import SourceIgnore
from .sources import normalize_url
from .walk import walk

CLUSTER_DIR = Path("kubernetes/flux/cluster")
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".terraform", ".github"})
MAX_DEPTH = 7
_FLUX_KS = re.compile(r"^apiVersion:\s*['\"]?kustomize\.toolkit\.fluxcd\.io/", re.MULTILINE)
#: Where a repository pins its Flux release besides a FluxInstance: gotk-components' header,
#: a kustomization of Flux's install manifests, the flux-manifests OCI artifact's tag.
_FLUX_VERSION_TEXT = re.compile(
    r"^#\s*Flux Version:\s*v?(\d+\.\d+\.\d+)|fluxcd/flux2/manifests/install\?ref=v?(\d+\.\d+\.\d+)",
    re.MULTILINE,
)
_STRICT_GATE = re.compile(r"StrictPostBuildSubstitutions=(true|false)")
LOOKED_FOR = (
    f"{CLUSTER_DIR}/, a FluxInstance or flux-system Kustomization naming its sync path, "
    "or Flux Kustomization manifests (kustomize.toolkit.fluxcd.io)"
)
#: The first Flux release whose kustomize-controller fails a Kustomization on a variable
#: without a value (feature gate StrictPostBuildSubstitutions on by default).
STRICT_SINCE = (2, 9)


class EntryNotFound(HomeOpsError):
    """No Flux tree where we looked."""


@dataclass(frozen=True)
class Sync:
    """One sync definition: what a FluxInstance or a flux-system Kustomization reconciles."""

    kind: str  # GitRepository | OCIRepository | Bucket
    url: str
    path: str
    file: Path
    version: str = ""  # the FluxInstance's distribution.version


@dataclass
class FluxFacts:
    """What the repository says about the Flux that runs it."""

    syncs: list[Sync] = field(default_factory=list)
    version: str = ""  # as pinned: "2.6.4", "2.x", "" when not pinned
    strict_gate: bool | None = None  # an explicit --feature-gates=StrictPostBuildSubstitutions=

    @property
    def sync_urls(self) -> set[str]:
        return {normalize_url(s.url) for s in self.syncs if s.kind == "GitRepository" and s.url}

    @property
    def strict(self) -> bool:
        """Whether an undefined variable fails the whole Kustomization."""
        if self.strict_gate is not None:
            return self.strict_gate
        numbers = re.match(r"^v?(\d+)\.(\d+)", self.version)
        return numbers is None or (int(numbers[1]), int(numbers[2])) >= STRICT_SINCE

    def describe(self) -> str:
        """The Flux whose behaviour is assumed, for messages."""
        if self.strict_gate is not None:
            return f"the repository sets StrictPostBuildSubstitutions={str(self.strict_gate).lower()}"
        if self.version and re.match(r"^v?\d+\.\d+\.\d+$", self.version):
            return f"the repository pins Flux {self.version.removeprefix('v')}"
        if self.version:
            return f"the repository follows Flux {self.version}, which is 2.9 or later"
        return "Flux 2.9 or later, the repository pins no version"


def _walk(directory: Path, depth: int, ignore: SourceIgnore | None) -> list[Path]:
    found: list[Path] = []
    for here, dirs, files in walk(directory, max_depth=depth - 1):
        dirs[:] = [
            d
            for d in dirs
            if d not in SKIP_DIRS and not (ignore is not None and ignore.ignored_path(here / d))
        ]
        found += [
            here / f
            for f in sorted(files)
            if f.endswith((".yaml", ".yml")) and not (ignore is not None and ignore.ignored_path(here / f))
        ]
    return found


def _read(path: Path) -> str:
    try:
        return yamlio.read_text(path, 4 * 1024 * 1024)
    except OSError:
        return ""


def _flux_files(files: list[Path]) -> list[Path]:
    return [f for f in files if _FLUX_KS.search(_read(f))]


def git_toplevel(path: Path) -> Path | None:
    """The git work tree holding ``path``, or None."""
    if find_tool("git") is None:
        return None
    outcome = run_one(Command(("git", "rev-parse", "--show-toplevel"), cwd=path, deadline=30))
    text = outcome.stdout.strip()
    return Path(text).resolve() if outcome.ok and text else None


def _clean(path: str) -> str:
    return path.strip().removeprefix("./").strip("/")


@dataclass
class _Scan:
    syncs: list[Sync] = field(default_factory=list)
    self_managed: list[tuple[Path, str]] = field(default_factory=list)  # (file, spec.path)
    versions: list[tuple[Path, str]] = field(default_factory=list)  # (file, Flux version it pins)
    gates: list[tuple[Path, bool]] = field(default_factory=list)  # (file, StrictPostBuildSubstitutions)


def _sync_of(doc: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the sync settings a document defines, the FluxInstance spec it comes from)."""
    kind = doc.get("kind")
    spec: dict[str, Any] = doc["spec"] if isinstance(doc.get("spec"), dict) else {}
    if kind == "FluxInstance":
        return (spec.get("sync") if isinstance(spec.get("sync"), dict) else None), spec
    values = spec.get("values") if kind == "HelmRelease" else doc if kind is None else None
    # the flux-instance chart's values, in a HelmRelease or in a values file of their own
    instance = values.get("instance") if isinstance(values, dict) else None
    if isinstance(instance, dict):
        return (instance.get("sync") if isinstance(instance.get("sync"), dict) else None), instance
    return None, {}


#: One scan per folder and run (:func:`locate` and :func:`facts` read the same files);
#: :func:`forget` empties it when a run starts.
_SCANS: dict[tuple[Path, Path | None], _Scan] = {}


_IGNORES: dict[Path, SourceIgnore] = {}


def forget() -> None:
    """Drop what earlier runs scanned (the files may have changed since)."""
    _SCANS.clear()
    _IGNORES.clear()


def ignore_for(root: Path) -> SourceIgnore:
    """The ignore rules of the source at ``root`` (read once per run)."""
    if root not in _IGNORES:
        _IGNORES[root] = SourceIgnore(root)
    return _IGNORES[root]


def _scan(directory: Path, ignore: SourceIgnore | None) -> _Scan:
    """Sync definitions, self-managing Kustomizations and Flux facts below ``directory``."""
    key = (directory, ignore.root if ignore is not None else None)
    if key not in _SCANS:
        _SCANS[key] = _scan_files(directory, ignore)
    return _SCANS[key]


def _scan_files(directory: Path, ignore: SourceIgnore | None) -> _Scan:
    out = _Scan()
    for file in _walk(directory, MAX_DEPTH, ignore):
        text = _read(file)
        out.gates += [(file, gate == "true") for gate in _STRICT_GATE.findall(text)]
        out.versions += [(file, a or b) for a, b in _FLUX_VERSION_TEXT.findall(text)]
        if "flux-manifests" in text:
            out.versions += [(file, v) for v in _flux_manifests(text)]
        if "FluxInstance" not in text and "instance:" not in text and not _FLUX_KS.search(text):
            continue
        try:
            docs = yamlio.load_all(text)
        except (yamlio.YAMLError, ValueError):
            continue
        for doc in docs:
            if isinstance(doc, dict):
                _scan_doc(doc, file, docs, out)
    return out


def _flux_manifests(text: str) -> list[str]:
    """The Flux versions ``oci://ghcr.io/fluxcd/flux-manifests`` OCIRepositories pin."""
    try:
        docs = yamlio.load_all(text)
    except (yamlio.YAMLError, ValueError):
        return []
    out = []
    for doc in docs:
        spec = doc.get("spec") if isinstance(doc, dict) and doc.get("kind") == "OCIRepository" else None
        if isinstance(spec, dict) and "fluxcd/flux-manifests" in str(spec.get("url", "")):
            tag = (spec.get("ref") or {}).get("tag") if isinstance(spec.get("ref"), dict) else None
            if tag and re.match(r"^v?\d+\.\d+\.\d+$", str(tag)):
                out.append(str(tag).removeprefix("v"))
    return out


def _scan_doc(doc: dict[str, Any], file: Path, docs: list[Any], out: _Scan) -> None:
    sync, instance = _sync_of(doc)
    if sync is not None:
        distribution = instance.get("distribution")
        version = str(distribution.get("version") or "") if isinstance(distribution, dict) else ""
        if isinstance(sync.get("path"), str) and "${" not in sync["path"]:
            kind = str(sync.get("kind") or "GitRepository")
            out.syncs.append(Sync(kind, str(sync.get("url") or ""), _clean(sync["path"]), file, version))
        return
    if doc.get("kind") != "Kustomization" or not str(doc.get("apiVersion", "")).startswith(
        "kustomize.toolkit.fluxcd.io/"
    ):
        return
    spec: dict[str, Any] = doc["spec"] if isinstance(doc.get("spec"), dict) else {}
    path = _clean(str(spec.get("path") or ""))
    if (doc.get("metadata") or {}).get("name") == "flux-system" and "${" not in path:
        # flux bootstrap's gotk-sync: the source is the flux-system GitRepository beside it
        ref: dict[str, Any] = spec["sourceRef"] if isinstance(spec.get("sourceRef"), dict) else {}
        kind = str(ref.get("kind") or "GitRepository")
        url = next(
            (
                str((d.get("spec") or {}).get("url") or "")
                for d in docs
                if isinstance(d, dict)
                and d.get("kind") == kind
                and (d.get("metadata") or {}).get("name") == ref.get("name")
            ),
            "",
        )
        out.syncs.append(Sync(kind, url, path, file))
    elif path and "${" not in path:
        out.self_managed.append((file, path))


def _one(values: list[tuple[Path, Any]], entry: Path) -> Any:
    """The value found in the entry folder, else the one value the whole repository agrees
    on, else None."""
    inside = {v for f, v in values if f.is_relative_to(entry)}
    if len(inside) == 1:
        return inside.pop()
    everywhere = {v for _f, v in values}
    return everywhere.pop() if len(everywhere) == 1 else None


def facts(root: Path, entry: Path) -> FluxFacts:
    """What ``root``'s files say about the Flux running the cluster at ``entry``: the
    syncs that reconcile it (their URLs are this repository), the Flux version it runs and
    whether substitution is strict."""
    scan = _scan(root, ignore_for(root))  # the scan locate() made, when it looked at root
    syncs = [s for s in scan.syncs if (root / s.path).resolve() == entry.resolve()]
    pinned = {s.version for s in syncs if s.version}
    version = pinned.pop() if len(pinned) == 1 else _one(scan.versions, entry)
    return FluxFacts(syncs=syncs, version=str(version or ""), strict_gate=_one(scan.gates, entry))


def _bases(path: Path, top: Path | None) -> list[Path]:
    """Folders a sync path may be relative to, most likely first: git's top level, the folder
    given, and its parents."""
    out = [top] if top is not None else []
    return out + [p for p in [path, *path.parents] if p not in out]


def _resolve_sync(sync: Sync, path: Path, top: Path | None) -> tuple[Path, Path] | None:
    """(source root, cluster folder) for one sync path, or None when it exists nowhere."""
    for base in _bases(path, top):
        target = base / sync.path if sync.path else base
        if target.is_dir() and sync.path:
            return base.resolve(), target.resolve()
    if sync.kind != "GitRepository" and sync.path:
        # An OCI artifact is often pushed from a sub-folder (``flux push artifact --path=kubernetes``).
        for base in sorted(p for p in path.iterdir() if p.is_dir() and p.name not in SKIP_DIRS):
            if (base / sync.path).is_dir():
                return base.resolve(), (base / sync.path).resolve()
    return None


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
                path = _clean(str(doc["spec"].get("path") or ""))
                if path and "${" not in path:
                    out.append(path)
    return out


def _root_for(entry: Path, start: Path, top: Path | None) -> Path:
    """The repository root for an entry found without a sync path: of git's top level and
    the entry's ancestors, the one from which most of the entry's ``spec.path`` values exist
    (git's top level, then the nearest, on a tie), else git's top level, else ``start``."""
    paths = _spec_paths(_flux_files(_walk(entry, 3, None))[:40])
    candidates = [c for c in [top, entry, *entry.parents] if c is not None and entry.is_relative_to(c)]
    scores = [(sum((c / p).is_dir() for p in paths), -index, c) for index, c in enumerate(candidates)]
    best = max(scores, default=None, key=lambda score: score[:2])
    if best is not None and best[0] > 0:
        return best[2]
    if top is not None and entry.is_relative_to(top):
        return top
    return start if entry.is_relative_to(start) else entry


def _self_managed(found: list[tuple[Path, str]], path: Path, top: Path | None) -> dict[Path, Path]:
    """{folder: source root} of the Kustomizations below ``path`` that manage the folder
    they sit in (their path, relative to the source root, holds their own file), unless
    another such Kustomization already applies them."""
    out: dict[Path, Path] = {}
    for file, spec_path in found:
        for base in _bases(path, top):
            target = (base / spec_path).resolve()
            if target.is_dir() and target.is_relative_to(path) and file.is_relative_to(target):
                inside = any(
                    o != file and file.is_relative_to((base / p).resolve())
                    for o, p in found
                    if p != spec_path
                )
                if not inside:
                    out[target] = base.resolve()
                break
    return out


def _outermost(found: dict[Path, Path]) -> dict[Path, Path]:
    """Cluster folders not inside another one (a root managing its own folder is one cluster)."""
    return {c: r for c, r in found.items() if not any(c != o and c.is_relative_to(o) for o in found)}


def _too_many(path: Path, clusters: list[Path]) -> EntryNotFound:
    listed = ", ".join(os.path.relpath(c, path) for c in sorted(clusters))
    return EntryNotFound(
        f"{path} holds {len(clusters)} Flux clusters ({listed}): pass one of them with --path"
    )


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
    top = git_toplevel(path)
    ignore = ignore_for(top if top is not None and path.is_relative_to(top) else path)
    scan = _scan(path, ignore)
    synced: dict[Path, Path] = {}
    for sync in scan.syncs:
        resolved = _resolve_sync(sync, path, top)
        if resolved is not None and resolved[1].is_relative_to(path):
            synced[resolved[1]] = resolved[0]
    synced = _outermost(synced)
    if len(synced) == 1:
        entry, root = next(iter(synced.items()))
        return root, entry
    if len(synced) > 1:
        raise _too_many(path, list(synced))
    start = top or path
    layout = _outermost(
        {
            f.parent.resolve(): start
            for f in _walk(path, 5, ignore)
            if f.parent.name == "cluster" and f.parent.parent.name == "flux"
        }
    )
    if len(layout) == 1:
        entry = next(iter(layout))
        return _root_for(entry, start, top), entry
    if len(layout) > 1:
        raise _too_many(path, list(layout))
    managed = _outermost(_self_managed(scan.self_managed, path, top))
    if len(managed) == 1:
        entry, root = next(iter(managed.items()))
        return root, entry
    if len(managed) > 1:
        raise _too_many(path, list(managed))
    if _flux_files(_walk(path, MAX_DEPTH, ignore)):
        return _root_for(path, start, top), path
    raise EntryNotFound(f"no Flux tree under {path}: looked for {LOOKED_FOR}")
