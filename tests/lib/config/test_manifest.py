"""The configure manifest: keyed digests, and what a manifest may name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.lib.config import manifest as mf
from tasks.lib.errors import UserError

KEY = mf.secret_key("AGE-SECRET-KEY-1TEST")


def test_the_inputs_digest_depends_on_names_bytes_and_extra_values_only(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    (tmp_path / "b").write_text("two")
    files = {"cluster.yaml": tmp_path / "a", "nodes.yaml": tmp_path / "b"}
    digest = mf.inputs_digest(KEY, files, ["v1"])
    assert digest == mf.inputs_digest(KEY, dict(reversed(files.items())), ["v1"])
    assert digest != mf.inputs_digest(KEY, files, ["v2"])
    assert digest != mf.inputs_digest(mf.secret_key("AGE-SECRET-KEY-1OTHER"), files, ["v1"])
    (tmp_path / "b").write_text("two!")
    assert digest != mf.inputs_digest(KEY, files, ["v1"])


def test_a_fifo_or_missing_file_is_digested_by_what_it_is_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    fifo = mf.inputs_digest(KEY, {"x": tmp_path / "fifo"})
    missing = mf.inputs_digest(KEY, {"x": tmp_path / "gone"})
    assert len({fifo, missing, mf.inputs_digest(KEY, {})}) == 3


def test_entries_round_trip_and_malformed_ids_are_dropped() -> None:
    entry = mf.Entry("a" * 64, plaintext="p", blob="b" * 40, written="c" * 64)
    assert mf.Entry.from_json(entry.to_json()) == entry
    assert entry.in_tree == "c" * 64
    odd = mf.Entry.from_json({"sha256": "d" * 64, "blob": "--upload-pack=x", "written": 5})
    assert (odd.blob, odd.written, odd.in_tree) == (None, None, "d" * 64)


def test_load_dumps_round_trip_and_unreadable_is_empty(tmp_path: Path) -> None:
    path = tmp_path / mf.MANIFEST_NAME
    manifest = mf.Manifest({"talos/talconfig.yaml": mf.Entry("e" * 64)}, inputs="f" * 64)
    path.write_text(manifest.dumps())
    assert mf.Manifest.load(path) == manifest
    path.write_text("{not json")
    assert mf.Manifest.load(path) == mf.Manifest()
    assert mf.Manifest.load(tmp_path / "absent") == mf.Manifest()


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside", "kubernetes/../../x", "README.md"])
def test_a_manifest_naming_what_configure_never_writes_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / mf.MANIFEST_NAME
    path.write_text(mf.Manifest({name: mf.Entry("e" * 64)}).dumps())
    with pytest.raises(UserError, match="not a file configure writes"):
        mf.Manifest.load(path)
