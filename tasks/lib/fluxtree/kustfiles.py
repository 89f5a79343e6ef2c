"""Reading kustomization directories without building them, within Flux's load restrictions.

For every directory a build will load, this finds: the directories it pulls in (resources and
components), references kustomize-controller would refuse (a file that does not exist in
the source artifact -- absent, or left out by ``.sourceignore`` --, a path outside the
source root, a file too big or not a regular file), remote references (which an offline
build cannot fetch), and whether the directory renames objects (name prefixes/suffixes,
hashed generators, vars) -- the only thing that makes building several Flux Kustomizations
in one kustomize process differ from building them one by one.

Every file a build reads is checked here first, so kustomize never reads outside the
repository, a FIFO, a device or a file over the size limit.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import yamlio
from .entry import ignore_for
from .ignore import SourceIgnore
from .walk import walk

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
#: Deeper chains of kustomizations (resources of resources of ...) are refused: real trees
#: nest a handful of levels, and kustomize's time grows with the square of the depth.
MAX_NESTING = 64
#: Kustomization directories one Flux Kustomization may load.
MAX_CLOSURE = 2000
_DIR_FIELDS = ("resources", "components", "bases")


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def is_remote(ref: str) -> bool:
    lowered = ref.lower()
    return (
        "://" in ref
        or lowered.startswith(("github.com/", "gitlab.com/", "git@", "bitbucket.org/", "git::", "gh:"))
        or "?ref=" in ref
    )


@dataclass(frozen=True)
class SourceView:
    """What kustomize-controller can read: the files of the source artifact, i.e. the
    repository below ``root`` without what ``.sourceignore`` leaves out."""

    root: Path
    ignore: SourceIgnore
    _relative: dict[str, str | None] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, root: Path) -> SourceView:
        root = Path(os.path.realpath(root))
        return cls(root, ignore_for(root))

    def relative(self, path: Path) -> str | None:
        """``path`` relative to the root when it stays inside (symlinks followed), else None."""
        normal = os.path.normpath(path)
        if normal not in self._relative:
            real = os.path.realpath(normal)
            root = str(self.root)
            inside = all(p == root or p.startswith(root + os.sep) for p in (normal, real))
            self._relative[normal] = os.path.relpath(normal, root) if inside else None
        return self._relative[normal]

    def excluded(self, path: Path) -> bool:
        relative = self.relative(path)
        return relative is not None and self.ignore.ignored(relative, path.is_dir())


@dataclass(frozen=True)
class Refusal:
    """A reference kustomize-controller would not load, and why."""

    key: str  # the kustomization field (resources, configMapGenerator, ...)
    ref: str  # the entry as written
    kind: str  # problem kind: missing-file | outside-source | file-refused
    reason: str


@dataclass
class KDir:
    """What one kustomization directory references."""

    path: Path
    file: Path | None
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    children: list[Path] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    renames: bool = False
    unrenamed: bool = False  # one of its files holds a kind no nameSuffix renames (Namespace, CRD)
    error: tuple[int | None, str] | None = None  # YAML error (line, message)
    error_kind: str = "yaml-invalid"

    @property
    def missing(self) -> list[tuple[str, str]]:
        return [(r.key, r.ref) for r in self.refused]


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


def generator_files(gen: dict[str, Any]) -> list[str]:
    """The files one configMapGenerator/secretGenerator entry reads (``key=path`` unwrapped)."""
    out = [e.split("=", 1)[-1] for e in gen.get("files") or [] if isinstance(e, str)]
    return out + [e for e in [*(gen.get("envs") or []), gen.get("env")] if isinstance(e, str)]


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
            if isinstance(gen, dict):
                refs += [(key, ref) for ref in generator_files(gen)]
    for key in ("configurations", "crds", "generators", "transformers", "validators"):
        for entry in data.get(key) or []:
            if isinstance(entry, str) and "\n" not in entry:
                refs.append((key, entry))
    openapi = data.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        refs.append(("openapi", openapi["path"]))
    return refs


def without_remote(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the remote references an offline build cannot fetch (resources,
    components, and generator files given by URL)."""
    out = dict(data)
    for key in _DIR_FIELDS:
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
    refs = [r for key in _DIR_FIELDS for r in data.get(key) or [] if isinstance(r, str)]
    return refs + [ref for _key, ref in _file_refs(data)]


