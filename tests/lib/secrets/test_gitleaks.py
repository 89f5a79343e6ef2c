"""gitleaks behind the secret guard: its command line, its report, and what happens without
it (a real run: tests/test_secret_guard.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.lib.errors import UserError
from tasks.lib.secrets import gitleaks


def test_argv_adds_the_repositorys_config_and_ignore_file_only_when_present(tmp_path: Path) -> None:
    assert "--config" not in gitleaks.argv(tmp_path)
    (tmp_path / gitleaks.CONFIG).write_text("")
    (tmp_path / gitleaks.IGNORE_FILE).write_text("")
    argv = gitleaks.argv(tmp_path)
    assert argv[:3] == ["gitleaks", "dir", "."] and "--redact" in argv
    assert argv[argv.index("--config") + 1] == str(tmp_path / gitleaks.CONFIG)
    assert argv[argv.index("--gitleaks-ignore-path") + 1] == str(tmp_path / gitleaks.IGNORE_FILE)


def test_the_report_names_repository_files_never_the_match(tmp_path: Path) -> None:
    report = [
        {"File": f"{tmp_path}/kubernetes/a.yaml", "StartLine": 3, "RuleID": "github-pat", "Match": "ghp_x"},
        {"File": "talos/./b.yaml", "StartLine": None},
        "junk",
    ]
    leaks = gitleaks.parse_report(json.dumps(report).encode(), tmp_path)
    assert leaks == [
        gitleaks.Leak("kubernetes/a.yaml", 3, "github-pat"),
        gitleaks.Leak("talos/b.yaml", 0, "secret"),
    ]
    assert leaks[0].what == "github pat"
    with pytest.raises(UserError, match="not JSON"):
        gitleaks.parse_report(b"oops", tmp_path)


@pytest.mark.parametrize(
    ("value", "ci"), [("", False), ("0", False), ("false", False), ("true", True), ("1", True)]
)
def test_in_ci(monkeypatch: pytest.MonkeyPatch, value: str, ci: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert gitleaks.in_ci() is ci


def test_without_gitleaks_a_workstation_skips_and_ci_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("CI", "")
    assert gitleaks.scan(tmp_path, []) == []
    assert gitleaks.scan(tmp_path, ["a.yaml"]) is None
    monkeypatch.setenv("CI", "true")
    with pytest.raises(UserError, match="gitleaks"):
        gitleaks.scan(tmp_path, ["a.yaml"])
