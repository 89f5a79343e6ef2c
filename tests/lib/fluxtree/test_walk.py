"""The validator's one directory walk: sorted, no recursion, links not followed, bounded."""

from __future__ import annotations

from pathlib import Path

from tasks.lib.fluxtree.walk import walk


def test_walk_is_top_down_sorted_and_does_not_follow_links(tmp_path: Path) -> None:
    (tmp_path / "b" / "inner").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.yaml").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "b")
    seen = [(folder.relative_to(tmp_path).as_posix(), dirs, files) for folder, dirs, files in walk(tmp_path)]
    assert seen == [
        (".", ["a", "b"], ["link"]),
        ("a", [], ["x.yaml"]),
        ("b", ["inner"], []),
        ("b/inner", [], []),
    ]


def test_pruned_and_too_deep_folders_are_not_entered(tmp_path: Path) -> None:
    deep = tmp_path / "1" / "2" / "3"
    deep.mkdir(parents=True)
    (tmp_path / "skip").mkdir()
    folders = [
        folder for folder, _dirs, _files in walk(tmp_path, max_depth=2, prune=lambda p: p.name == "skip")
    ]
    assert folders == [tmp_path, tmp_path / "1", tmp_path / "1" / "2"]
