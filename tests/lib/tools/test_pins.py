"""Reading a tool's version from what it prints, and comparing it with its pin."""

from __future__ import annotations

import pytest

from tasks.lib.tools.pins import compare, parse_version


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("sops 3.11.0", "3.11.0"),
        ("v0.7.0", "0.7.0"),
        ("cloudflared version 2026.3.0 (built x)", "2026.3.0"),
        ("", None),
    ],
)
def test_parse_version(output: str, version: str | None) -> None:
    assert parse_version(output) == version


def test_compare() -> None:
    assert compare("1.13.0", "1.13.0") == "ok"
    assert compare("3.11", "3.11.0") == "ok"
    assert compare("3.11.0", "3.12.2") == "differs"
    assert compare(None, "1.0.0") == "unknown"
