"""inv sops.*: real sops and the example age key on temporary repositories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

from tasks import sops
from tasks.lib.secrets.keys import age_key_file, age_recipients_of
from tasks.lib.secrets.scan import check_repository, scan_config_text
from tasks.lib.secrets.sopsfile import is_encrypted
from tests.conftest import EXAMPLE_OPERATOR, copy_repo

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


def test_encrypt_refuses_a_file_not_named_sops(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = write(repo, "talos/plain.yaml", "a: b\n")
    with pytest.raises(Exit):
        sops.encrypt(context(repo), path=[str(plain)])
    assert "not a *.sops.* file" in capsys.readouterr().err


def test_check_flags_plaintext_sops_files_and_config_secrets(
    repo: Path, capsys: pytest.CaptureFixture[str]
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
    assert "cluster.yaml:" in err and "cloudflare_token: plaintext secret" in err
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


# --------------------------------------------------------------------------- the scanner


@pytest.mark.parametrize(
    "line",
    [
        "cloudflare_token: abcdef",
        "some_password: 'x'",
        # Token shapes are assembled here, so the guard's own scan of this file stays clean.
        "# AGE-SECRET-KEY-1" + "Q" * 58,
        "note: -----BEGIN OPENSSH " + "PRIVATE KEY-----",
        "github: ghp" + "_abcdefghijklmnopqrstuvwxyz0123456789",
        "webhook: 3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d1f3a",
        "api: Zx81kQ2mW9aPq4Lr7sT1vB6nC3dE5fG0hJ8k",
    ],
)
def test_scanner_flags_secrets(line: str) -> None:
    findings = scan_config_text(line + "\n", "cluster.yaml")
    assert len(findings) == 1 and findings[0].line == 1
    secret = line.split(":", 1)[-1].strip().strip("'").removeprefix("-----BEGIN ")
    assert len(secret) < 4 or secret not in str(findings[0])  # never printed


def test_scanner_passes_the_bundled_example(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    assert check_repository(root) == []
    nodes = (
        "nodes:\n  - name: k8s-0\n    schematic_id: "
        + "a" * 64
        + "\n    disk: /dev/disk/by-id/nvme-Samsung_SSD_980_PRO_2TB_S6B0NL0T\n"
    )
    assert scan_config_text(nodes, "nodes.yaml") == []
    assert (
        scan_config_text("cloudflare_token:\n# cloudflare_token: see cluster.sops.yaml\n", "cluster.yaml")
        == []
    )


# --------------------------------------------------------------------------- the whole tree


def test_check_finds_every_plaintext_secret_in_the_tracked_tree(tmp_path: Path) -> None:
    """A plaintext Secret anywhere, and known token shapes in any file, named by file and line;
    the test-only example keys and reviewed exceptions pass."""
    from tests.conftest import git

    root = copy_repo(tmp_path / "repo")
    token = "ghp" + "_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9"  # assembled: this file stays clean
    key_body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
    (root / "kubernetes/apps/default/leak").mkdir(parents=True)
    (root / "kubernetes/apps/default/leak/secret.yaml").write_text(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\ndata:\n  a: b\n"
        f"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\nstringData:\n  token: {token}\n"
    )
    (root / "scripts").mkdir(exist_ok=True)
    (root / "scripts/notes.txt").write_text(
        "-----BEGIN OPENSSH PRIVATE" + " KEY-----\n" + key_body + "\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    (root / "scripts/parse.py").write_text('HEADER = "-----BEGIN OPENSSH PRIVATE' + ' KEY-----"\nx = 1\n')
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs/example.md").write_text(f"an allowed example: {token}  <!-- secret-guard: allow -->\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    lines = [str(f) for f in check_repository(root)]
    assert any(line.startswith("kubernetes/apps/default/leak/secret.yaml:14: GitHub token") for line in lines)
    assert any(
        line.startswith("kubernetes/apps/default/leak/secret.yaml:10: Secret with data") for line in lines
    )
    assert any(line.startswith("scripts/notes.txt:1: private key block") for line in lines)
    assert not any(line.startswith(("scripts/parse.py", "docs/example.md", "tests/")) for line in lines)
    assert all(token not in line and key_body not in line for line in lines)
    assert len(lines) == 3
