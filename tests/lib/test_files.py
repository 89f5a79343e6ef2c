"""tasks/lib/files.py: the one bounded reader (one line per problem, never a hang or a
memory blow-up) and the private scratch directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.lib import files
from tasks.lib.errors import UserError


def problem(path: Path, **kwargs: object) -> str:
    with pytest.raises(UserError) as error:
        files.read_text(path, "x.yaml", **kwargs)  # type: ignore[arg-type]
    (line,) = error.value.lines
    return line


def test_reads_small_text(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("héllo\n")
    assert files.read_text(tmp_path / "a") == "héllo\n"
    assert files.read_bytes(tmp_path / "a", limit=7) == "héllo\n".encode()


def test_missing_a_directory_and_a_hint(tmp_path: Path) -> None:
    assert problem(tmp_path / "nope", hint="run `inv init`") == "x.yaml not found — run `inv init`"
    assert problem(tmp_path) == "x.yaml: is a directory, not a file"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes to it: a blocking open would wait forever
    assert problem(fifo) == "x.yaml: not a regular file (a pipe, socket or device)"


def test_a_link_to_an_endless_device_does_not_fill_memory(tmp_path: Path) -> None:
    (tmp_path / "zero").symlink_to("/dev/zero")
    assert problem(tmp_path / "zero") == "x.yaml: not a regular file (a pipe, socket or device)"


def test_too_big_is_one_line_and_reads_no_more_than_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with big.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)  # sparse: 200 MB of NULs, like an imported "token"
    assert (
        problem(big, limit=files.MAX_KEY_BYTES)
        == "x.yaml: too big (more than 64 KiB) for what it should hold"
    )


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"a: 1\nb: \xff\n")
    assert problem(tmp_path / "bad") == "x.yaml:2: not UTF-8 text (byte 8)"


def test_a_symlink_loop_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to("loop")
    assert problem(tmp_path / "loop").startswith("x.yaml: cannot read it: ")
