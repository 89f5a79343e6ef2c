"""Writing files into the repository: one or many, all or nothing, one writer at a time.

Every task that writes the repository's files (``configure``, ``init``, ``init --from``,
``sops.encrypt``, ``sops.rotate``, ``bootstrap.talos``) writes them through here.

- **Lock.** ``home-ops.lock`` in the repository's git directory (``.home-ops/lock`` where
  there is none) is held with ``flock`` for the whole run; the operating system releases it
  when the process ends, however it ends. A second writer stops with one line naming the
  task that holds it.
- **One place for temporaries.** ``.home-ops/`` at the repository root (git-ignored) holds
  the journal and the swap's temporary files; the operator's key directory, when it lies
  outside the repository, has its own ``.home-ops/`` for its files (a rename cannot cross
  file systems). Nothing is ever written beside a target, so nothing half-written can be
  committed, scanned or rendered; whatever a killed run left there is removed by the next.
- **Journal.** Before the first file changes, ``.home-ops/journal.json`` lists every target.
  The swap then runs in two phases:

  1. *prepare*: each new file is written into ``.home-ops/swap/new`` (and flushed to disk:
     each file's write-back starts as soon as it is written, and the waits for them come
     together), and each file to be replaced or removed gets a hard link in
     ``.home-ops/swap/old``. Nothing visible changes; any error here leaves the old tree.
  2. *commit*: the journal is marked ``committing`` (the commit point) and each new file is
     linked into place (a hard link renamed over the target), each removed file unlinked.
     Ctrl-C, SIGTERM and SIGHUP wait until the renames are done.

  The temporaries stay until the journal is gone, so both ways stay open: a run killed
  outright (SIGKILL, power loss) is finished by the next writer (``finish_interrupted``):
  forward when it had reached the commit point, back when it had not. Either way the tree
  ends old or new. While a journal exists, tasks that read the tree refuse to start
  (:func:`require_settled`).
- **Failing renames.** An OS error during the commit puts the old files back; when even that
  fails (a disk gone read-only), the error says exactly which files are new and what the
  next run will do, never "nothing was changed" over a mixed tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.lib.boundary import inside, name_problem, rendered_name_problem, shown
from tasks.lib.errors import Interrupted, UserError, signals_deferred

#: The git-ignored folder (at the repository root) that holds every temporary file.
SCRATCH = ".home-ops"
JOURNAL = "journal.json"
SWAP = "swap"
GIT_LOCK_NAME = "home-ops.lock"
LOCK_NAME = "lock"
#: What the earlier versions left: their journal and the suffixes of their temporaries.
LEGACY_JOURNAL = ".configure-journal.json"
LEGACY_DIRS = ("bootstrap", "kubernetes", "talos")
#: The finishing step every refusal points to (any writer finishes a swap; configure is the
#: one a user runs anyway).
FINISH = "run `inv configure` to finish it"

Say = Callable[[str], None]
TASK_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,40}(?: --[a-z-]+)?")
#: The temporary files of earlier versions, beside their targets: the swap's, the
#: random-named ones of the single-file writer and of ``init --from``.
LEGACY_TEMPORARY = re.compile(
    r"^\..+\.(?:configure-new|configure-old|[a-z0-9_]{8}\.(?:configure|tmp|import))$"
)


@dataclass(frozen=True)
class Change:
    """One file to write (``content``) or remove (``content`` None). ``mode`` None keeps the
    current file's permissions (0644 for a new file); ``exclusive`` only creates (the target
    must not exist: an operator's key is never replaced by ``inv init``)."""

    target: Path
    content: bytes | None
    mode: int | None = None
    exclusive: bool = False


def scratch(root: Path) -> Path:
    return root / SCRATCH


def journal_path(root: Path) -> Path:
    return scratch(root) / JOURNAL


# --------------------------------------------------------------------------- writing one file


def write_durably(path: Path, data: bytes, mode: int = 0o644, flushes: Flushes | None = None) -> None:
    """Create ``path`` (it must not exist; never through a symlink) holding ``data``, with
    ``mode`` from the first byte on, and flush it to disk (with ``flushes``: once
    :meth:`Flushes.wait` returns)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if flushes is not None:
            flushes.add(fd, path)
            fd = -1  # theirs to flush and close
        else:
            os.fsync(fd)
    finally:
        if fd >= 0:
            os.close(fd)


@functools.cache
def start_writeback() -> Callable[[int], object] | None:
    """Linux's ``sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)``: start writing a file's
    data to disk without waiting for it; None where the C library has no such call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    write = 2  # SYNC_FILE_RANGE_WRITE
    return lambda fd: function(fd, 0, 0, write)


