"""The repository's boundary: what the tasks read, write or delete stays inside it.

A cloned repository is input like any other, and a hostile one can carry a symlink where a
file should be (``cluster.yaml`` -> ``/etc/shadow``), a rendered folder that leads elsewhere
(``kubernetes`` -> ``/home/you``), or a committed record naming ``../../victim``. So:

- a path the tasks derive from the repository's content is resolved (symlinks followed) and
  must land inside the repository; one that does not is refused with one line naming it and
  where it leads, and nothing is read from or written through it;
- a name the repository records (``.configure-manifest.json``, the swap journal) must be
  relative, normalised, inside and under the folders ``configure`` renders, checked when
  it is read, before anything is touched;
- a value typed by the user never reaches a command where it could be read as an option
  (git refs are checked and passed after ``--end-of-options``, paths given as ``./-x``).

The operator's key files (``HOME_OPS_OPERATOR_DIR``) and the paths named on the command
line for input or output (``--from``, ``--output-file``) are the operator's own choice and
are not confined to the repository.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from tasks.lib.errors import UserError
from tasks.lib.tools.runner import Command, run_one

#: The folders and files ``configure`` renders (the only names its records may hold).
RENDERED_DIRS = ("bootstrap", "kubernetes", "talos")
RENDERED_FILES = (".sops.yaml", ".configure-manifest.json")


class OutsideRepository(UserError):
    """A path leads outside the repository (or nowhere: a symlink loop)."""


def resolved(path: Path) -> Path | None:
    """``path`` with every symlink followed; None for a symlink loop (Python 3.11 raises
    RuntimeError for one, later versions OSError)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return None


def is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class Walk:
    """Checks paths against one root without resolving each in full: every part of a path
    below the root is looked at once (``lstat``), and only a symlink is followed, so a
    hundred files in a few folders cost a few hundred ``lstat`` calls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = resolved(root) or root
        self.seen: dict[str, str | None] = {}  # a part of a path -> why it leads out, or None

    def problem(self, path: Path | str, label: str | None = None) -> str | None:
        """Why ``path`` is not inside the root: one line naming the first part of it that
        leads out (so a linked folder is one line, not one per file in it), or None. A
        missing file is fine: only what exists can lead elsewhere."""
        text, base = str(path), str(self.root)
        if text.startswith(base + os.sep):
            parts: Sequence[str] = [part for part in text[len(base) + 1 :].split(os.sep) if part]
        else:
            parts = [] if text == base else [".."]
        if ".." in parts:  # written to lead out: only the resolved path can tell
            target = resolved(Path(path))
            if target is not None and is_within(target, self.real_root):
                return None
            shown = label or display(self.root, Path(path))
            return f"{shown}: {target or 'a symlink loop'} is outside the repository — refused"
        step = str(self.root)
        for part in parts:
            step = os.path.join(step, part)
            if step not in self.seen:
                self.seen[step] = self.part_problem(step)
            problem = self.seen[step]
            if problem == MISSING:
                return None
            if problem is not None:
                return problem
        return None

    def part_problem(self, step: str) -> str | None:
        try:
            info = os.lstat(step)
        except (FileNotFoundError, NotADirectoryError):
            return MISSING
        except OSError as error:
            return f"{display(self.root, Path(step))}: cannot look at it: {error.strerror or error}"
        if not stat.S_ISLNK(info.st_mode):
            return None
        name = display(self.root, Path(step))
        leads_to = resolved(Path(step))
        if leads_to is None:
            return f"{name}: a symlink loop — replace it with the file or folder itself"
        if not is_within(leads_to, self.real_root):
            return f"{name}: a symlink to {leads_to}, outside the repository — refused (replace the link)"
        return None


#: What :meth:`Walk.part_problem` says of a part that does not exist.
MISSING = "\0missing"


def where_it_leads(root: Path, path: Path, label: str) -> str | None:
    """Why ``path`` is not inside ``root`` (see :meth:`Walk.problem`), or None."""
    return Walk(root).problem(path, label)


def inside(root: Path, path: Path, label: str | None = None) -> Path:
    """``path`` (absolute, or relative to ``root``), checked to resolve inside ``root``;
    raises :class:`OutsideRepository` with one line otherwise."""
    full = path if path.is_absolute() else root / path
    problem = where_it_leads(root, full, label or display(root, full))
    if problem is not None:
        raise OutsideRepository(problem)
    return full


def outside_problems(root: Path, paths: Iterable[Path | str]) -> list[str]:
    """One line for each of ``paths`` that leads outside ``root`` (each once)."""
    walk = Walk(root)
    lines: dict[str, None] = {}
    for path in paths:
        problem = walk.problem(path)
        if problem is not None:
            lines[problem] = None
    return list(lines)


def links_out(root: Path, folder: Path) -> list[str]:
    """One line for each symlink under ``folder`` (the folder itself included, symlinked
    folders not entered) that leads outside ``root``. Only links are looked at closely:
    a tree of plain files and folders costs one listing per folder."""
    walk = Walk(root)
    lines = [problem] if (problem := walk.problem(folder, display(root, folder))) is not None else []
    if problem is not None or not folder.is_dir():
        return lines
    pending = [str(folder)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    path = Path(entry.path)
                    if (problem := walk.problem(path)) is not None:
                        lines.append(problem)
                elif entry.is_dir():
                    pending.append(entry.path)
    return sorted(lines)


def display(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` when it is written under it (symlinks not followed)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- recorded names


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a normalised relative path inside the repository, or None."""
    if not isinstance(name, str) or not name:
        return "not a path"
    if "\0" in name or "\\" in name or any(ord(char) < 0x20 for char in name):
        return "holds a control character or a backslash"
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("~"):
        return "an absolute path"
    if ".." in pure.parts:
        return "leads out of its folder (..)"
    if pure.as_posix() != name or "." in pure.parts or name.endswith("/"):
        return "not a normalised path"
    return None


