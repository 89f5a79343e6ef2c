"""Checks over the whole tree: dependency cycles."""

from __future__ import annotations

from tasks.lib.fluxtree.checks import find_cycles


def test_find_cycles() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["d"], "e": ["a"]}
    assert find_cycles(graph) == [["a", "b", "c"], ["d"]]
