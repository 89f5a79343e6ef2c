"""The plaintext-secret guard's structural checks, file by file, with the fix each finding
gets (without gitleaks on PATH; the guard with it: tests/test_secret_guard.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.secrets import scan

SECRET = "kind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2\n"
RULE = "  - path_regex: kubernetes/.*\\.sops\\.ya?ml\n    encrypted_regex: ^(data|stringData)$\n"
SOPS_CONFIG = f"creation_rules:\n{RULE}"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    monkeypatch.setenv("CI", "")
    (tmp_path / ".sops.yaml").write_text(SOPS_CONFIG)
    (tmp_path / "kubernetes").mkdir()
    return tmp_path


def findings(root: Path, files: dict[str, str]) -> list[scan.Finding]:
    for name, text in files.items():
        (root / name).write_text(text)
    return scan.check_files(files, root, warn=lambda line: None)


def test_a_plaintext_secret_is_renamed_into_a_sops_file_its_rule_encrypts(root: Path) -> None:
    (finding,) = findings(root, {"kubernetes/db.yaml": SECRET})
    assert (finding.line, finding.action) == (1, scan.RENAME)
    assert str(finding) == (
        "kubernetes/db.yaml:1: Secret db: stringData.password in plaintext — "
        "`inv sops.encrypt --path kubernetes/db.yaml` encrypts it into kubernetes/db.sops.yaml"
    )
    assert "hunter2" not in str(finding)


def test_a_secret_no_rule_would_encrypt_says_where_secrets_belong(root: Path) -> None:
    (finding,) = findings(root, {"notes.yaml": SECRET})
    assert finding.action == "" and "no rule of .sops.yaml would encrypt it" in finding.message


def test_a_plaintext_sops_file_is_encrypted_in_place(root: Path) -> None:
    (finding,) = findings(root, {"kubernetes/db.sops.yaml": "a: 1\n"})
    assert (finding.line, finding.action) == (0, scan.ENCRYPT)


def test_a_token_in_cluster_yaml_moves_to_cluster_sops_yaml(root: Path) -> None:
    (finding,) = findings(root, {"cluster.yaml": "node_cidr: x\ncloudflare_token: abc\n"})
    assert (finding.line, finding.action) == (2, scan.MOVE)
    for unset in ("cloudflare_token:\n", "cloudflare_token: ~\n", "cloudflare_token: null\n"):
        assert findings(root, {"cluster.yaml": unset}) == [], unset


def test_the_allow_marker_and_gitleaks_allowlists_exempt(root: Path) -> None:
    assert findings(root, {"kubernetes/a.yaml": SECRET.replace("hunter2", "hunter2  # gitleaks:allow")}) == []
    (root / ".gitleaks.toml").write_text('[[allowlists]]\npaths = ["^kubernetes/"]\n')
    assert findings(root, {"kubernetes/db.yaml": SECRET}) == []
    (root / ".gitleaks.toml").write_text(
        '[[allowlists]]\ncondition = "AND"\nregexes = ["x"]\npaths = ["^k"]\n'
    )
    assert scan.exclusions(root) == []


def test_links_and_binary_files_are_not_read(root: Path) -> None:
    (root / "kubernetes/db.yaml").write_text(SECRET)
    (root / "link.yaml").symlink_to(root / "kubernetes/db.yaml")
    (root / "blob.yaml").write_bytes(b"\0" + SECRET.encode())
    assert scan.readable_text(root, "link.yaml") is None
    assert scan.readable_text(root, "blob.yaml") is None
    assert scan.check_files(["link.yaml", "blob.yaml"], root, warn=lambda line: None) == []


def test_without_gitleaks_the_guard_warns_that_it_did_not_check_shapes(root: Path) -> None:
    warned: list[str] = []
    (root / "cluster.yaml").write_text("node_cidr: x\n")
    scan.check_files(["cluster.yaml"], root, warn=warned.append)
    assert len(warned) == 1 and "NOT checked" in warned[0]


def test_sops_name() -> None:
    assert scan.sops_name("kubernetes/a.json") == "kubernetes/a.sops.yaml"
    assert scan.sops_name("secret") == "secret.sops.yaml"
