"""One bounded directory walk for the validator (``os.walk`` recurses: a hostile tree of
thousands of nested folders would exhaust the interpreter's stack)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

#: Folders deeper than this below the walk's start are not entered.
MAX_DEPTH = 64


def walk(
    top: Path, *, max_depth: int = MAX_DEPTH, prune: Callable[[Path], bool] | None = None
) -> Iterator[tuple[Path, list[str], list[str]]]:
    """``os.walk(top)`` top-down without recursion, folders and files sorted, symlinked
    folders not followed: yields (folder, sub-folder names, file names); the caller may
    remove names from the sub-folder list to skip them. ``prune(path)`` True skips a folder.
    Folders more than ``max_depth`` levels down are not entered."""
    stack = [(top, 0)]
    while stack:
        current, depth = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue
        dirs = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        files = [e.name for e in entries if not e.is_dir(follow_symlinks=False)]
        if prune is not None:
            dirs = [d for d in dirs if not prune(current / d)]
        yield current, dirs, files
        if depth < max_depth:
            stack.extend((current / d, depth + 1) for d in reversed(dirs))
