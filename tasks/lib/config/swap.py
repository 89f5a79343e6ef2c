"""Putting a validated render into the work tree: all of it or none of it, one run at a time.

- **Lock.** ``home-ops-configure.lock`` in the repository's git directory (or a
  git-ignored ``.configure.lock`` where there is none) is held with ``flock`` for the whole
  run; the operating system releases it when the process ends, however it ends. A second
  run stops with "another configure is running (pid N)".
- **Journal.** Before the first file changes, ``.configure-journal.json`` (git-ignored)
  lists every file to write and remove. The swap then runs in two phases:

  1. *prepare*: each new file is written (and flushed to disk) as ``.NAME.configure-new``
     next to its target, and each file to be replaced or removed gets a hard link
     ``.NAME.configure-old``. Nothing visible changes; any error here (a full disk, a
     read-only directory, a directory where a file should be) removes what was prepared
     and leaves the old tree.
  2. *commit*: the journal is marked ``committing`` and the new files are renamed into
     place, the manifest last; Ctrl-C, SIGTERM and SIGHUP wait until the renames are done.

  A run killed outright (SIGKILL, power loss) leaves the journal behind, and the next
  ``configure`` finishes its work before anything else: a swap that had not reached the
  commit phase is undone, one that had is completed. Either way the tree ends old or new.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tasks.lib.errors import Interrupted, UserError, signals_deferred

LOCK_NAME = ".configure.lock"
GIT_LOCK_NAME = "home-ops-configure.lock"
JOURNAL_NAME = ".configure-journal.json"
NEW_SUFFIX = ".configure-new"
OLD_SUFFIX = ".configure-old"
#: The temporary names of older versions (``.NAME.XXXXXXXX.configure``), removed on sight.
LEGACY_SUFFIX = ".configure"
#: Where generated files live (besides the repository root itself).
GENERATED_DIRS = ("bootstrap", "kubernetes", "talos")

Say = Callable[[str], None]


def new_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{NEW_SUFFIX}")


def old_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{OLD_SUFFIX}")


def target_of(path: Path) -> Path:
    """The file a swap temporary stands for (``.NAME.configure-new`` -> ``NAME``)."""
    for suffix in (NEW_SUFFIX, OLD_SUFFIX):
        if path.name.startswith(".") and path.name.endswith(suffix):
            return path.with_name(path.name[1 : -len(suffix)])
    return path


def os_problem(root: Path, path: Path, error: OSError) -> str:
    """One line: which path, which operating-system error."""
    try:
        where = target_of(path).relative_to(root).as_posix()
    except ValueError:
        where = str(path)
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        reason += " (the disk is full)"
    return f"{where}: {reason}"


# --------------------------------------------------------------------------- lock


def lock_holder(path: Path) -> str:
    try:
        return path.read_text().split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return "unknown"


def lock_path(root: Path) -> Path:
    """Inside the git directory (a worktree's ``.git`` is a file naming it), so the lock is
    never part of the tree; else a git-ignored file at the root."""
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git / GIT_LOCK_NAME
    if dot_git.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = dot_git.read_text().strip()
            if text.startswith("gitdir:"):
                git_dir = (root / text.removeprefix("gitdir:").strip()).resolve()
                if git_dir.is_dir():
                    return git_dir / GIT_LOCK_NAME
    return root / LOCK_NAME


@contextlib.contextmanager
def configure_lock(root: Path, optional: bool = False) -> Iterator[None]:
    """Hold the repository's configure lock, or stop: another run has it. ``optional``
    (for runs that write nothing) goes on without it in a read-only checkout."""
    path = lock_path(root)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if optional:
            yield
            return
        raise UserError(f"cannot take the configure lock: {os_problem(root, path, error)}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another configure is running (pid {lock_holder(path)}) in this repository — "
                "wait for it to finish, then run it again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------- journal


@dataclass
class Journal:
    write: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    state: str = "preparing"  # then "committing"

    def dumps(self) -> str:
        return json.dumps({"version": 1, "state": self.state, "write": self.write, "remove": self.remove})

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        try:
            data = json.loads(path.read_text())
            return cls(list(map(str, data["write"])), list(map(str, data["remove"])), str(data["state"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return cls(state="unreadable")


def write_durably(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` and flush it to disk (so a rename of it survives power loss)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def save_journal(root: Path, journal: Journal) -> None:
    temporary = root / f"{JOURNAL_NAME}.tmp"
    write_durably(temporary, journal.dumps().encode())
    os.replace(temporary, root / JOURNAL_NAME)
    sync_dir(root)


def sync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def drop_journal(root: Path) -> None:
    """Remove the journal. Failing to is harmless: the next run finds it and finishes the
    swap again, which changes nothing."""
    for name in (JOURNAL_NAME, f"{JOURNAL_NAME}.tmp"):
        with contextlib.suppress(OSError):
            (root / name).unlink(missing_ok=True)


# --------------------------------------------------------------------------- recovery


def stray_temporaries(root: Path) -> list[Path]:
    """Temporary files of a swap that no journal accounts for (any version's names)."""
    found = []
    for top in GENERATED_DIRS:
        base = root / top
        if base.is_dir():
            found += [
                p
                for p in base.rglob(".*")
                if p.is_file() and p.name.endswith((NEW_SUFFIX, OLD_SUFFIX, LEGACY_SUFFIX))
            ]
    found += [p for p in root.glob(".*") if p.is_file() and p.name.endswith((NEW_SUFFIX, OLD_SUFFIX))]
    return sorted(found)


def recover(root: Path, say: Say) -> None:
    """Finish what a killed run left: roll its swap forward (commit phase reached) or back
    (not reached), then remove every leftover temporary file."""
    journal = Journal.load(root / JOURNAL_NAME)
    if journal is not None and journal.state == "committing":
        for name in journal.write:
            target = root / name
            if new_name(target).is_file():
                os.replace(new_name(target), target)
        for name in journal.remove:
            (root / name).unlink(missing_ok=True)
        prune_empty_dirs(root, journal.remove)
        say(f"finished the swap of an interrupted configure ({len(journal.write)} files): the tree is new")
    elif journal is not None:
        say("undid the unfinished swap of an interrupted configure: the tree is as it was before it")
    clean = journal is None or cleanup(root, [*journal.write, *journal.remove])
    for path in stray_temporaries(root):
        path.unlink(missing_ok=True)
    if clean:
        drop_journal(root)


def pending(root: Path) -> bool:
    return (root / JOURNAL_NAME).exists()


# --------------------------------------------------------------------------- swap


@contextlib.contextmanager
def about(path: Path) -> Iterator[None]:
    """An OSError raised inside names ``path`` when it names nothing itself."""
    try:
        yield
    except OSError as error:
        if not error.filename:
            error.filename = str(path)
        raise


def prepare(root: Path, files: dict[str, bytes], write: Sequence[str], remove: Sequence[str]) -> None:
    """Phase 1: every new file beside its target, every old one linked aside."""
    for name in write:
        target = root / name
        with about(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
            write_durably(new_name(target), files[name])
            if target.exists() or target.is_symlink():
                keep_aside(target)
    for name in remove:
        with about(root / name):
            keep_aside(root / name)


def keep_aside(target: Path) -> None:
    """A hard link to the current file (no copy, no space), so it can be put back."""
    backup = old_name(target)
    backup.unlink(missing_ok=True)
    try:
        os.link(target, backup, follow_symlinks=False)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
            raise
        backup.write_bytes(target.read_bytes())  # a filesystem without hard links


def commit(root: Path, write: Sequence[str], remove: Sequence[str]) -> None:
    """Phase 2: rename into place (``write`` is ordered: the manifest comes last), remove;
    on an error put back what was already changed."""
    done_write: list[str] = []
    done_remove: list[str] = []
    try:
        for name in write:
            target = root / name
            with about(target):
                os.replace(new_name(target), target)
            done_write.append(name)
        for name in remove:
            with about(root / name):
                (root / name).unlink(missing_ok=True)
            done_remove.append(name)
    except OSError:
        for name in [*done_write, *done_remove]:
            target = root / name
            backup = old_name(target)
            with contextlib.suppress(OSError):
                if backup.exists():
                    os.replace(backup, target)
                else:
                    target.unlink(missing_ok=True)
        raise


def cleanup(root: Path, names: Sequence[str]) -> bool:
    """Remove the swap's temporaries; False when one could not be removed (then the journal
    stays, so the next run removes it)."""
    clean = True
    for name in names:
        for path in (new_name(root / name), old_name(root / name)):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                clean = False
    return clean


def swap_in(root: Path, files: dict[str, bytes], write: Sequence[str], remove: Sequence[str]) -> None:
    """Write ``write`` (from ``files``) and delete ``remove`` under ``root``, all or nothing
    (see the module docstring). An OS error ends in the old tree and one line naming the
    path and the error; Ctrl-C/SIGTERM/SIGHUP during the renames and the cleanup after them
    wait for both, and then say that the new tree is in place."""
    journal = Journal(list(write), list(remove))
    everything = [*write, *remove]
    committed = False
    try:
        save_journal(root, journal)
        prepare(root, files, write, remove)
        with signals_deferred():
            save_journal(root, Journal(journal.write, journal.remove, "committing"))
            journal.state = "committing"  # only once it is on disk: the commit point
            try:
                commit(root, write, remove)
            except OSError:
                journal.state = "preparing"  # everything was put back: the tree is old
                save_journal(root, journal)
                raise
            committed = True
            if cleanup(root, everything):  # else the next run removes what is left
                drop_journal(root)
            prune_empty_dirs(root, remove)
    except Interrupted as interrupt:
        if committed:
            interrupt.message = "the swap had finished: the new tree is in place"
        raise
    except OSError as error:
        path = Path(error.filename) if error.filename else root / JOURNAL_NAME
        raise UserError(
            f"could not write the new tree, so nothing was changed: {os_problem(root, path, error)}"
        ) from None
    finally:
        # Undone (an error or a signal before the commit point): the temporaries and the
        # journal go. A commit cut short by something worse than an OSError keeps the
        # journal, for the next run to finish.
        if not committed and journal.state != "committing" and cleanup(root, everything):
            drop_journal(root)


def prune_empty_dirs(root: Path, removed: Sequence[str]) -> None:
    for name in removed:
        parent = (root / name).parent
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
