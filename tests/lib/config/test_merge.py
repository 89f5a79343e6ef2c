"""Three-way merges of the user's edits with the real git: bases from its object database,
checked against the manifest; conflicts located in the user's file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tasks.lib.config import manifest as mf
from tasks.lib.config import merge

BASE = b"a: 1\nb: 2\nc: 3\n"


def repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    return path


def test_a_stored_base_is_found_only_with_the_manifests_digest(tmp_path: Path) -> None:
    root = repo(tmp_path)
    (root / "f.yaml").write_bytes(BASE)
    blob = merge.store(root, root / "f.yaml")
    assert blob is not None and mf.BLOB_ID.match(blob)
    assert merge.bases(root, {"f.yaml": mf.Entry(mf.sha256(BASE), blob=blob)}) == {"f.yaml": BASE}
    assert merge.bases(root, {"f.yaml": mf.Entry(mf.sha256(b"other"), blob=blob)}) == {}
    assert merge.read_objects(root, ["0" * 40]) == {}


def test_without_git_there_are_no_blob_ids(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(BASE)
    assert merge.blob_ids(tmp_path, {"f": tmp_path / "f"}, write=False) == {}


def test_merge_keeps_the_users_edit_and_takes_the_new_render(tmp_path: Path) -> None:
    ours = BASE.replace(b"a: 1", b"a: 1  # mine")
    theirs = BASE.replace(b"c: 3", b"c: 4")
    merged = merge.merge(tmp_path / "scratch", "f.yaml", ours, BASE, theirs)
    assert merged is not None and merged.clean
    assert merged.text == b"a: 1  # mine\nb: 2\nc: 4\n"


def test_a_conflict_is_counted_and_located_in_the_users_file(tmp_path: Path) -> None:
    ours = BASE.replace(b"b: 2", b"b: 20")
    theirs = BASE.replace(b"b: 2", b"b: 21")
    merged = merge.merge(tmp_path / "scratch", "f.yaml", ours, BASE, theirs)
    assert merged is not None and merged.conflicts == 1
    ((line, marked),) = merge.conflict_hunks(merged.text)
    assert line == 2
    assert marked[0] == "<<<<<<< yours: f.yaml" and "b: 20" in marked and "b: 21" in marked


def test_diff_lines_are_cut_short() -> None:
    before = b"".join(b"%d\n" % i for i in range(200))
    lines = merge.diff_lines("f", before, b"", ("a", "b"))
    assert lines[:2] == ["--- a/f", "+++ b/f"]
    assert len(lines) == merge.MAX_SHOWN + 1 and lines[-1].endswith("more lines")