def check_file(view: SourceView, path: Path) -> tuple[str, str] | None:
    """(problem kind, reason) when kustomize-controller would not read ``path`` as a file of
    the source, else None."""
    if view.relative(path) is None:
        return (
            "outside-source",
            "is outside the source root: Flux refuses to read it",
        )
    try:
        info = path.stat()
    except OSError:
        if path.is_symlink():
            return "missing-file", "is a symlink to nothing"
        return "missing-file", "does not exist"
    if view.excluded(path):
        return "missing-file", "is left out of the source artifact by .sourceignore (Flux cannot read it)"
    if stat.S_ISDIR(info.st_mode):
        return None
    if not stat.S_ISREG(info.st_mode):
        return "file-refused", "is not a regular file"
    if info.st_size > yamlio.MAX_FILE_BYTES:
        return "file-refused", f"is {info.st_size} bytes, over the limit of {yamlio.MAX_FILE_BYTES} bytes"
    return None


#: Kinds kustomize never gives a name prefix or suffix.
_UNRENAMED = re.compile(r"^kind:\s*['\"]?(?:Namespace|CustomResourceDefinition|APIService)['\"]?\s*$", re.M)


def check_yaml(path: Path) -> tuple[tuple[str, str] | None, bool]:
    """(("file-refused", reason) when a manifest kustomize would load is over the YAML bounds
    (aliases that expand past the limit, too many documents): kustomize would expand it in
    memory. Only texts with many aliases are parsed here (a few cannot multiply a file much;
    the memory limit kustomize runs under bounds the rest), or None; whether the file holds
    a kind no nameSuffix renames)."""
    try:
        text = yamlio.read_text(path)
    except OSError as error:
        return ("file-refused", f"cannot be read ({error.strerror or error})"), False
    unrenamed = bool(_UNRENAMED.search(text))
    if yamlio.many_aliases(text) or text.count("---") > yamlio.MAX_DOCUMENTS:
        try:
            yamlio.load_all(text)
        except yamlio.LimitExceeded as error:
            return ("file-refused", str(error)), unrenamed
        except yamlio.YAMLError:
            return None, unrenamed  # kustomize reports it, and yaml_errors() explains it
    return None, unrenamed


def read_kdir(directory: Path, view: SourceView) -> KDir:
    """Parse ``directory``'s kustomization file (if any) and classify what it references."""
    kfile = kustomization_file(directory)
    kdir = KDir(path=directory, file=kfile)
    if kfile is None:
        return kdir
    problem = check_file(view, kfile)
    if problem is not None:
        kdir.error, kdir.error_kind = (None, f"{kfile.name} {problem[1]}"), problem[0]
        return kdir
    try:
        kdir.text = yamlio.read_text(kfile)
        data = yamlio.load(kdir.text) or {}
    except yamlio.YAMLError as error:
        line, _column, message = yamlio.error_position(error)
        kdir.error = (line, message)
        return kdir
    except OSError as error:
        kdir.error, kdir.error_kind = (None, f"cannot read {kfile.name} ({error})"), "file-refused"
        return kdir
    if not isinstance(data, dict):
        kdir.error = (None, "a kustomization must be a mapping")
        return kdir
    kdir.data = data
    kdir.renames = bool(data.get("namePrefix") or data.get("nameSuffix") or data.get("vars"))
    kdir.renames = kdir.renames or _generator_hashes(data)
    for key in _DIR_FIELDS:
        for ref in data.get(key) or []:
            if not isinstance(ref, str):
                continue
            if is_remote(ref):
                kdir.remote.append(ref)
                continue
            target = Path(os.path.normpath(directory / ref))
            problem = check_file(view, target)
            if problem is None and not target.is_dir():
                problem, unrenamed = check_yaml(target)
                kdir.unrenamed = kdir.unrenamed or unrenamed
            if problem is not None:
                kdir.refused.append(Refusal(key, ref, *problem))
            elif target.is_dir():
                kdir.children.append(target)
    for key, ref in _file_refs(data):
        if is_remote(ref):
            kdir.remote.append(ref)
            continue
        problem = check_file(view, Path(os.path.normpath(directory / ref)))
        if problem is not None:
            kdir.refused.append(Refusal(key, ref, *problem))
    return kdir


