"""`inv init`: operator files in the right formats, modes and places; never overwrites;
adopts the bundled example's secrets for a newcomer."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key
from invoke import Config, Context

from tasks import root
from tasks.lib import swap
from tasks.lib.errors import UserError
from tasks.lib.secrets.keys import age_recipients_of, read_age_identity
from tests.conftest import EXAMPLE_OPERATOR, git

OPERATOR_FILES = ("age.key", "github-deploy.key", "github-deploy.key.pub", "github-push-token.txt")


@pytest.fixture
def newcomer(example_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    """A fresh clone: operator files go to the repository root, none exist yet."""
    monkeypatch.delenv("HOME_OPS_OPERATOR_DIR")
    return Context(config=Config(overrides={"home_ops": {"root": str(example_repo)}}))


def root_of(c: Context) -> Path:
    return Path(c.config.home_ops.root)


def test_init_creates_private_files_in_the_expected_formats(newcomer: Context) -> None:
    root.init(newcomer)
    repo = root_of(newcomer)
    for name in OPERATOR_FILES:
        mode = stat.S_IMODE((repo / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"
    identity, public = read_age_identity(repo / "age.key", "age.key")
    assert public == str(pyrage.x25519.Identity.from_str(identity).to_public())
    assert f"# public key: {public}" in (repo / "age.key").read_text()
    private = load_ssh_private_key((repo / "github-deploy.key").read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    public_key = load_ssh_public_key((repo / "github-deploy.key.pub").read_bytes())
    assert public_key.public_bytes_raw() == private.public_key().public_bytes_raw()
    token = (repo / "github-push-token.txt").read_text().strip()
    assert len(token) == 64 and int(token, 16) >= 0
    ignored = git(repo, "check-ignore", *OPERATOR_FILES).split()
    assert ignored == list(OPERATOR_FILES)


def test_init_adopts_the_bundled_example_secrets(newcomer: Context) -> None:
    repo = root_of(newcomer)
    example_public = read_age_identity(EXAMPLE_OPERATOR / "age.key", "example")[1]
    assert age_recipients_of(repo / "cluster.sops.yaml") == [example_public]
    root.init(newcomer)
    own_public = read_age_identity(repo / "age.key", "age.key")[1]
    assert age_recipients_of(repo / "cluster.sops.yaml") == [own_public]
    plain = subprocess.run(
        ["sops", "--decrypt", "cluster.sops.yaml"],
        cwd=repo,
        env={**os.environ, "SOPS_AGE_KEY_FILE": str(repo / "age.key")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "example-cloudflare-api-token-not-real" in plain


def test_init_twice_changes_nothing(newcomer: Context, capsys: pytest.CaptureFixture[str]) -> None:
    root.init(newcomer)
    repo = root_of(newcomer)
    before = {name: (repo / name).read_bytes() for name in (*OPERATOR_FILES, "cluster.sops.yaml")}
    capsys.readouterr()
    root.init(newcomer)
    assert "nothing to do" in capsys.readouterr().out
    assert {name: (repo / name).read_bytes() for name in before} == before


def test_init_never_overwrites_and_fills_only_gaps(newcomer: Context) -> None:
    repo = root_of(newcomer)
    (repo / "github-push-token.txt").write_text("my-own-token\n")
    root.init(newcomer)
    assert (repo / "github-push-token.txt").read_text() == "my-own-token\n"
    assert (repo / "age.key").exists()


def test_init_writes_placeholder_secrets_when_none_exist(newcomer: Context) -> None:
    repo = root_of(newcomer)
    (repo / "cluster.sops.yaml").unlink()
    root.init(newcomer)
    text = (repo / "cluster.sops.yaml").read_text()
    assert "ENC[AES256_GCM" in text and "replace-me" not in text
    own_public = read_age_identity(repo / "age.key", "age.key")[1]
    assert age_recipients_of(repo / "cluster.sops.yaml") == [own_public]


def test_dry_init_creates_nothing(newcomer: Context, capsys: pytest.CaptureFixture[str]) -> None:
    newcomer.config.run.dry = True
    repo = root_of(newcomer)
    before = sorted(p.name for p in repo.iterdir())
    root.init(newcomer)
    assert sorted(p.name for p in repo.iterdir()) == before
    out = capsys.readouterr().out
    assert "would create age.key" in out


def test_keys_are_created_exclusively_and_private_from_the_first_byte(tmp_path: Path) -> None:
    target = tmp_path / "key"
    swap.write_files(tmp_path, [swap.Change(target, b"one", 0o600, exclusive=True)], "init")
    assert target.read_text() == "one" and stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(UserError, match="key: exists — not replaced"):
        swap.write_files(tmp_path, [swap.Change(target, b"two", 0o600, exclusive=True)], "init")
    assert target.read_text() == "one"
