"""Writing files safely: all or nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_atomically(path: Path, content: str | bytes) -> None:
    """Replace ``path`` with ``content`` in one step: a temporary file in the same directory,
    flushed to disk, then renamed over it, keeping the old file's permissions (0644 for a new
    file). On any failure or Ctrl-C the temporary file is removed and the old file stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    data = content.encode() if isinstance(content, str) else content
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).chmod(mode)
        Path(temporary).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()
        raise


#: Inputs larger than this are refused: every file a task reads is small text.
MAX_TEXT_BYTES = 4 * 1024 * 1024


def read_text(path: Path, label: str | None = None, hint: str = "") -> str:
    """A small UTF-8 text file, or one :class:`UserError` line saying what is wrong with it
    (missing, a directory, not a regular file, unreadable, too big, not UTF-8)."""
    import stat

    from tasks.lib.errors import UserError

    name = label or str(path)
    suffix = f" — {hint}" if hint else ""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"{name}: not found{suffix}") from None
    except OSError as error:
        raise UserError(f"{name}: cannot read it: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{name}: is a directory, not a file{suffix}")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{name}: not a regular file{suffix}")
    if info.st_size > MAX_TEXT_BYTES:
        raise UserError(f"{name}: too big ({info.st_size} bytes) for a text file{suffix}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"{name}: cannot read it: {error.strerror or error}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UserError(f"{name}:{line}: not UTF-8 text (byte {error.start}){suffix}") from None


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
    from tasks.lib.errors import UserError

    if path.is_dir():
        raise UserError(f"{path}: is a directory — name a file")
    if not path.parent.is_dir():
        raise UserError(f"{path}: the folder {path.parent} does not exist — create it first")


def write_output(path: Path, text: str) -> None:
    """Write a file the user asked for (``--output-file``), or stop with one line saying why
    it cannot be written (missing folder, a directory in the way, no permission, ...)."""
    from tasks.lib.errors import UserError

    try:
        path.write_text(text, encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: the folder {path.parent} does not exist — create it first") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory — name a file") from None
    except OSError as error:
        raise UserError(f"{path}: cannot write it: {error.strerror or error}") from None
