"""`inv dev.e2e` (the operator's flow on test configurations, in scratch copies), its test
configurations, `inv dev.test`, and the workflows that run them."""

from __future__ import annotations

import ipaddress
import re
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


def test_the_choices_have_their_configurations() -> None:
    none = config_of("no-cloudflare")
    assert none.settings.dns_provider == "none" and none.settings.ingress_mode == "none"
    assert none.derived["spegel_enabled"] is False and len(none.nodes) == 3
    ssh = config_of("selfhosted-ssh")
    assert ssh.repository.ssh and ssh.repository.port == 2222 and ssh.settings.repository_webhook == "gitea"
    gitlab = config_of("gitlab-webhook")
    assert gitlab.settings.repository_webhook == "gitlab" and gitlab.settings.ingress_mode == "direct"


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
    report = selftest.summary_lines([result])
    assert report[1].split() == ["broken", "FAILED", "at", "`inv", "configure`"]
    assert report[-1] == "e2e: 0 of 1 configurations passed"
    assert git(repo_with_configs, "status", "--porcelain") == ""


def test_a_configuration_with_its_own_secrets_renders_with_them(
    repo_with_configs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gitleaks: str
) -> None:
    """no-cloudflare brings a cluster.sops.yaml without the Cloudflare secrets (the example's
    would be refused: not used without Cloudflare), encrypted to the test-only key."""
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(tmp_path / "someone-else"))
    paths = repo_paths(repo_with_configs)
    assert selftest.secrets_of(paths.root, selftest.TestConfig("bgp", CONFIGS / "bgp")) == (
        paths.root / selftest.EXAMPLE_SECRETS
    )
    result = selftest.run_config(
        paths,
        selftest.worktree_files(paths.root),
        selftest.TestConfig("no-cloudflare", CONFIGS / "no-cloudflare"),
        keep=False,
        say=lambda line: None,
    )
    assert result.ok, result.steps[-1].output
    assert [step.step for step in result.steps] == [selftest.step_label(s) for s in selftest.STEPS]
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


#: What the template's own jobs test: a change elsewhere (kubernetes/, the user's configs)
#: skips their work.
TEMPLATE_PATHS = {"tasks/", "templates/", "tests/", "pyproject.toml", "uv.lock", ".mise.toml"}


def gate(job: dict) -> tuple[dict, list[dict]]:
    """The job's ci.changed step and the steps it gates."""
    (probe,) = [s for s in job["steps"] if "inv ci.changed" in s.get("run", "")]
    paths = set(re.findall(r"--path (\S+)", probe["run"]))
    assert paths >= TEMPLATE_PATHS and "kubernetes/" not in paths
    after = job["steps"][job["steps"].index(probe) + 1 :]
    return probe, after


def test_the_e2e_job_renders_every_configuration_with_the_test_key_when_the_template_changed() -> None:
    e2e = workflow("e2e.yaml")
    (job,) = e2e["jobs"].values()
    probe, after = gate(job)
    assert all(s["if"] == f"steps.{probe['id']}.outputs.template == 'true'" for s in after)
    runs = [s.get("run", "") for s in after]
    assert runs[-1] == "uv run --locked inv dev.e2e"  # no --config: every directory, none forgotten
    assert not any("inv init" in r or "configure" in r for r in runs), "never the user's secrets"
    assert "HOME_OPS_OPERATOR_DIR" not in str(e2e)  # dev.e2e picks the test-only key itself


def test_the_test_workflow_runs_the_suite_when_the_template_changed() -> None:
    test = workflow("test.yaml")
    triggers = test.get("on") or test.get(True)  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    (job,) = test["jobs"].values()
    probe, after = gate(job)
    assert all(s["if"] == f"steps.{probe['id']}.outputs.template == 'true'" for s in after)
    before = [step["run"] for step in job["steps"][: job["steps"].index(probe)] if "run" in step]
    assert before == ["uv sync --locked --no-install-project"]  # the project's inv, then the probe
    runs = [step["run"] for step in after if "run" in step]
    # the real tools first (their contract tests fail in CI without them), then the suite
    assert runs == ["uv run --locked inv doctor --install", "uv run --locked inv dev.test"]
