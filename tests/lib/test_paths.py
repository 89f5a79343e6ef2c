"""Where tasks look: the repository root, whatever the working directory; the user's
environment wins over the repository's defaults."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from invoke import Config, Context

from tasks.lib.paths import ROOT, paths_for, repo_paths, tool_env
from tasks.lib.tools.runner import run


def test_defaults_point_into_the_repository() -> None:
    env = tool_env(repo_paths())
    assert env["KUBECONFIG"] == str(ROOT / "kubeconfig")
    assert env["SOPS_AGE_KEY_FILE"] == str(ROOT / "age.key")
    assert env["SOPS_CONFIG"] == str(ROOT / ".sops.yaml")
    assert env["TALOSCONFIG"] == str(ROOT / "talos" / "clusterconfig" / "talosconfig")


def test_the_users_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kc"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("TALOSCONFIG", str(tmp_path / "tc"))
    env = tool_env(repo_paths())
    assert env["KUBECONFIG"] == str(tmp_path / "kc")
    assert env["SOPS_AGE_KEY_FILE"] == str(tmp_path / "key")
    assert env["TALOSCONFIG"] == str(tmp_path / "tc")


def test_operator_dir_moves_the_operator_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(tmp_path))
    paths = repo_paths()
    assert paths.age_key == tmp_path / "age.key"
    assert paths.deploy_key == tmp_path / "github-deploy.key"
    assert paths.push_token == tmp_path / "github-push-token.txt"


def test_sops_config_is_left_out_until_it_exists(tmp_path: Path) -> None:
    assert "SOPS_CONFIG" not in tool_env(repo_paths(tmp_path))
    (tmp_path / ".sops.yaml").write_text("creation_rules: []\n")
    assert tool_env(repo_paths(tmp_path))["SOPS_CONFIG"] == str(tmp_path / ".sops.yaml")


def test_tasks_resolve_the_root_from_config_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert paths_for(Context()).root == ROOT
    other = Context(config=Config(overrides={"home_ops": {"root": str(tmp_path)}}))
    assert paths_for(other).root == tmp_path.resolve()


def test_every_command_gets_the_repositorys_tool_environment() -> None:
    code = "import os; print(*(os.environ[n] for n in ('KUBECONFIG', 'SOPS_AGE_KEY_FILE', 'TALOSCONFIG')))"
    outcome = run(Context(), [sys.executable, "-c", code])
    kubeconfig, age_key, talosconfig = outcome.stdout.split()
    assert kubeconfig == str(ROOT / "kubeconfig") and age_key == str(ROOT / "age.key")
    assert talosconfig == str(ROOT / "talos" / "clusterconfig" / "talosconfig")


def test_relative_paths_from_the_environment_become_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", "operator")
    monkeypatch.setenv("KUBECONFIG", "kc")
    paths = repo_paths()
    assert paths.age_key == tmp_path / "operator" / "age.key"
    assert tool_env(paths)["SOPS_AGE_KEY_FILE"] == str(tmp_path / "operator" / "age.key")
    assert tool_env(paths)["KUBECONFIG"] == str(tmp_path / "kc")


def test_a_kubeconfig_list_is_passed_on_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/a/config:/b/config")
    assert tool_env(repo_paths())["KUBECONFIG"] == "/a/config:/b/config"