class Flushes:
    """Files flushed to disk together: each one's write-back starts when it is handed over
    (where the system can), and :meth:`wait` then calls ``fsync`` on each. The disk works on
    every file at once instead of one after another; each file is still on disk before
    ``wait`` returns. At most :attr:`LIMIT` files are held open."""

    LIMIT = 64

    def __init__(self) -> None:
        self.open: list[tuple[int, Path]] = []

    def add(self, fd: int, path: Path) -> None:
        self.open.append((fd, path))
        if (start := start_writeback()) is not None:
            start(fd)  # a hint: the fsync in wait() is what makes it durable
        if len(self.open) >= self.LIMIT:
            self.wait()

    def wait(self) -> None:
        """Every file handed over is on disk (or the OSError of the first that failed)."""
        held, self.open = self.open, []
        try:
            for fd, path in held:
                with about(path):
                    os.fsync(fd)
        finally:
            for fd, _ in held:
                os.close(fd)

    def close(self) -> None:
        """Close what is still held, unflushed (the swap failed: these files are not used)."""
        held, self.open = self.open, []
        for fd, _ in held:
            os.close(fd)


def sync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def place(source: Path, target: Path) -> None:
    """Make ``target`` the file ``source`` is, atomically, keeping ``source`` (a hard link
    renamed over the target; a copy where the file system has no hard links). Doing it
    twice changes nothing, so a swap can be finished again after any crash."""
    link = source.with_name(source.name + ".link")
    link.unlink(missing_ok=True)
    try:
        os.link(source, link, follow_symlinks=False)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
            raise
        write_durably(link, source.read_bytes(), source.stat().st_mode & 0o7777)
    os.replace(link, target)


# --------------------------------------------------------------------------- lock


def git_dir(root: Path) -> Path | None:
    """The repository's git directory (a worktree's ``.git`` is a file naming it)."""
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = dot_git.read_text().strip()
            if text.startswith("gitdir:"):
                found = (root / text.removeprefix("gitdir:").strip()).resolve()
                if found.is_dir():
                    return found
    return None


def lock_path(root: Path) -> Path:
    """In the git directory, so the lock is never part of the tree; else in ``.home-ops/``."""
    found = git_dir(root)
    return found / GIT_LOCK_NAME if found else scratch(root) / LOCK_NAME


def lock_holder(path: Path) -> str:
    try:
        pid, _, task = path.read_text().partition(" ")
        return f"inv {task.strip() or 'configure'}, pid {int(pid)}"
    except (OSError, ValueError, UnicodeDecodeError):
        return "pid unknown"


