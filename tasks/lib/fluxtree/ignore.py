"""What a Flux source artifact leaves out: ``.sourceignore`` files, ``spec.ignore`` and the defaults.

source-controller archives a Git repository without the paths its ignore rules match, so
kustomize-controller never sees them: an ignored folder is not built, a reference to an
ignored file fails. The rules, as source-controller applies them (``fluxcd/pkg/sourceignore``):

- always excluded: ``.git/``, ``.gitignore``, ``.gitmodules``, ``.gitattributes``;
- when no ``.sourceignore`` and no ``spec.ignore`` exist, also images and archives (``*.jpg``,
  ``*.zip``, ...), CI folders (``.github/``, ...) and ``**/.sops.yaml`` and friends;
- ``.sourceignore`` files anywhere in the tree (their patterns apply below their folder),
  then the GitRepository's ``spec.ignore``;
- every path is matched on its own, the last matching pattern deciding (``!`` re-includes).

The matcher is a port of Flux's gitignore dialect (go-git's), which differs from git's own in
small ways (a file under an excluded folder can be re-included), so it is not a general
gitignore library.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .walk import walk
from .yamlio import read_text

IGNORE_FILE = ".sourceignore"
EXCLUDE_VCS = (".git/", ".gitignore", ".gitmodules", ".gitattributes")
EXCLUDE_DEFAULT = (
    *("*.jpg", "*.jpeg", "*.gif", "*.png", "*.wmv", "*.flv", "*.tar.gz", "*.zip"),
    *(".github/", ".circleci/", ".travis.yml", ".gitlab-ci.yml", "appveyor.yml", ".drone.yml"),
    *("cloudbuild.yaml", "codeship-services.yml", "codeship-steps.yml"),
    *("**/.goreleaser.yml", "**/.sops.yaml", "**/.flux.yaml"),
)
#: Folders never descended into when looking for ``.sourceignore`` files.
_SKIP = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__"})
_MAX_IGNORE_FILES = 200


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str] | None:
    """Go's ``filepath.Match`` for one path element as a regular expression (None when the
    pattern is malformed: Go reports an error and the pattern matches nothing)."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\":
            i += 1
            if i >= len(pattern):
                return None
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("^", "]") else i + 1)
            if end < 0:
                return None
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            out.append("[" + ("^" if negate else "") + _class_body(body[1:] if negate else body) + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    try:
        return re.compile("".join(out) + r"\Z", re.DOTALL)
    except re.error:
        return None


def _class_body(body: str) -> str:
    """A Go character class body (ranges, ``\\x`` escapes) as a Python one, every other
    character literal (Python gives ``[``, ``&&``, ``~~``, ``||`` meanings of its own)."""
    out, i = [], 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            i += 1
            out.append(re.escape(body[i]))
        elif char == "-":
            out.append("-")
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


_GLOB_CHARS = frozenset("*?[\\")


@lru_cache(maxsize=4096)
def _matcher(pattern: str) -> Callable[[str], bool]:
    """A fast test for one element pattern: equality, a ``*suffix``, or the glob."""
    if not _GLOB_CHARS & set(pattern):
        return pattern.__eq__
    if pattern.startswith("*") and not _GLOB_CHARS & set(pattern[1:]):
        suffix = pattern[1:]
        return lambda name: name.endswith(suffix) and "/" not in name
    compiled = _glob(pattern)
    if compiled is None:
        return lambda name: False
    return lambda name: compiled.match(name) is not None


def _match(pattern: str, name: str) -> bool:
    return _matcher(pattern)(name)


@dataclass(frozen=True)
class Pattern:
    """One ignore line, relative to the folder (``domain``) its file sits in."""

    domain: tuple[str, ...]
    parts: tuple[str, ...]
    inclusion: bool
    dir_only: bool
    is_glob: bool

    @classmethod
    def parse(cls, line: str, domain: tuple[str, ...] = ()) -> Pattern:
        inclusion = line.startswith("!")
        text = line[1:] if inclusion else line
        if not text.endswith("\\ "):
            text = text.rstrip(" ")
        dir_only = text.endswith("/")
        text = text[:-1] if dir_only else text
        return cls(domain, tuple(text.split("/")), inclusion, dir_only, "/" in text)

    def match(self, path: tuple[str, ...], is_dir: bool) -> bool | None:
        """True: excluded, False: re-included, None: the pattern says nothing."""
        if len(path) <= len(self.domain) or path[: len(self.domain)] != self.domain:
            return None
        rest = path[len(self.domain) :]
        found = self._glob_match(rest, is_dir) if self.is_glob else self._name_match(rest, is_dir)
        return (not self.inclusion) if found else None

    def _name_match(self, path: tuple[str, ...], is_dir: bool) -> bool:
        for index, name in enumerate(path):
            if not _match(self.parts[0], name):
                continue
            return not (self.dir_only and not is_dir and index == len(path) - 1)
        return False

    def _glob_match(self, path: tuple[str, ...], is_dir: bool) -> bool:
        matched, traverse = False, False
        rest = list(path)
        for index, part in enumerate(self.parts):
            if part == "":
                traverse = False
                continue
            if part == "**":
                if index == len(self.parts) - 1:
                    break
                traverse = True
                continue
            if "**" in part or not rest:
                return False
            if traverse:
                traverse = False
                while rest:
                    name = rest.pop(0)
                    if _match(part, name):
                        matched = True
                        break
                    if not rest:
                        matched = False
            else:
                if not _match(part, rest[0]):
                    return False
                matched = True
                rest.pop(0)
        return not (matched and self.dir_only and not is_dir and not rest) and matched


def _read_patterns(text: str, domain: tuple[str, ...]) -> list[Pattern]:
    return [
        Pattern.parse(line, domain) for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]


class SourceIgnore:
    """The ignore rules of one Git source checked out at ``root``."""

    def __init__(self, root: Path, spec_ignore: str | None = None) -> None:
        self.root = root
        user = self._load(root)
        if spec_ignore is not None:
            user += _read_patterns(spec_ignore, ())
        vcs = [Pattern.parse(p) for p in EXCLUDE_VCS]
        defaults = [] if user else [Pattern.parse(p) for p in EXCLUDE_DEFAULT]
        self.patterns = [*vcs, *defaults, *user]
        self.custom = bool(user)
        self._verdicts: dict[tuple[str, bool], bool] = {}

    @staticmethod
    def _load(root: Path) -> list[Pattern]:
        """Every ``.sourceignore`` below ``root``, parents before children, siblings by name
        (the order source-controller loads them in)."""
        patterns: list[Pattern] = []
        seen = 0
        for here, dirs, files in walk(root):
            dirs[:] = [d for d in dirs if d not in _SKIP]
            if IGNORE_FILE in files and seen < _MAX_IGNORE_FILES:
                seen += 1
                domain = here.relative_to(root).parts
                try:
                    patterns += _read_patterns(read_text(here / IGNORE_FILE, 1 << 20), domain)
                except OSError:
                    continue
        return patterns

    def ignored(self, relative: str | Path, is_dir: bool = False) -> bool:
        """Whether the artifact leaves ``relative`` (a path below the root) out."""
        key = (str(relative), is_dir)
        found = self._verdicts.get(key)
        if found is None:
            found = self._verdicts[key] = self._ignored(
                tuple(p for p in Path(relative).parts if p not in ("", ".")), is_dir
            )
        return found

    def _ignored(self, parts: tuple[str, ...], is_dir: bool) -> bool:
        if not parts:
            return False
        for pattern in reversed(self.patterns):
            verdict = pattern.match(parts, is_dir)
            if verdict is not None:
                return verdict
        return False

    def ignored_path(self, path: Path) -> bool:
        """:meth:`ignored` for an absolute path; paths outside the root are not this source's."""
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return False
        return self.ignored(relative, path.is_dir())


__all__ = ["IGNORE_FILE", "Pattern", "SourceIgnore"]