class NestingTooDeep(Exception):
    """A chain of kustomizations deeper than :data:`MAX_NESTING`, or a closure over
    :data:`MAX_CLOSURE` directories."""


class KDirCache:
    """Thread-safe memo of :func:`read_kdir`, and the closure of directories a path loads."""

    def __init__(self, view: SourceView) -> None:
        self.view = view
        self._dirs: dict[Path, KDir] = {}
        self._lock = threading.Lock()

    def get(self, directory: Path) -> KDir:
        directory = Path(os.path.normpath(directory))
        with self._lock:
            cached = self._dirs.get(directory)
        if cached is None:
            cached = read_kdir(directory, self.view)
            with self._lock:
                self._dirs[directory] = cached
        return cached

    def closure(self, start: Path) -> list[KDir]:
        """Every kustomization directory a build of ``start`` loads, ``start`` first
        (:class:`NestingTooDeep` past the bounds)."""
        seen: dict[Path, KDir] = {}
        stack = [(Path(os.path.normpath(start)), 0)]
        while stack:
            current, depth = stack.pop()
            if current in seen:
                continue
            if depth > MAX_NESTING:
                raise NestingTooDeep(f"kustomizations nest more than {MAX_NESTING} levels deep")
            if len(seen) >= MAX_CLOSURE:
                raise NestingTooDeep(f"more than {MAX_CLOSURE} kustomization folders in one build")
            kdir = self.get(current)
            seen[current] = kdir
            stack.extend((child, depth + 1) for child in reversed(kdir.children) if child not in seen)
        return list(seen.values())


@dataclass
class Generated:
    """The kustomization Flux generates for a path without one: its resources, the files
    that are not valid YAML, and those it refused to read."""

    resources: list[str] = field(default_factory=list)
    errors: list[tuple[Path, int | None, str]] = field(default_factory=list)
    refused: list[tuple[Path, str, str]] = field(default_factory=list)  # (file, kind, reason)


_GENERATED_LIMIT = 5000


def generated_resources(directory: Path, view: SourceView) -> Generated:
    """What Flux lists when a path has no kustomization file: every YAML file below it that
    the source artifact holds, and every subdirectory holding a kustomization (not
    descended into)."""
    out = Generated()
    count = 0
    for here, dirs, files in walk(directory):
        keep = []
        for name in dirs:
            sub = here / name
            if sub.is_symlink() or view.excluded(sub):
                continue  # not in the artifact (source-controller archives no symlinks)
            if kustomization_file(sub) is not None:
                out.resources.append(os.path.relpath(sub, directory))
            else:
                keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            path = here / name
            if path.is_symlink() or view.excluded(path):
                continue
            count += 1
            if count > _GENERATED_LIMIT:
                out.refused.append((directory, "file-refused", f"more than {_GENERATED_LIMIT} YAML files"))
                return out
            problem = check_file(view, path)
            if problem is not None:
                out.refused.append((path, *problem))
                continue
            try:
                yamlio.load_all(yamlio.read_text(path))
            except yamlio.YAMLError as error:
                line, _column, message = yamlio.error_position(error)
                out.errors.append((path, line, message))
                continue
            except OSError as error:
                out.refused.append((path, "file-refused", str(error)))
                continue
            out.resources.append(os.path.relpath(path, directory))
    return out


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
                yamlio.load_all(yamlio.read_text(path))
            except yamlio.YAMLError as error:
                line, _column, message = yamlio.error_position(error)
                errors.append((path, line, message))
            except OSError:
                continue
    return errors
