"""write_atomically: all or nothing, permissions kept."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tasks.lib.files import write_atomically


def test_creates_parents_and_new_files_are_0644(tmp_path: Path) -> None:
    target = tmp_path / "talos" / "talsecret.sops.yaml"
    write_atomically(target, "ciphertext\n")
    assert target.read_text() == "ciphertext\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_replacing_keeps_the_old_permissions(tmp_path: Path) -> None:
    target = tmp_path / "cluster.sops.yaml"
    target.write_text("old\n")
    target.chmod(0o600)
    write_atomically(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "talos" / "talsecret.sops.yaml"
    target.parent.mkdir()
    target.write_text("old\n")

    def interrupted(self: Path, other: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, "new\n")
    assert [p.name for p in target.parent.iterdir()] == ["talsecret.sops.yaml"]
    assert target.read_text() == "old\n"