@contextlib.contextmanager
def locked(root: Path, task: str, optional: bool = False) -> Iterator[None]:
    """Hold the repository's write lock for ``task``, or stop: another task has it.
    ``optional`` (for runs that write nothing) goes on without it in a read-only checkout."""
    path = lock_path(root)
    try:
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as error:
        if optional:
            yield
            return
        raise UserError(f"cannot take the write lock: {os_problem(root, path, error)}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another task is writing this repository ({lock_holder(path)}) — "
                "wait for it to finish, then run this again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {task}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------- journal


@dataclass
class Entry:
    """One target of a swap: ``target`` relative to the repository root (or absolute, in an
    operator directory outside it); ``new`` when it gets a new file, ``old`` when its current
    file was kept aside (it existed)."""

    target: str
    new: bool
    old: bool


@dataclass
class Journal:
    task: str
    entries: list[Entry]
    state: str = "preparing"  # then "committing"; "reverting" after a failed commit

    def dumps(self) -> str:
        entries = [{"target": e.target, "new": e.new, "old": e.old} for e in self.entries]
        return json.dumps({"version": 2, "task": self.task, "state": self.state, "entries": entries})

    @property
    def forward(self) -> bool:
        return self.state == "committing"


def os_problem(root: Path, path: Path, error: OSError) -> str:
    """One line: which path (the target a temporary stands for), which OS error."""
    where = str(path)
    with contextlib.suppress(ValueError):
        where = path.relative_to(root).as_posix()
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        reason += " (the disk is full)"
    return f"{where}: {reason}"


def save_journal(root: Path, journal: Journal) -> None:
    temporary = scratch(root) / f"{JOURNAL}.tmp"
    temporary.unlink(missing_ok=True)
    write_durably(temporary, journal.dumps().encode())
    os.replace(temporary, journal_path(root))
    sync_dir(scratch(root))


def drop_journal(root: Path) -> None:
    journal_path(root).unlink(missing_ok=True)
    sync_dir(scratch(root))
    with contextlib.suppress(OSError):
        (scratch(root) / f"{JOURNAL}.tmp").unlink(missing_ok=True)


def load_journal(root: Path, outside: Sequence[Path] = ()) -> Journal | None:
    """The journal a killed run left, checked entry by entry (it decides what is written
    and removed, and a repository could carry one): every target inside the repository, or
    directly in one of the ``outside`` folders (the operator's keys). Raises one line per
    problem."""
    path = journal_path(root)
    if not path.exists() and not path.is_symlink():
        return None
    label = f"{SCRATCH}/{JOURNAL}"
    hint = f"nothing was changed (if no home-ops task was interrupted here, delete {SCRATCH}/)"
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
            raise ValueError("not a small regular file")
        data = json.loads(path.read_text(encoding="utf-8"))
        journal = Journal(
            str(data["task"]),
            [Entry(str(e["target"]), bool(e["new"]), bool(e["old"])) for e in data["entries"]],
            str(data["state"]),
        )
        if data["version"] != 2 or journal.state not in ("preparing", "committing", "reverting"):
            raise ValueError("an unknown version or state")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{label}: unreadable ({error}) — {hint}") from None
    problems = [
        f"{label}: {shown(entry.target)}: {problem} — {hint}"
        for entry in journal.entries
        if (problem := target_problem(root, outside, entry.target)) is not None
    ]
    if problems:
        raise UserError(*problems)
    return journal


def target_problem(root: Path, outside: Sequence[Path], name: str) -> str | None:
    """Why a journal's target is not one a swap of ours could have had, or None."""
    path = Path(name)
    if path.is_absolute():
        if path.parent in outside and name_problem(path.name) is None:
            return None
        return "outside the repository and not in the operator's key folder"
    if (problem := name_problem(name)) is not None:
        return problem
    if {".git", SCRATCH} & set(path.parts):
        return "inside .git or the scratch folder"
    try:
        inside(root, path.parent)
    except UserError as error:
        return error.lines[0]
    return None


# --------------------------------------------------------------------------- where the temporaries go


@dataclass(frozen=True)
class Layout:
    """Where a swap's temporaries live: the scratch of the repository, or of the operator
    directory for its files when it lies outside the repository."""

    root: Path
    outside: tuple[Path, ...]  # folders outside the repository it may write into

    def base(self, target: Path) -> Path:
        if target.parent in self.outside:
            return scratch(target.parent) / SWAP
        return scratch(self.root) / SWAP

    def is_in_root(self, target: Path) -> bool:
        return target == self.root or self.root in target.parents

    def target(self, entry: Entry) -> Path:
        path = Path(entry.target)
        return path if path.is_absolute() else self.root / path

    def name(self, target: Path) -> str:
        return target.relative_to(self.root).as_posix() if self.is_in_root(target) else str(target)

    def new(self, index: int, target: Path) -> Path:
        return self.base(target) / "new" / f"{index:05d}"

    def old(self, index: int, target: Path) -> Path:
        return self.base(target) / "old" / f"{index:05d}"

    def clean(self) -> None:
        """Remove every temporary (and the scratch folders of the key folders outside, so
        nothing of ours stays in the operator's key store)."""
        for base in self.bases():
            shutil.rmtree(base, ignore_errors=True)
        for folder in self.outside:
            with contextlib.suppress(OSError):
                scratch(folder).rmdir()

    def bases(self) -> list[Path]:
        return [scratch(self.root) / SWAP, *(scratch(folder) / SWAP for folder in self.outside)]


def layout_for(root: Path, key_dirs: Sequence[Path]) -> Layout:
    """The folders of ``key_dirs`` (the operator's keys) that lie outside the repository."""
    real = [folder.resolve() for folder in key_dirs]
    return Layout(root, tuple(sorted({f for f in real if f != root and root not in f.parents})))


# --------------------------------------------------------------------------- recovery


def finish_interrupted(root: Path, say: Say, key_dirs: Sequence[Path] = ()) -> None:
    """Finish what a killed writer left (call it holding the lock, before looking at the
    tree): its swap forward when it had reached the commit point, else back; then remove
    every temporary file. Refuses, touching nothing, a journal naming a file no swap of ours
    could have written."""
    finish_legacy(root, say)
    layout = layout_for(root, key_dirs)
    journal = load_journal(root, layout.outside)
    if journal is not None:
        lost = [
            e.target
            for i, e in enumerate(journal.entries)
            if journal.forward and e.new and not layout.new(i, layout.target(e)).is_file()
        ]
        if lost:  # never half a swap: the new files must all be there before any is placed
            raise UserError(
                f"{SCRATCH}/{JOURNAL}: the new {shown(lost[0])} of an interrupted `inv {journal.task}` "
                f"is gone — nothing was changed (if no home-ops task was interrupted here, delete {SCRATCH}/)"
            )
        try:
            roll(layout, journal)
            settle_folders(layout, journal)
            drop_journal(root)
        except OSError as error:
            where = os_problem(root, Path(error.filename or journal_path(root)), error)
            raise UserError(
                f"could not finish the swap of an interrupted `inv {journal.task}`: {where}",
                f"nothing else was done; fix that, then {FINISH}",
            ) from None
        count = len(journal.entries)
        if journal.forward:
            say(f"finished the swap of an interrupted `inv {journal.task}` ({count} files): they are new")
        else:
            say(f"undid the unfinished swap of an interrupted `inv {journal.task}`: nothing changed")
    with contextlib.suppress(OSError):
        (scratch(root) / f"{JOURNAL}.tmp").unlink(missing_ok=True)
    layout.clean()


def roll(layout: Layout, journal: Journal) -> None:
    """Every target new (forward) or old (back). Each step can be repeated."""
    for index, entry in enumerate(journal.entries):
        target = layout.target(entry)
        if journal.forward:
            if entry.new:
                place(layout.new(index, target), target)
            else:
                target.unlink(missing_ok=True)
        elif entry.old:
            backup = layout.old(index, target)
            if backup.exists():  # else preparing never got to it: the target is untouched
                place(backup, target)
        elif entry.new:
            target.unlink(missing_ok=True)  # it did not exist before


def pending(root: Path) -> bool:
    return journal_path(root).exists() or (root / LEGACY_JOURNAL).exists()


def require_settled(root: Path) -> None:
    """Stop (one line) while an interrupted writer's swap is unfinished: the tree may be
    part old, part new."""
    if pending(root):
        task = "task"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            name = str(json.loads(journal_path(root).read_text())["task"])
            task = f"`inv {name}`" if TASK_NAME.fullmatch(name) else task
        raise UserError(f"an interrupted {task} left its swap unfinished ({SCRATCH}/{JOURNAL}) — {FINISH}")


def finish_legacy(root: Path, say: Say) -> None:
    """What configure's earlier versions left: temporaries beside their targets and
    ``.configure-journal.json``. Finished the way those versions did, names checked."""
    journal = root / LEGACY_JOURNAL
    if journal.is_file() and not journal.is_symlink():
        try:
            data = json.loads(journal.read_text())
            write, remove, state = (
                list(map(str, data["write"])),
                list(map(str, data["remove"])),
                data["state"],
            )
        except (OSError, ValueError, KeyError, TypeError):
            write, remove, state = [], [], "unreadable"
        bad = [name for name in (*write, *remove) if rendered_name_problem(name) is not None]
        if bad:
            raise UserError(
                *(
                    f"{LEGACY_JOURNAL}: {shown(name)}: not a file configure writes — nothing was changed "
                    f"(if no configure was interrupted here, delete {LEGACY_JOURNAL})"
                    for name in bad
                )
            )
        if state == "committing":
            for name in write:
                temporary = root / Path(name).parent / f".{Path(name).name}.configure-new"
                if temporary.is_file():
                    os.replace(temporary, root / name)
            for name in remove:
                (root / name).unlink(missing_ok=True)
            say(f"finished the swap of an interrupted configure ({len(write)} files): the tree is new")
        journal.unlink()
    candidates = list(root.glob(".*"))
    for top in LEGACY_DIRS:
        base = root / top
        if base.is_dir() and not base.is_symlink():
            candidates += base.rglob(".*")
    for path in candidates:
        if LEGACY_TEMPORARY.match(path.name) and path.is_file() and not path.is_symlink():
            path.unlink()


# --------------------------------------------------------------------------- the swap


@contextlib.contextmanager
def about(path: Path) -> Iterator[None]:
    """An OSError raised inside names ``path`` (the target, not our temporary)."""
    try:
        yield
    except OSError as error:
        error.filename = str(path)
        raise


def canonical(layout: Layout, change: Change) -> Change:
    """``change`` with its folder resolved, which must be inside the repository (or be the
    operator directory): the last guard before anything is written."""
    folder = change.target.parent.resolve()
    target = folder / change.target.name
    if not (layout.is_in_root(folder) or folder in layout.outside):
        raise UserError(f"{change.target}: outside the repository — not written")
    return Change(target, change.content, change.mode, change.exclusive)


def entries_for(layout: Layout, changes: Sequence[Change]) -> list[Entry]:
    entries = []
    for change in changes:
        exists = change.target.exists() or change.target.is_symlink()
        if change.exclusive and exists:
            raise UserError(f"{layout.name(change.target)}: exists — not replaced")
        entries.append(Entry(layout.name(change.target), change.content is not None, exists))
    return entries


def prepare(layout: Layout, changes: Sequence[Change], entries: Sequence[Entry]) -> None:
    """Phase 1: every new file into the scratch, every current one linked aside."""
    for base in layout.bases():
        shutil.rmtree(base, ignore_errors=True)
    flushes = Flushes()
    try:
        for index, (change, entry) in enumerate(zip(changes, entries, strict=True)):
            prepare_one(layout, index, change, entry, flushes)
        flushes.wait()
    except OSError as error:  # a flush names our temporary: name the target it stands for
        targets = {str(layout.new(i, c.target)): c.target for i, c in enumerate(changes)}
        if error.filename in targets:
            error.filename = str(targets[error.filename])
        raise
    finally:
        flushes.close()
    for base in layout.bases():
        for part in ("new", "old"):
            sync_dir(base / part)


def prepare_one(layout: Layout, index: int, change: Change, entry: Entry, flushes: Flushes) -> None:
    """One target: its new file into the scratch (flushed with the others), its current one
    linked aside."""
    target = change.target
    with about(target):
        if target.is_dir() and not target.is_symlink():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if change.content is not None:
            new = layout.new(index, target)
            new.parent.mkdir(parents=True, exist_ok=True)
            mode = change.mode
            if mode is None:
                mode = target.stat().st_mode & 0o7777 if entry.old and not target.is_symlink() else 0o644
            write_durably(new, change.content, mode, flushes)
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.stat(target.parent).st_dev != os.stat(new.parent).st_dev:
                raise OSError(errno.EXDEV, "on another file system than the repository")
        if entry.old:
            backup = layout.old(index, target)
            backup.parent.mkdir(parents=True, exist_ok=True)
            keep_aside(target, backup)


def keep_aside(target: Path, backup: Path) -> None:
    """A hard link to the current file (no copy, no space), so it can be put back."""
    try:
        os.link(target, backup, follow_symlinks=False)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
            raise
        if target.is_symlink():
            os.symlink(os.readlink(target), backup)
        else:
            write_durably(backup, target.read_bytes(), target.stat().st_mode & 0o7777)


def commit(layout: Layout, journal: Journal) -> None:
    """Phase 2, in the journal's order (a manifest comes last)."""
    for index, entry in enumerate(journal.entries):
        target = layout.target(entry)
        with about(target):
            if entry.new:
                place(layout.new(index, target), target)
            else:
                target.unlink(missing_ok=True)
    settle_folders(layout, journal)


def settle_folders(layout: Layout, journal: Journal) -> None:
    """Flush the renames to disk; remove the folders that removing files left empty."""
    for directory in {layout.target(e).parent for e in journal.entries}:
        sync_dir(directory)
    if not journal.forward:
        return
    for entry in journal.entries:
        parent = layout.target(entry).parent
        while not entry.new and parent != layout.root and layout.is_in_root(parent):
            try:
                parent.rmdir()  # only an empty one
            except OSError:
                break
            parent = parent.parent


def is_old(layout: Layout, index: int, entry: Entry) -> bool:
    """Whether the target of ``entry`` is as it was before the swap (its bytes equal the
    copy kept aside; absent, when it did not exist)."""
    target = layout.target(entry)
    try:
        if not entry.old:
            return not (target.exists() or target.is_symlink())
        backup = layout.old(index, target)
        if target.is_symlink() or backup.is_symlink():
            return target.is_symlink() and backup.is_symlink() and os.readlink(target) == os.readlink(backup)
        return target.read_bytes() == backup.read_bytes()
    except OSError:
        return False


def swap_in(
    root: Path, changes: Sequence[Change], task: str = "configure", key_dirs: Sequence[Path] = ()
) -> None:
    """Write and remove ``changes`` all or nothing (see the module docstring); call it
    holding the lock, after :func:`finish_interrupted`. An OS error ends in the old files and
    one line naming the path and the error (or, when not even the old files can be put back,
    lines naming every file that is new); Ctrl-C/SIGTERM/SIGHUP during the renames wait for
    them, and then say that the new files are in place."""
    layout = layout_for(root, key_dirs)
    changes = [canonical(layout, change) for change in changes]
    journal = Journal(task, entries_for(layout, changes))
    committed = False
    try:
        scratch(root).mkdir(exist_ok=True)
        save_journal(root, journal)
        prepare(layout, changes, journal.entries)
        with signals_deferred():
            save_journal(root, Journal(task, journal.entries, "committing"))
            journal.state = "committing"  # only once it is on disk: the commit point
            try:
                commit(layout, journal)
            except OSError as error:
                raise UserError(*failed_commit(layout, journal, error)) from None
            committed = True
            with contextlib.suppress(OSError):
                drop_journal(root)
    except Interrupted as interrupt:
        if committed:
            interrupt.message = "the swap had finished: the new files are in place"
        raise
    except OSError as error:
        path = Path(error.filename) if error.filename else journal_path(root)
        raise UserError(
            f"could not write the new files, so nothing was changed: {os_problem(root, path, error)}"
        ) from None
    finally:
        if journal.state == "preparing":  # undone before the commit point: nothing changed
            with contextlib.suppress(OSError):
                drop_journal(root)
        if not journal_path(root).exists():
            layout.clean()


def failed_commit(layout: Layout, journal: Journal, error: OSError) -> list[str]:
    """The renames failed part way: put the old files back (journal marked ``reverting``
    first, so a crash now still ends old). Returns the lines that say truthfully what the
    tree holds and what the next run will do."""
    path = Path(error.filename) if error.filename else journal_path(layout.root)
    cause = os_problem(layout.root, path, error)
    with contextlib.suppress(OSError):
        save_journal(layout.root, Journal(journal.task, journal.entries, "reverting"))
        journal.state = "reverting"
    with contextlib.suppress(OSError):
        roll(layout, Journal(journal.task, journal.entries, "reverting"))
    new = [e.target for i, e in enumerate(journal.entries) if not is_old(layout, i, e)]
    if not new:
        with contextlib.suppress(OSError):
            drop_journal(layout.root)
            journal.state = "preparing"
    lines = [f"could not write the new files{', so nothing was changed' if not new else ''}: {cause}"]
    if new:
        count = f"{len(new)} of {len(journal.entries)}"
        lines.append(f"could not put every old file back: {count} are new: {', '.join(new)}")
    if journal.state != "preparing":
        then = "finishes the swap (every file new)" if journal.forward else "puts the old files back"
        lines.append(f"the journal ({SCRATCH}/{JOURNAL}) is kept: the next `inv configure` {then}")
    return lines


# --------------------------------------------------------------------------- the simple way


def write_files(
    root: Path,
    changes: Sequence[Change],
    task: str,
    *,
    say: Say = print,
    key_dirs: Sequence[Path] = (),
) -> None:
    """Take the lock, finish what an interrupted writer left, then swap ``changes`` in."""
    with locked(root, task):
        finish_interrupted(root, say, key_dirs)
        swap_in(root, changes, task, key_dirs)
