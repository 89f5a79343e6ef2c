"""Where ``substituteFrom`` values come from: ConfigMaps and Secrets the tree creates.

A ConfigMap or plain Secret gives its values; a SOPS-encrypted Secret (or a SealedSecret)
gives its keys with placeholder values; an ExternalSecret or a 1Password item creates a
Secret whose keys are unknown offline.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from . import yamlio
from .kustfiles import KUSTOMIZATION_FILES
from .walk import walk


def placeholder(key: str) -> str:
    return f"PLACEHOLDER_{key}"


@dataclass
class VarSource:
    kind: str  # ConfigMap | Secret
    namespace: str
    name: str
    file: str
    values: dict[str, str] = field(default_factory=dict)
    keys_known: bool = True
    bootstrap: bool = False  # applied by the bootstrap step, before Flux


def _decode(value: Any) -> str:
    text = str(value)
    if text.startswith("ENC["):
        return text
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return text


def _secret_values(body: dict[str, Any]) -> dict[str, str]:
    encrypted = "sops" in body
    values: dict[str, str] = {}
    for key, value in (body.get("data") or {}).items():
        decoded = _decode(value)
        values[str(key)] = placeholder(str(key)) if encrypted or decoded.startswith("ENC[") else decoded
    for key, value in (body.get("stringData") or {}).items():
        text = str(value)
        values[str(key)] = placeholder(str(key)) if encrypted or text.startswith("ENC[") else text
    return values


def sources_from(body: dict[str, Any], namespace: str, file: str) -> list[VarSource]:
    """The ConfigMaps/Secrets one object creates (in the cluster) and what we know of them."""
    kind = body.get("kind")
    metadata = body.get("metadata") or {}
    name = str(metadata.get("name", ""))
    spec: dict[str, Any] = body["spec"] if isinstance(body.get("spec"), dict) else {}
    if kind == "ConfigMap":
        values = {str(k): str(v) for k, v in (body.get("data") or {}).items()}
        return [VarSource("ConfigMap", namespace, name, file, values)]
    if kind == "Secret":
        return [VarSource("Secret", namespace, name, file, _secret_values(body))]
    if kind == "ExternalSecret":
        target = (spec.get("target") or {}).get("name") or name
        return [VarSource("Secret", namespace, str(target), file, keys_known=False)]
    if kind == "ClusterExternalSecret":
        # One ExternalSecret (so one Secret) in every namespace its selectors pick: which
        # ones is known only in the cluster, so any namespace counts.
        inner: dict[str, Any] = (
            spec["externalSecretSpec"] if isinstance(spec.get("externalSecretSpec"), dict) else {}
        )
        target = (inner.get("target") or {}).get("name") or spec.get("externalSecretName") or name
        return [VarSource("Secret", ANY_NAMESPACE, str(target), file, keys_known=False)]
    if kind == "SealedSecret":
        template = ((spec.get("template") or {}).get("metadata") or {}).get("name") or name
        keys = {str(k): placeholder(str(k)) for k in (spec.get("encryptedData") or {})}
        return [VarSource("Secret", namespace, str(template), file, keys)]
    if kind == "OnePasswordItem":
        return [VarSource("Secret", namespace, name, file, keys_known=False)]
    return []


ANY_NAMESPACE = "*"


class Registry:
    """ConfigMaps and Secrets by (kind, namespace, name); namespace ``*`` for those created
    in many namespaces (ClusterExternalSecret)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, str], VarSource] = {}

    def add(self, source: VarSource) -> None:
        """Keep the first creator of a name, except that the tree's object replaces what the
        bootstrap applied (Flux applies it over the bootstrap's)."""
        key = (source.kind, source.namespace, source.name)
        existing = self.entries.get(key)
        if existing is None or (existing.bootstrap and not source.bootstrap):
            self.entries[key] = source

    def add_object(self, body: dict[str, Any], namespace: str, file: str, *, bootstrap: bool = False) -> None:
        for source in sources_from(body, namespace, file):
            source.bootstrap = bootstrap
            self.add(source)

    def get(self, kind: str, namespace: str, name: str) -> VarSource | None:
        return self.entries.get((kind, namespace, name)) or self.entries.get((kind, ANY_NAMESPACE, name))

    @staticmethod
    def bootstrap_dirs(root: Path) -> list[Path]:
        """The outermost folders under ``bootstrap/`` holding a kustomization: built like
        Flux would, so their ``namespace:`` and generators count."""
        directory = root / "bootstrap"
        if not directory.is_dir():
            return []
        templates = template_sources(root)
        dirs = sorted(
            {
                p.parent
                for name in KUSTOMIZATION_FILES
                for p in _files(directory)
                if p.name == name
                if not any(p.is_relative_to(t) for t in templates)
            }
        )
        return [d for d in dirs if not any(d != o and d.is_relative_to(o) for o in dirs)]

    @staticmethod
    def bootstrap_manifests(root: Path, built: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
        """Secrets, ConfigMaps and sources the bootstrap step applies as plain files: the
        manifests under ``bootstrap/`` outside ``built`` folders (``*.yaml.j2`` too, when
        they parse, unless they are makejinja's template sources), and any repository
        manifest a bootstrap script names, e.g.
        ``kubernetes/components/common/sops/cluster-secrets.sops.yaml`` applied into
        ``flux-system`` by ``bootstrap/mod.just`` or ``scripts/bootstrap-apps.sh``."""
        files: dict[Path, None] = {}
        directory = root / "bootstrap"
        templates = template_sources(root)
        if directory.is_dir():
            for pattern in ("*.y*ml", "*.y*ml.j2"):
                files.update(
                    dict.fromkeys(
                        p
                        for p in _files(directory)
                        if fnmatch(p.name, pattern)
                        if not any(p.is_relative_to(b) for b in [*built, *templates])
                    )
                )
        files.update(dict.fromkeys(bootstrap_references(root)))
        out: list[tuple[Path, dict[str, Any]]] = []
        for path in files:
            try:
                docs = yamlio.load_all(yamlio.read_text(path))
            except (yamlio.YAMLError, OSError, ValueError):
                continue
            out += [(path, body) for body in docs if isinstance(body, dict) and body.get("kind")]
        return out


def template_sources(root: Path) -> list[Path]:
    """The folders makejinja renders from (``inputs`` of ``makejinja.toml``): their files
    are templates of manifests, never manifests anyone applies."""
    config = root / "makejinja.toml"
    try:
        data = tomllib.loads(yamlio.read_text(config, 1 << 20))
    except (OSError, tomllib.TOMLDecodeError, ValueError):
        return []
    inputs = (data.get("makejinja") or {}).get("inputs") or []
    out = []
    for entry in inputs if isinstance(inputs, list) else []:
        target = Path(os.path.normpath(root / str(entry)))
        if target.is_relative_to(root) and target != root:
            out.append(target)
    return out


def _files(directory: Path) -> list[Path]:
    """Every file below ``directory``, sorted (bounded walk)."""
    return sorted(here / name for here, _dirs, names in walk(directory) for name in names)


#: Where bootstrap scripts live in repositories of this family (Taskfile, just, shell).
SCRIPT_DIRS = ("bootstrap", "scripts", ".taskfiles", ".just")
SCRIPT_FILES = ("Taskfile.yaml", "Taskfile.yml", "justfile", ".justfile", "Justfile")
_PATH_TOKEN = re.compile(r"(?:[\w.-]+/)+[\w.-]+\.ya?ml\b")


def _script_files(root: Path) -> list[Path]:
    found = [root / name for name in SCRIPT_FILES if (root / name).is_file()]
    templates = template_sources(root)
    for name in SCRIPT_DIRS:
        directory = root / name
        if directory.is_dir():
            found += sorted(
                p
                for p in _files(directory)
                if p.is_file()
                and p.stat().st_size < 512_000
                and not any(p.is_relative_to(t) for t in templates)
            )
    return found


def bootstrap_references(root: Path) -> list[Path]:
    """Manifests under ``kubernetes/`` or ``bootstrap/`` that a bootstrap script names by a
    path, however the script spells the directory it starts from."""
    tokens: set[str] = set()
    for script in _script_files(root):
        try:
            text = yamlio.read_text(script, 512_000)
        except OSError:
            continue
        tokens.update(re.sub(r"^(?:\.\.?/)+", "", m.group(0)) for m in _PATH_TOKEN.finditer(text))
    if not tokens:
        return []
    out: list[Path] = []
    for directory in ("kubernetes", "bootstrap"):
        base = root / directory
        if not base.is_dir():
            continue
        for path in (p for p in _files(base) if fnmatch(p.name, "*.y*ml")):
            relative = path.relative_to(root).as_posix()
            # The token may lack the path's head (``{{ kubernetes_dir }}/components/...``) or
            # carry a variable's name before it (``$ROOT_DIR/kubernetes/...``).
            if any(relative == t or relative.endswith("/" + t) or t.endswith("/" + relative) for t in tokens):
                out.append(path)
    return out