def rendered_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a file ``configure`` renders, or None."""
    problem = name_problem(name)
    if problem is not None:
        return problem
    pure = PurePosixPath(str(name))
    if pure.as_posix() in RENDERED_FILES or (len(pure.parts) > 1 and pure.parts[0] in RENDERED_DIRS):
        return None
    return f"not under {', '.join(f'{d}/' for d in RENDERED_DIRS)} or one of {', '.join(RENDERED_FILES)}"


def shown(name: object, limit: int = 120) -> str:
    """A recorded name for a message: quoted, control characters escaped, cut short."""
    text = repr(name) if isinstance(name, str) else type(name).__name__
    return text if len(text) <= limit else text[:limit] + "…"


# --------------------------------------------------------------------------- command arguments


def not_an_option(value: str, label: str) -> str:
    """``value`` unchanged, or one line refusing it: it would be read as an option."""
    if value.startswith("-"):
        raise UserError(f"{label} {shown(value)}: starts with '-' — give a name, not an option")
    return value


def path_argument(name: str) -> str:
    """A relative path as a command argument that cannot be read as an option."""
    return f".{os.sep}{name}" if name.startswith("-") else name


def git_commit(root: Path, ref: str, label: str = "--base") -> str:
    """The commit a git ref names (a branch, tag, ``origin/main``, a SHA), as a full SHA that
    later git commands take as it is; or one line: the ref starts with ``-`` (git would read
    it as an option) or names no commit. Asked with ``--end-of-options``, so no value is
    ever an option to git."""
    not_an_option(ref, label)
    if not ref or any(ord(char) < 0x20 for char in ref):
        raise UserError(f"{label} {shown(ref)}: not a git ref — give a branch, tag or commit")
    argv = ("git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    outcome = run_one(Command(argv, cwd=root, deadline=60))
    sha = outcome.stdout.strip()
    if not outcome.ok or len(sha) not in (40, 64) or not all(c in "0123456789abcdef" for c in sha):
        raise UserError(
            f"{label} {shown(ref)}: no such commit here — give a branch, tag or commit "
            "(a remote branch needs its history fetched: actions/checkout with fetch-depth: 0)"
        )
    return sha
