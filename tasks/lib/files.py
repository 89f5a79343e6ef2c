"""Reading files safely (bounded, one line per problem) and scratch directories.

Writing the repository's files is :mod:`tasks.lib.swap`'s job (atomic, durable, all or
nothing); :func:`write_output` writes a file the user named on the command line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tasks.lib.errors import UserError

#: Inputs larger than this are refused: every file a task reads is small text.
MAX_TEXT_BYTES = 4 * 1024 * 1024
#: Key files, tokens and credentials: far smaller.
MAX_KEY_BYTES = 64 * 1024


def read_bytes(
    path: Path, label: str | None = None, hint: str = "", limit: int = MAX_TEXT_BYTES, missing: str = ""
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or one :class:`UserError`
    line saying what is wrong with it (missing, a directory, a pipe or device, unreadable,
    too big), ending with ``hint`` (``missing``, when given, for a file that is not there).
    Opened without blocking and checked after opening, so a FIFO cannot hang the task and
    a link to /dev/zero cannot fill its memory."""
    name = label or str(path)
    suffix = f" — {hint}" if hint else ""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UserError(f"{name} not found{f' — {missing}' if missing else suffix}") from None
    except IsADirectoryError:
        raise UserError(f"{name}: is a directory, not a file{suffix}") from None
    except (OSError, RuntimeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise UserError(f"{name}: cannot read it: {reason}{suffix}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UserError(f"{name}: is a directory, not a file{suffix}")
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{name}: not a regular file (a pipe, socket or device){suffix}")
        chunks: list[bytes] = []
        size = 0
        while size <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise UserError(f"{name}: cannot read it: {error.strerror or error}{suffix}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise UserError(f"{name}: too big (more than {limit // 1024} KiB) for what it should hold{suffix}")
    return b"".join(chunks)


def read_text(
    path: Path, label: str | None = None, hint: str = "", limit: int = MAX_TEXT_BYTES, missing: str = ""
) -> str:
    """A small UTF-8 text file (see :func:`read_bytes`), or one :class:`UserError` line;
    text that is not UTF-8 names the line of the first bad byte."""
    data = read_bytes(path, label, hint, limit, missing)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        suffix = f" — {hint}" if hint else ""
        raise UserError(f"{label or path}:{line}: not UTF-8 text (byte {error.start}){suffix}") from None


def memory_dir() -> str | None:
    """A memory-backed temp directory when the system has one, else None (the default)."""
    shm = Path("/dev/shm")  # noqa: S108 - only ever a private mkdtemp inside it, mode 0700
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def remove_stale_scratch(parent: Path, prefix: str) -> None:
    """Scratch directories ``PREFIX<pid>-*`` whose process is gone (killed outright)."""
    for path in parent.glob(f"{prefix}*"):
        pid = path.name.removeprefix(prefix).split("-", 1)[0]
        if not pid.isdigit() or not path.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


@contextlib.contextmanager
def private_scratch(prefix: str, parent: str | None = None) -> Iterator[Path]:
    """A private (0700) directory ``PREFIX<pid>-XXXX`` under ``parent`` (the system temp
    directory by default), removed when the block ends however it ends; the ones that
    killed processes left behind are removed first."""
    base = Path(parent or tempfile.gettempdir())
    with contextlib.suppress(OSError):
        remove_stale_scratch(base, prefix)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=base))
    try:
        path.chmod(0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def check_output_path(path: Path) -> None:
    """Stop with one line when ``path`` could not be written (missing folder, a directory)."""
    if path.is_dir():
        raise UserError(f"{path}: is a directory — name a file")
    if not path.parent.is_dir():
        raise UserError(f"{path}: the folder {path.parent} does not exist — create it first")


def write_output(path: Path, text: str) -> None:
    """Write a file the user asked for (``--output-file``), or stop with one line saying why
    it cannot be written (missing folder, a directory in the way, no permission, ...)."""
    try:
        path.write_text(text, encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: the folder {path.parent} does not exist — create it first") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory — name a file") from None
    except OSError as error:
        raise UserError(f"{path}: cannot write it: {error.strerror or error}") from None
