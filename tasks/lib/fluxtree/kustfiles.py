"""Reading kustomization directories without building them.

For every directory a build will load, this finds: the directories it pulls in (resources and
components), references to files that do not exist, remote references (which an offline build
cannot fetch), and whether the directory renames objects (name prefixes/suffixes, hashed
generators, vars) -- the only thing that makes building several Flux Kustomizations in one
kustomize process differ from building them one by one.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import yamlio

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def is_remote(ref: str) -> bool:
    return (
        "://" in ref
        or ref.startswith(("github.com/", "gitlab.com/", "git@", "bitbucket.org/"))
        or "?ref=" in ref
    )


@dataclass
class KDir:
    """What one kustomization directory references."""

    path: Path
    file: Path | None
    data: dict[str, Any] = field(default_factory=dict)
    children: list[Path] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (field, reference)
    remote: list[str] = field(default_factory=list)
    renames: bool = False
    error: tuple[int | None, str] | None = None  # YAML error (line, message)


def _generator_hashes(data: dict[str, Any]) -> bool:
    global_off = bool((data.get("generatorOptions") or {}).get("disableNameSuffixHash"))
    for key in ("configMapGenerator", "secretGenerator"):
        for gen in data.get(key) or []:
            if not isinstance(gen, dict):
                continue
            local = (gen.get("options") or {}).get("disableNameSuffixHash")
            if not (local if local is not None else global_off):
                return True
    return False


def _file_refs(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, path) of every plain file a kustomization names."""
    refs: list[tuple[str, str]] = []
    for key in ("patches", "patchesJson6902", "replacements"):
        for item in data.get(key) or []:
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                refs.append((key, item["path"]))
    for item in data.get("patchesStrategicMerge") or []:
        if isinstance(item, str) and "\n" not in item and ":" not in item:
            refs.append(("patchesStrategicMerge", item))
    for key in ("configMapGenerator", "secretGenerator"):
        for gen in data.get(key) or []:
            if not isinstance(gen, dict):
                continue
            for entry in gen.get("files") or []:
                if isinstance(entry, str):
                    refs.append((key, entry.split("=", 1)[-1]))
            for entry in [*(gen.get("envs") or []), gen.get("env")]:
                if isinstance(entry, str):
                    refs.append((key, entry))
    for key in ("configurations", "crds", "generators", "transformers", "validators"):
        for entry in data.get(key) or []:
            if isinstance(entry, str) and "\n" not in entry:
                refs.append((key, entry))
    return refs


def without_remote(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the remote references an offline build cannot fetch (resources,
    components, and generator files given by URL)."""
    out = dict(data)
    for key in ("resources", "components", "bases"):
        if key in out:
            out[key] = [r for r in out[key] or [] if not (isinstance(r, str) and is_remote(r))]
    for key in ("configMapGenerator", "secretGenerator"):
        if key not in out:
            continue
        generators = []
        for gen in out[key] or []:
            if isinstance(gen, dict) and gen.get("files"):
                gen = {
                    **gen,
                    "files": [
                        f for f in gen["files"] if not (isinstance(f, str) and is_remote(f.split("=", 1)[-1]))
                    ],
                }
            generators.append(gen)
        out[key] = generators
    return out


def references(data: dict[str, Any]) -> list[str]:
    """Every path a kustomization names: resources, components, bases and plain files."""
    keys = ("resources", "components", "bases")
    refs = [r for key in keys for r in data.get(key) or [] if isinstance(r, str)]
    return refs + [ref for _key, ref in _file_refs(data)]


def read_kdir(directory: Path) -> KDir:
    """Parse ``directory``'s kustomization file (if any) and classify what it references."""
    kfile = kustomization_file(directory)
    kdir = KDir(path=directory, file=kfile)
    if kfile is None:
        return kdir
    try:
        data = yamlio.load(kfile.read_text(encoding="utf-8", errors="replace")) or {}
    except yamlio.YAMLError as error:
        line, _column, message = yamlio.error_position(error)
        kdir.error = (line, message)
        return kdir
    if not isinstance(data, dict):
        kdir.error = (None, "a kustomization must be a mapping")
        return kdir
    kdir.data = data
    kdir.renames = bool(data.get("namePrefix") or data.get("nameSuffix") or data.get("vars"))
    kdir.renames = kdir.renames or _generator_hashes(data)
    for key in ("resources", "components", "bases"):
        for ref in data.get(key) or []:
            if not isinstance(ref, str):
                continue
            if is_remote(ref):
                kdir.remote.append(ref)
                continue
            target = directory / ref
            if target.is_dir():
                kdir.children.append(Path(os.path.normpath(target)))
            elif not target.exists():
                kdir.missing.append((key, ref))
    for key, ref in _file_refs(data):
        if is_remote(ref):
            kdir.remote.append(ref)
        elif not (directory / ref).exists():
            kdir.missing.append((key, ref))
    return kdir


class KDirCache:
    """Thread-safe memo of :func:`read_kdir`, and the closure of directories a path loads."""

    def __init__(self) -> None:
        self._dirs: dict[Path, KDir] = {}
        self._lock = threading.Lock()

    def get(self, directory: Path) -> KDir:
        directory = Path(os.path.normpath(directory))
        with self._lock:
            cached = self._dirs.get(directory)
        if cached is None:
            cached = read_kdir(directory)
            with self._lock:
                self._dirs[directory] = cached
        return cached

    def closure(self, start: Path) -> list[KDir]:
        """Every kustomization directory a build of ``start`` loads, ``start`` first."""
        seen: dict[Path, KDir] = {}
        stack = [Path(os.path.normpath(start))]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            kdir = self.get(current)
            seen[current] = kdir
            stack.extend(child for child in reversed(kdir.children) if child not in seen)
        return list(seen.values())


def generated_resources(directory: Path) -> tuple[list[str], list[tuple[Path, int | None, str]]]:
    """The resources Flux lists when a path has no kustomization file: every YAML file below
    it, and every subdirectory holding a kustomization (not descended into). Also returns
    the files that are not valid YAML."""
    resources: list[str] = []
    errors: list[tuple[Path, int | None, str]] = []
    for current, dirs, files in os.walk(directory):
        here = Path(current)
        dirs.sort()
        keep = []
        for name in dirs:
            sub = here / name
            if kustomization_file(sub) is not None:
                resources.append(os.path.relpath(sub, directory))
            else:
                keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            path = here / name
            try:
                yamlio.load_all(path.read_text(encoding="utf-8", errors="replace"))
            except yamlio.YAMLError as error:
                line, _column, message = yamlio.error_position(error)
                errors.append((path, line, message))
                continue
            resources.append(os.path.relpath(path, directory))
    return resources, errors


def yaml_errors(kdirs: list[KDir]) -> list[tuple[Path, int | None, str]]:
    """YAML files loaded by these directories that do not parse (used to explain a failed build)."""
    errors: list[tuple[Path, int | None, str]] = []
    for kdir in kdirs:
        refs = [
            r for key in ("resources", "components") for r in kdir.data.get(key) or [] if isinstance(r, str)
        ]
        refs += [ref for _key, ref in _file_refs(kdir.data) if ref.endswith((".yaml", ".yml"))]
        for ref in refs:
            path = kdir.path / ref
            if not path.is_file() or is_remote(ref):
                continue
            try:
                yamlio.load_all(path.read_text(encoding="utf-8", errors="replace"))
            except yamlio.YAMLError as error:
                line, _column, message = yamlio.error_position(error)
                errors.append((path, line, message))
    return errors
