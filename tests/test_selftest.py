"""`inv dev.e2e` (the operator's flow on test configurations, in scratch copies), its test
configurations, `inv dev.test`, and the workflows that run them."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tasks.lib import selftest
from tasks.lib.config.checks import load_config
from tasks.lib.config.schema import GATEWAY_KEYS
from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths
from tests.conftest import ROOT, git

CONFIGS = ROOT / selftest.CONFIGS_DIR


def config_of(name: str):
    directory = CONFIGS / name
    return load_config(directory / "cluster.yaml", directory / "nodes.yaml", ROOT)


def inv(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tasks", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


# --------------------------------------------------------------------------- the configurations


def test_the_scenarios_the_e2e_job_needs_exist() -> None:
    names = {config.name for config in selftest.available(ROOT)}
    assert {"multi-node", "bgp", "private-repo"} <= names


@pytest.mark.parametrize("config", selftest.available(ROOT), ids=lambda t: t.name)
def test_every_test_configuration_validates(config: selftest.TestConfig) -> None:
    load_config(config.directory / "cluster.yaml", config.directory / "nodes.yaml", ROOT)


def test_multi_node_has_three_controllers_two_workers_and_spegel() -> None:
    config = config_of("multi-node")
    assert len(config.derived["controllers"]) == 3
    assert len(config.derived["workers"]) == 2
    assert config.derived["spegel_enabled"] is True


def test_bgp_sets_every_bgp_key_and_puts_the_gateways_outside_node_cidr() -> None:
    config = config_of("bgp")
    assert config.derived["cilium_bgp_enabled"] is True
    node_cidr = ipaddress.IPv4Network(config.cluster["node_cidr"])
    for key in GATEWAY_KEYS:
        assert ipaddress.IPv4Address(config.cluster[key]) not in node_cidr, key


def test_private_repo_covers_visibility_vlan_cidrs_and_sans() -> None:
    cluster = config_of("private-repo").cluster
    assert cluster["repository_visibility"] == "private"
    assert cluster["node_vlan_tag"] is not None
    assert cluster["cluster_pod_cidr"] != "10.42.0.0/16"
    assert cluster["cluster_svc_cidr"] != "10.43.0.0/16"
    assert cluster["cluster_api_tls_sans"]


# --------------------------------------------------------------------------- choosing configurations


def test_no_name_means_every_test_configuration() -> None:
    assert selftest.resolve_configs(ROOT, []) == selftest.available(ROOT)


def test_a_name_or_a_directory(tmp_path: Path) -> None:
    for name in selftest.CONFIG_FILES:
        shutil.copy(CONFIGS / "bgp" / name, tmp_path / name)
    chosen = selftest.resolve_configs(ROOT, ["multi-node", str(tmp_path)])
    assert [(c.name, c.directory) for c in chosen] == [
        ("multi-node", CONFIGS / "multi-node"),
        (tmp_path.name, tmp_path.resolve()),
    ]


def test_unknown_names_and_incomplete_directories_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text("node_cidr: 10.0.0.0/24\n")
    with pytest.raises(UserError) as error:
        selftest.resolve_configs(ROOT, ["nope", str(tmp_path)])
    first, second = error.value.lines
    assert first.startswith("nope: not a test configuration (known: ") and "multi-node" in first
    assert second == f"{tmp_path}: no nodes.yaml in this directory"


# --------------------------------------------------------------------------- running


@pytest.fixture
def repo_with_configs(example_repo: Path) -> Path:
    """The example repository with the test configurations committed, so `git status`
    tells whether dev.e2e touched anything."""
    shutil.copytree(CONFIGS, example_repo / selftest.CONFIGS_DIR)
    shutil.copytree(ROOT / selftest.EXAMPLE_DIR, example_repo / selftest.EXAMPLE_DIR)
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-q", "-m", "test configurations")
    return example_repo


def test_e2e_runs_the_whole_flow_in_a_scratch_copy_and_leaves_the_tree_untouched(
    repo_with_configs: Path, gitleaks: str
) -> None:
    result = inv(repo_with_configs, "dev.e2e", "--config", "multi-node")
    assert result.returncode == 0, result.stdout + result.stderr
    for step in selftest.STEPS:
        assert f"multi-node: {selftest.step_label(step)}: ok" in result.stdout
    assert "written" in result.stdout  # the configure summary: spegel's files are new
    assert result.stdout.rstrip().endswith("e2e: 1 of 1 configurations passed")
    assert git(repo_with_configs, "status", "--porcelain") == ""


def test_a_failing_step_ends_that_configuration_and_is_reported(
    repo_with_configs: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in selftest.CONFIG_FILES:
        shutil.copy(CONFIGS / "bgp" / name, broken / name)
    text = (broken / "cluster.yaml").read_text().replace("cilium_bgp_node_asn: 64514\n", "")
    (broken / "cluster.yaml").write_text(text)
    lines: list[str] = []
    paths = repo_paths(repo_with_configs)
    result = selftest.run_config(
        paths,
        selftest.worktree_files(paths.root),
        selftest.TestConfig("broken", broken),
        keep=False,
        say=lines.append,
    )
    assert not result.ok
    assert [step.step for step in result.steps] == ["inv configure"]
    assert "missing cilium_bgp_node_asn" in result.steps[0].output
    assert lines[0].startswith("broken: inv configure: FAILED")
    report = selftest.report([result])
    assert report[1].split() == ["broken", "FAILED", "at", "`inv", "configure`"]
    assert report[-1] == "e2e: 0 of 1 configurations passed"
    assert git(repo_with_configs, "status", "--porcelain") == ""


def test_the_copy_leaves_out_ignored_files_and_keeps_uncommitted_changes(repo_with_configs: Path) -> None:
    (repo_with_configs / "age.key").write_text("AGE-SECRET-KEY-NOT-REALLY\n")
    (repo_with_configs / "notes.txt").write_text("work in progress\n")
    files = selftest.worktree_files(repo_with_configs)
    assert "age.key" not in files
    assert "notes.txt" in files
    assert "tasks/lib/selftest.py" in files


def test_dry_run_shows_the_steps_and_runs_nothing() -> None:
    result = inv(ROOT, "--dry", "dev.e2e", "--config", "bgp")
    assert result.returncode == 0, result.stderr
    assert "would run, for each of bgp (tests/fixtures/configs/bgp)" in result.stdout
    assert "  inv --dry bootstrap.apps" in result.stdout
    assert "configure: " not in result.stdout


def test_it_never_needs_the_operators_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(tmp_path))  # no age.key there
    result = inv(ROOT, "--dry", "dev.e2e", "--config", "bgp")
    assert result.returncode == 0, result.stderr
    env = selftest.scratch_env(tmp_path / "scratch")
    assert env["SOPS_AGE_KEY_FILE"] == str(tmp_path / "scratch" / selftest.EXAMPLE_OPERATOR / "age.key")
    assert "example" in {config.name for config in selftest.available(ROOT)}


def test_dev_test_runs_pytest_in_parallel_and_passes_arguments_through() -> None:
    result = inv(ROOT, "--dry", "dev.test", "--", "-k", "catalog", "-x")
    assert result.returncode == 0, result.stderr
    assert "-m pytest -n auto -k catalog -x" in result.stdout


# --------------------------------------------------------------------------- the workflows


def workflow(name: str) -> dict:
    return YAML(typ="safe").load((ROOT / ".github" / "workflows" / name).read_text())


def test_the_e2e_job_runs_every_test_configuration_with_each_key() -> None:
    fresh = workflow("e2e.yaml")["jobs"]["fresh"]
    runs = [step.get("run", "") for step in fresh["steps"]]
    assert "uv run --locked inv dev.e2e" in runs  # no --config: every directory, none forgotten
    assert runs.index("uv run --locked inv dev.e2e") > runs.index("uv run --locked inv init")
    scenarios = {entry["scenario"] for entry in fresh["strategy"]["matrix"]["include"]}
    assert scenarios == {"new-key", "example-key"}


def test_the_test_workflow_runs_the_suite_on_pull_requests_and_main() -> None:
    test = workflow("test.yaml")
    triggers = test.get("on") or test.get(True)  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    runs = [step["run"] for job in test["jobs"].values() for step in job["steps"] if "run" in step]
    # the real tools first (their contract tests fail in CI without them), then the suite
    assert runs == [
        "uv sync --locked --no-install-project",
        "uv run --locked inv doctor --install",
        "uv run --locked inv dev.test",
    ]
