"""The operator's own files: made all at once, private from the first byte, never replaced;
the placeholder secrets a new cluster.sops.yaml starts from."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tasks.lib.paths import Paths, repo_paths
from tasks.lib.secrets import operator


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(tmp_path / "operator"))
    (tmp_path / "operator").mkdir(mode=0o700)
    (tmp_path / "repo").mkdir()
    return repo_paths(tmp_path / "repo")


def test_dry_run_names_the_files_and_makes_none(paths: Paths) -> None:
    made = operator.create_operator_files(paths, dry=True)
    assert len(made) == 4 and not any(p.exists() for p in (paths.age_key, paths.deploy_key, paths.push_token))
    assert operator.public_key(paths, dry=True) == "<new age public key>"


def test_files_are_private_and_never_replaced(paths: Paths) -> None:
    paths.push_token.write_text("mine\n")
    made = operator.create_operator_files(paths, dry=False)
    assert paths.rel(paths.push_token) not in made and paths.push_token.read_text() == "mine\n"
    for path in (paths.age_key, paths.deploy_key, paths.deploy_key_pub):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert operator.public_key(paths, dry=False).startswith("age1")
    before = paths.age_key.read_text()
    assert operator.create_operator_files(paths, dry=False) == []
    assert paths.age_key.read_text() == before
