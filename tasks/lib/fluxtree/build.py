"""Running kustomize for many Flux Kustomizations at once.

Each Flux Kustomization becomes a *build item*: a directory to build, either its path in the
repository as it is, or -- when Flux would change it (targetNamespace, patches, components,
images, no kustomization file, remote references to drop) -- a shadow of the repository in a
temporary directory where the path's kustomization file is replaced by the one Flux would
generate and everything else is a symlink to the real file. Relative references therefore
resolve exactly as in the repository, and the repository itself is never written to.

Items are built several to a kustomize process (one batch per core): the batch's
kustomization lists the items separated by marker objects and keeps their order, so the
output splits back per item. A batch that fails is split in halves until the failing items
are alone. Kustomize fixes name references (to hashed generator names, prefixed names) across
everything in one build, within a namespace: an item that renames objects therefore shares a
batch only with items deploying to other target namespaces, and one using ``vars`` (resolved
across the whole build) is built alone.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.lib.tools.kustomize import kustomize_argv, pick_kustomize
from tasks.lib.tools.runner import DEFAULT_MEMORY, Command, run_one

from . import yamlio
from .kustfiles import is_remote, kustomization_file, references

MARKER = "fluxtree-marker-"
ORIGIN = "config.kubernetes.io/origin"
MAX_BATCH = 64
#: Kustomize's garbage collector runs a fifth as often (a third less CPU on a batch, a few
#: MB more memory), and as often as needed again near half the memory limit it runs under.
KUSTOMIZE_ENV = {"GOGC": "400", "GOMEMLIMIT": str(DEFAULT_MEMORY // 2)}
_ORIGIN_PATH = re.compile(r"^(?:path|configuredIn): *(.+?) *$", re.MULTILINE)


@dataclass
class BuildItem:
    """One directory to build for one Flux Kustomization."""

    key: str
    directory: Path
    overrides: dict[Path, dict[str, Any]] = field(default_factory=dict)  # dir -> kustomization
    materialize: set[Path] = field(default_factory=set)
    alone: bool = False
    renames: bool = False
    namespace: str = ""  # the Flux Kustomization's targetNamespace, when set
    dirs: frozenset[Path] = frozenset()  # every kustomization directory the build loads
    #: Directories whose objects keep their names under a ``nameSuffix`` (Namespaces, CRDs,
    #: APIServices: kustomize never renames them); None when the item cannot take a suffix.
    fixed: frozenset[Path] | None = None


@dataclass
class Doc:
    """One built object: its YAML text, parsed body and the repository file it comes from."""

    text: str
    body: dict[str, Any]
    file: str


@dataclass
class BuildResult:
    key: str
    ok: bool
    docs: list[Doc] = field(default_factory=list)
    error: str = ""
    internal: bool = False  # the failure is ours (a bug), not kustomize's


_CLEANUPS: list[threading.Thread] = []


def wait_cleanup() -> None:
    """Wait until every temporary folder of finished builds is gone."""
    while _CLEANUPS:
        _CLEANUPS.pop().join()


_ABSOLUTE = re.compile(r"(/[^'\"\s:]+)")


def kustomize_error(error: str, root: Path, temporaries: Sequence[Path]) -> tuple[str | None, str]:
    """(repository file kustomize choked on, or None; one-line reason) from its stderr.

    Kustomize nests its errors (``accumulating resources: accumulation err='accumulating
    resources from 'x': ...': file is not directory``); the innermost path that lies in the
    repository names the file, the innermost text the reason. Paths in our temporary shadow
    trees are mapped back to the repository file they mirror.
    """
    lines = [line.strip() for line in error.strip().splitlines() if not line.startswith("# Warning:")]
    text = re.sub(r"^(Error|error): ", "", " ".join(line for line in lines[:3] if line))
    found: str | None = None
    for match in _ABSOLUTE.findall(text):
        candidate = Path(match)
        for base in temporaries:
            if candidate.is_relative_to(base):
                parts = candidate.relative_to(base).parts
                candidate = root.joinpath(*parts[1:]) if len(parts) > 1 else root
        if candidate.is_relative_to(root) and candidate.exists() and candidate != root:
            if candidate.is_dir():
                candidate = kustomization_file(candidate) or candidate
            found = str(candidate.relative_to(root))
    for base in temporaries:
        text = text.replace(str(base), "<tmp>")
    text = text.replace(str(root) + "/", "")
    if "accumulation err=" in text or "': " in text:  # keep kustomize's innermost reason
        text = text.rsplit("': ", 1)[-1]
    # kubectl's kustomize escapes the quotes of nested errors (\\"), kustomize does not
    text = text.replace('\\"', '"').strip("'\" \\")
    if text.count("'") % 2:  # the closing quote of a path, stripped with the outer ones
        text += "'"
    return found, (text.strip()[:400] or "kustomize build failed")


def strip_origin(body: dict[str, Any]) -> str | None:
    """Remove and return the origin annotation kustomize added."""
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return None
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict) or ORIGIN not in annotations:
        return None
    origin = annotations.pop(ORIGIN)
    if not annotations:
        del metadata["annotations"]
    match = _ORIGIN_PATH.search(str(origin))
    return match.group(1) if match else None


@dataclass
class _Group:
    items: list[BuildItem] = field(default_factory=list)
    dirs: dict[str, set[Path]] = field(default_factory=dict)  # namespace -> directories used
    fixed: dict[str, set[Path]] = field(default_factory=dict)  # namespace -> their unrenamed part
    renaming: set[str] = field(default_factory=set)  # namespaces with a renaming item

    def accepts(self, item: BuildItem) -> bool:
        if len(self.items) >= MAX_BATCH:
            return False
        if item.renames and (item.namespace in self.dirs or "" in self.dirs):
            return False
        if item.namespace in self.renaming:
            return False
        if not item.namespace:
            if self.renaming:
                return False
            namespaces = list(self.dirs)
        else:
            namespaces = [item.namespace, ""]
        fixed = item.dirs if item.fixed is None else item.fixed
        return not any(
            fixed & self.dirs.get(ns, set()) or item.dirs & self.fixed.get(ns, set()) for ns in namespaces
        )

    def add(self, item: BuildItem) -> None:
        self.items.append(item)
        self.dirs.setdefault(item.namespace, set()).update(item.dirs)
        self.fixed.setdefault(item.namespace, set()).update(item.dirs if item.fixed is None else item.fixed)
        if item.renames:
            self.renaming.add(item.namespace)


def plan_groups(items: Sequence[BuildItem], workers: int) -> list[list[BuildItem]]:
    """Batches of items that cannot interfere, at least ``workers`` of them when possible.

    Two items of one namespace that load the same directory (typically a component that
    names its objects ``${APP}``) would produce the same object ids before substitution:
    an item that can take a ``nameSuffix`` is built with one of its own (removed from its
    output, exactly), which keeps their objects apart, except the kinds kustomize never
    renames; other items that share a directory go to different batches. A renaming item
    shares a batch only with items of other namespaces; an item using ``vars`` is alone.
    """
    single = [item for item in items if item.alone or (item.renames and not item.namespace)]
    groups = [_Group() for _ in range(min(workers, len(items)))]
    for item in items:
        if item in single:
            continue
        candidates = [group for group in groups if group.accepts(item)]
        if not candidates:
            groups.append(_Group())
            candidates = [groups[-1]]
        min(candidates, key=lambda group: len(group.items)).add(item)
    return [group.items for group in groups if group.items] + [[item] for item in single]


class _Shadow:
    """One shadow tree of the repository, shared by the items whose needs agree."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.roles: dict[Path, str] = {}  # real folder -> its role (see Builder._layout)
        self.links: set[Path] = set()

    def accepts(self, roles: dict[Path, str], links: set[Path]) -> bool:
        return all(
            rel not in self.links and self.roles.get(rel, role) == role for rel, role in roles.items()
        ) and not any(link in self.roles for link in links)

    def add(self, root: Path, roles: dict[Path, str], links: set[Path]) -> None:
        for rel in sorted(set(roles) - set(self.roles), key=lambda p: len(p.parts)):
            (self.path / rel).mkdir(parents=True, exist_ok=True)
            role = roles[rel]
            if role.startswith("override\n"):
                text = role.split("\n", 1)[1]
                (self.path / rel / "kustomization.yaml").write_text(text, encoding="utf-8")
            self.roles[rel] = role
        for link in sorted(links - self.links):
            os.symlink(root / link, self.path / link)
            self.links.add(link)


class Builder:
    """Builds items in parallel; owns a temporary directory removed by :meth:`close`."""

    def __init__(self, root: Path, *, workers: int | None = None, tool: str | None = None) -> None:
        self.root = root.resolve()
        self.real_root = Path(os.path.realpath(self.root))
        self.workers = workers or os.cpu_count() or 2
        self.tool = tool or pick_kustomize()
        self.tmp = Path(tempfile.mkdtemp(prefix="fluxtree-"))
        self.real_tmp = Path(os.path.realpath(self.tmp))
        self.processes = 0
        self._counter = itertools.count(1)
        self.token = f"fx{secrets.token_hex(4)}x"
        self._shadows: list[_Shadow] = []
        self._shadow_lock = threading.Lock()

    def close(self) -> None:
        """Remove the temporary folder, in the background: nothing reads it any more, and a
        big tree's thousands of links take a while to delete. :func:`wait_cleanup` joins."""
        thread = threading.Thread(target=shutil.rmtree, args=(self.tmp,), kwargs={"ignore_errors": True})
        thread.start()
        _CLEANUPS.append(thread)

    def __enter__(self) -> Builder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self, prefix: str) -> Path:
        return self.tmp / f"{prefix}{next(self._counter)}"

    # Shadow trees -----------------------------------------------------------------------
    def _links(self, rel: Path, data: dict[str, Any], real: set[Path]) -> set[Path]:
        """The entries an overridden kustomization in ``rel`` reaches: for each reference,
        the first path component below the deepest real directory on its way."""
        links: set[Path] = set()
        for ref in references(data):
            if is_remote(ref):
                continue
            target = Path(os.path.normpath(rel / ref))
            if target.parts[:1] == ("..",) or target in real:
                continue
            prefix = Path()
            for part in target.parts:
                if prefix / part not in real:
                    links.add(prefix / part)
                    break
                prefix = prefix / part
        return links

    def _layout(self, item: BuildItem) -> tuple[dict[Path, str], set[Path]]:
        """What ``item`` needs of a shadow: (each real folder's role -- ``override`` with the
        kustomization text, ``all`` for a folder whose every entry is linked, ``way`` for a
        folder on the way to those --, the paths to link to the real file or folder)."""
        real: set[Path] = {Path()}
        for directory in item.materialize | set(item.overrides):
            try:
                rel = directory.resolve().relative_to(self.root)
            except ValueError:
                continue
            real.add(rel)
            real.update(rel.parents)
        overridden = {d.resolve().relative_to(self.root): data for d, data in item.overrides.items()}
        materialized = {d.resolve().relative_to(self.root) for d in item.materialize}
        roles = {rel: "way" for rel in real}
        links: set[Path] = set()
        for rel, data in overridden.items():
            links |= self._links(rel, data, real)
            roles[rel] = "override\n" + yamlio.dump(data)
        for rel in materialized - set(overridden):
            links |= {rel / name for name in os.listdir(self.root / rel)} - real
            roles[rel] = "all"
        links = {link for link in links if (self.root / link).exists() or (self.root / link).is_symlink()}
        return roles, links

    def _shadow(self, item: BuildItem) -> Path:
        """The item's folder in a shadow of the repository: its overridden folders, those it
        materializes and their ancestors are real folders there, ``item.overrides`` replace
        kustomization files, and what those reference is a symlink to the real file or folder.

        Items share shadows: an item joins the first one where every path it needs has the
        role it needs (or none yet), so a run creates a few hundred entries, not one tree per
        item. Kustomize reads only the paths a kustomization names, never lists a folder, so
        what other items add to a shadow cannot change a build."""
        roles, links = self._layout(item)
        with self._shadow_lock:
            for shadow in self._shadows:
                if shadow.accepts(roles, links):
                    break
            else:
                shadow = _Shadow(self._next("s"))
                self._shadows.append(shadow)
            shadow.add(self.root, roles, links)
        return shadow.path / item.directory.resolve().relative_to(self.root)

    def _item_dir(self, item: BuildItem) -> Path:
        if not item.overrides and not item.materialize:
            return item.directory
        return self._shadow(item)

    # Batches ----------------------------------------------------------------------------
    def suffix(self, item: BuildItem, index: int) -> str:
        """The ``nameSuffix`` an item takes in a batch ("" when it takes none): a token no
        repository contains, so that removing it restores exactly what kustomize made."""
        return f"-{self.token}{index}" if item.fixed is not None else ""

    def _write_batch(self, group: list[BuildItem]) -> tuple[Path, list[str]]:
        batch = self._next("b")
        batch.mkdir()
        resources: list[str] = []
        for index, item in enumerate(group):
            directory = self._item_dir(item)
            target = os.path.relpath(directory, batch)
            if suffix := self.suffix(item, index) if len(group) > 1 else "":
                wrapper = batch / f"w{index}"
                wrapper.mkdir()
                wrapped = {
                    "resources": [os.path.relpath(directory, wrapper)],
                    "nameSuffix": suffix,
                }
                (wrapper / "kustomization.yaml").write_text(yamlio.dump(wrapped), encoding="utf-8")
                target = wrapper.name
            resources.append(target)
            marker = f"m{index}.yaml"
            (batch / marker).write_text(
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {MARKER}{index}\n", encoding="utf-8"
            )
            resources.append(marker)
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "sortOptions": {"order": "fifo"},
            "buildMetadata": ["originAnnotations"],
            "resources": resources,
        }
        (batch / "kustomization.yaml").write_text(yamlio.dump(kustomization), encoding="utf-8")
        return batch, [item.key for item in group]

    def _repo_file(self, batch: Path, origin: str | None, fallback: str) -> str:
        if not origin:
            return fallback
        # Shadows mirror the repository path for path, so no symlink needs resolving.
        path = Path(os.path.normpath(batch / origin))
        for base in (self.root, self.real_root):
            if path.is_relative_to(base):
                return str(path.relative_to(base))
        for base in (self.tmp, self.real_tmp):
            if path.is_relative_to(base):
                rel = path.relative_to(base)
                return str(Path(*rel.parts[1:])) if len(rel.parts) > 1 else fallback
        return fallback

    def _split(self, batch: Path, group: list[BuildItem], stdout: str) -> list[BuildResult]:
        results = [BuildResult(item.key, True) for item in group]
        fallbacks = [str(item.directory.resolve().relative_to(self.root)) for item in group]
        # kustomize fixes every reference to a renamed object across the whole build, so an
        # item may hold another item's suffix too: every suffix of the batch is removed.
        suffixed = len(group) > 1 and any(item.fixed is not None for item in group)
        token = re.compile(rf"-{self.token}\d+")
        index = 0
        for text in yamlio.split_documents(stdout):
            if MARKER in text:
                marker = yamlio.load(text)
                marker = marker if isinstance(marker, dict) else {}
                name = str((marker.get("metadata") or {}).get("name", ""))
                if marker.get("kind") == "ConfigMap" and name.startswith(MARKER):
                    index = int(name[len(MARKER) :]) + 1
                    continue
            if index >= len(group):
                continue
            if suffixed:
                text = token.sub("", text)  # the token exists only where kustomize put it
            body = yamlio.load(text)
            if not isinstance(body, dict):
                continue
            origin = strip_origin(body)
            file = self._repo_file(batch, origin, fallbacks[index])
            results[index].docs.append(Doc(text, body, file))
        return results

    def _batch(self, group: list[BuildItem]) -> tuple[list[BuildResult], list[list[BuildItem]]]:
        """Prepare, build and split one batch: (results, halves to retry). The batch folder
        is removed at once, while other batches build (a retry writes its own)."""
        batch: Path | None = None
        try:
            batch, _keys = self._write_batch(group)
            argv = kustomize_argv(str(batch), self.tool, unrestricted=True)
            what = (
                f"building Kustomization {group[0].key}"
                if len(group) == 1
                else f"building {len(group)} Kustomizations"
            )
            outcome = run_one(Command(tuple(argv), what=what, env=KUSTOMIZE_ENV))
            if outcome.ok:
                return self._split(batch, group, outcome.stdout), []
            error, internal = (outcome.problem if outcome.limit else outcome.stderr.strip()), False
        except Exception as exc:
            error, internal = f"{type(exc).__name__}: {exc}", True
        finally:
            if batch is not None:
                shutil.rmtree(batch, ignore_errors=True)
        if len(group) == 1:
            return [BuildResult(group[0].key, False, error=error, internal=internal)], []
        half = len(group) // 2
        return [], [group[:half], group[half:]]

    def build(
        self, items: Sequence[BuildItem], progress: Callable[[int], None] | None = None
    ) -> dict[str, BuildResult]:
        """Build every item. Each worker prepares, builds and parses whole batches, so the
        Python work of one batch overlaps the kustomize run of another; a failing batch is
        bisected until each failure is attributed to its item."""
        results: dict[str, BuildResult] = {}
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            pending = {pool.submit(self._batch, group) for group in plan_groups(items, self.workers)}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    built, retry = future.result()
                    self.processes += 1
                    results.update((result.key, result) for result in built)
                    if progress is not None and built:
                        progress(len(built))
                    pending |= {pool.submit(self._batch, half) for half in retry}
        return results
