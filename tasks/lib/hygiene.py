"""Whitespace hygiene for every text file: no trailing whitespace, exactly one final newline.

The same rules in two modes, so ``inv lint`` can check without touching anything and
``inv lint.fix`` (and the git hook) can repair: :func:`problems` reports, :func:`fixed`
rewrites. Standard library only, so the pre-commit hook needs no dependencies.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def problems(text: str) -> list[str]:
    """What is wrong with ``text``, one short phrase per problem (line numbers 1-based)."""
    found = [
        f"line {number}: trailing whitespace"
        for number, line in enumerate(text.split("\n"), start=1)
        if line.rstrip("\r") != line.rstrip("\r").rstrip(" \t")
    ]
    if text and not text.endswith("\n"):
        found.append("no newline at end of file")
    elif text.endswith("\n\n") or (text and not text.strip("\n")):
        found.append("blank lines at end of file")
    return found


def fixed(text: str) -> str:
    """``text`` with trailing whitespace removed and exactly one final newline (an empty
    file stays empty)."""
    lines = [line.rstrip(" \t\r") + ("\r" if line.endswith("\r") else "") for line in text.split("\n")]
    body = "\n".join(lines).rstrip("\n")
    return body + "\n" if body.strip() else ""


def is_text(data: bytes) -> bool:
    return b"\0" not in data[:8192]


def main(argv: Sequence[str] | None = None) -> int:
    """``[--fix] FILE...``: report (or repair) whitespace problems; exit 1 if any were found."""
    args = list(sys.argv[1:] if argv is None else argv)
    fix = "--fix" in args
    status = 0
    for name in (a for a in args if a != "--fix"):
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if not is_text(data):
            continue
        text = data.decode("utf-8", errors="surrogateescape")
        found = problems(text)
        if not found:
            continue
        status = 1
        if fix:
            path.write_bytes(fixed(text).encode("utf-8", errors="surrogateescape"))
            print(f"fixed {name}")
        else:
            for problem in found:
                print(f"{name}: {problem}", file=sys.stderr)
    return status
