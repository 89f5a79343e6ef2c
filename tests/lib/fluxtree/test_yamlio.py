"""YAML read as Go's YAML reads it (the 1.2 core schema), written so both dialects agree."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.lib.fluxtree import yamlio


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("on", "on"),
        ("0755", "0755"),
        ("1:20", "1:20"),
        ("2024-01-01", "2024-01-01"),
        ("=", "="),
        ("true", True),
        ("~", None),
        ("0o17", 15),
        ("0x1f", 31),
        ("1_000", 1000),
        ("1.5", 1.5),
    ],
)
def test_scalars_resolve_as_in_go(text: str, value: Any) -> None:
    assert yamlio.load(f"v: {text}\n") == {"v": value}


@given(st.from_regex(r"0[0-7]{1,4}|0o[0-7]{1,4}|[yn]|on|off|[0-9]{1,2}:[0-9]{2}", fullmatch=True))
def test_strings_that_look_like_numbers_survive_a_round_trip(text: str) -> None:
    assert yamlio.load(yamlio.dump({"v": text})) == {"v": text}


def test_split_documents_keeps_each_documents_text() -> None:
    text = "# only a comment\n---\na: 1\n--- b: 2\n...\n---\n# c\nc: 3\n---\n\n"
    assert yamlio.split_documents(text) == ["a: 1\n", "b: 2\n", "# c\nc: 3\n"]
    assert yamlio.load_all("---\na: 1\n---\n---\nc: 3\n") == [{"a": 1}, {"c": 3}]


def test_a_redefined_anchor_is_read_as_go_reads_it() -> None:
    assert yamlio.load("a: &x 1\nb: &x 2\nc: *x\n") == {"a": 1, "b": 2, "c": 2}


def test_error_position_is_one_based() -> None:
    with pytest.raises(yamlio.YAMLError) as error:
        yamlio.load("a: 1\nb: [\n")
    line, column, message = yamlio.error_position(error.value)
    assert line is not None and line >= 2 and column is not None and message
    assert yamlio.error_position(ValueError("plain")) == (None, None, "plain")
