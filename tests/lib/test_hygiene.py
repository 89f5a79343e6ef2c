"""Whitespace hygiene: what is reported is exactly what is fixed."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.lib import hygiene


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("ok\n", []),
        ("", []),
        ("a \nb\t\n", ["line 1: trailing whitespace", "line 2: trailing whitespace"]),
        ("no newline", ["no newline at end of file"]),
        ("a\n\n", ["blank lines at end of file"]),
        ("\n", ["blank lines at end of file"]),
        ("windows\r\n", []),
    ],
)
def test_problems(text: str, found: list[str]) -> None:
    assert hygiene.problems(text) == found


@given(st.text(alphabet=" \t\r\nab", max_size=40))
def test_fixed_text_has_no_problems_and_fixing_is_idempotent(text: str) -> None:
    repaired = hygiene.fixed(text)
    assert hygiene.problems(repaired) == []
    assert hygiene.fixed(repaired) == repaired


@given(st.text(alphabet=" \t\nab", max_size=40))
def test_text_without_problems_is_left_as_it_is(text: str) -> None:
    if not hygiene.problems(text):
        assert hygiene.fixed(text) == text


def test_main_checks_fixes_and_skips_binary_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirty, binary = tmp_path / "a.txt", tmp_path / "b.bin"
    dirty.write_text("x  \n\n")
    binary.write_bytes(b"\0 \n\n")
    assert hygiene.main([str(dirty), str(binary), str(tmp_path / "gone")]) == 1
    assert "a.txt: line 1: trailing whitespace" in capsys.readouterr().err
    assert dirty.read_text() == "x  \n\n"
    assert hygiene.main(["--fix", str(dirty), str(binary)]) == 1
    assert dirty.read_text() == "x\n"
    assert binary.read_bytes() == b"\0 \n\n"
    assert hygiene.main([str(dirty)]) == 0
