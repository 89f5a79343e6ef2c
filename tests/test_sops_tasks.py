"""inv sops.*: real sops and the example age key on temporary repositories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

from tasks import sops
from tasks.lib.secrets.keys import age_key_file, age_recipients_of
from tasks.lib.secrets.sopsfile import is_encrypted
from tests.conftest import EXAMPLE_OPERATOR

EXAMPLE_PUBLIC = "age1k44wzccydq23zv58mkx3w5h0pzp4qmhka8dht50cdvyf3zk98pjqtsdvsz"

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: demo
stringData:
  password: hunter2-but-longer
"""


def context(root: Path) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(root)}}))


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def repo(example_repo: Path) -> Path:
    # Start from a tree without rendered secrets: only cluster.sops.yaml is encrypted.
    for top in ("kubernetes", "talos", "bootstrap"):
        for path in (example_repo / top).rglob("*.sops.*"):
            path.unlink()
    return example_repo


def test_encrypt_follows_sops_yaml_and_is_idempotent(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    talos = write(repo, "talos/extra.sops.yaml", "token: abc\n")
    kube = write(repo, "kubernetes/apps/default/demo/app/secret.sops.yaml", SECRET)
    sops.encrypt(context(repo))
    assert is_encrypted(talos) and is_encrypted(kube)
    kube_text = kube.read_text()
    assert "name: demo" in kube_text and "hunter2" not in kube_text  # only stringData encrypted
    assert "token: ENC[" in talos.read_text()  # whole file
    assert age_recipients_of(kube) == [EXAMPLE_PUBLIC]
    before = {p: p.read_bytes() for p in (talos, kube, repo / "cluster.sops.yaml")}
    capsys.readouterr()
    sops.encrypt(context(repo))
    assert "nothing to encrypt" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in before} == before


def test_encrypt_named_file_only(repo: Path) -> None:
    one = write(repo, "talos/one.sops.yaml", "a: b\n")
    two = write(repo, "talos/two.sops.yaml", "c: d\n")
    sops.encrypt(context(repo), path=[str(one)])
    assert is_encrypted(one) and not is_encrypted(two)


def test_encrypt_refuses_a_file_with_nothing_to_encrypt(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = write(repo, "talos/plain.yaml", "a: b\n")
    with pytest.raises(Exit):
        sops.encrypt(context(repo), path=[str(plain)])
    assert "not a *.sops.* file and no plaintext Secret in it" in capsys.readouterr().err
    assert plain.read_text() == "a: b\n"


def test_check_flags_plaintext_sops_files_and_config_secrets(
    repo: Path, gitleaks: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sops.check(context(repo))
    assert "ok:" in capsys.readouterr().out
    write(repo, "kubernetes/apps/default/demo/app/secret.sops.yaml", SECRET)
    token = "Zx81kQ2mW9aPq4Lr7sT1vB6nC3dE5fG0hJ8k"
    cluster = repo / "cluster.yaml"
    cluster.write_text(cluster.read_text() + f"cloudflare_token: {token}\n")
    with pytest.raises(Exit) as raised:
        sops.check(context(repo))
    assert raised.value.code == 1
    err = capsys.readouterr().err
    assert "kubernetes/apps/default/demo/app/secret.sops.yaml: not encrypted" in err
    assert "cluster.yaml:" in err and "cloudflare_token: a secret in a file git commits" in err
    assert token not in err


def test_decrypt_prints_to_stdout_only(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files_before = sorted(p for p in repo.rglob("*") if ".git" not in p.parts)
    sops.decrypt(context(repo), "cluster.sops.yaml")
    out = capsys.readouterr().out
    assert "cloudflare_token:" in out and "ENC[" not in out and "sops:" not in out
    assert sorted(p for p in repo.rglob("*") if ".git" not in p.parts) == files_before


def test_missing_key_is_one_line(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(Exit):
        sops.decrypt(context(repo), "cluster.sops.yaml")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("cluster.sops.yaml: cannot decrypt") and "inv init" in err[0]


def test_wrong_key_is_one_line(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    operator = tmp_path / "other"
    operator.mkdir()
    content, public = age_key_file()
    (operator / "age.key").write_text(content)
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(operator))
    with pytest.raises(Exit):
        sops.decrypt(context(repo), "cluster.sops.yaml")
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert EXAMPLE_PUBLIC in line and public in line and "cluster.sops.yaml" in line


def test_rotate_to_a_new_key_with_verification(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = write(repo, "kubernetes/apps/default/demo/app/secret.sops.yaml", SECRET)
    sops.encrypt(context(repo))
    original = {p: _decrypted(repo, p) for p in (kube, repo / "cluster.sops.yaml")}
    # The key change: a new age.key, .sops.yaml rendered for it, the old key kept aside.
    operator = tmp_path / "operator"
    shutil.copytree(EXAMPLE_OPERATOR, operator)
    (operator / "age.key").unlink()
    content, public = age_key_file()
    (operator / "age.key").write_text(content)
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(operator))
    config = repo / ".sops.yaml"
    config.write_text(config.read_text().replace(EXAMPLE_PUBLIC, public))
    sops.rotate(context(repo), old_key=str(EXAMPLE_OPERATOR / "age.key"))
    for path, plaintext in original.items():
        assert age_recipients_of(path) == [public]
        assert _decrypted(repo, path) == plaintext  # with the new key alone


def test_rotate_refuses_when_sops_yaml_would_lock_you_out(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    operator = tmp_path / "operator"
    operator.mkdir()
    (operator / "age.key").write_text(age_key_file()[0])
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(operator))
    before = (repo / "cluster.sops.yaml").read_bytes()
    with pytest.raises(Exit):
        sops.rotate(context(repo), old_key=str(EXAMPLE_OPERATOR / "age.key"))
    assert "lock you out" in capsys.readouterr().err
    assert (repo / "cluster.sops.yaml").read_bytes() == before


def _decrypted(repo: Path, path: Path) -> str:
    ctx = context(repo)
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        sops.decrypt(ctx, str(path))
    return buffer.getvalue()
