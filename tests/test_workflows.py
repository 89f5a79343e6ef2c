"""GitHub Actions workflows: everything through inv, pinned, least privilege, zizmor clean."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tasks.lib.tools.runner import find_tool

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses: (\S+) # v\d+(\.\d+)*\s*$")
EXPECTED = {"lint", "test", "validate", "e2e", "renovate", "label-sync", "labeler", "release"}


def load(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_the_workflows_the_seed_lists_exist() -> None:
    assert {p.stem for p in WORKFLOWS} == EXPECTED


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_calls_inv(path: Path) -> None:
    for step in steps(load(path)):
        if "run" in step:
            assert re.match(r"^uv run --locked inv( --dry)? [\w.-]+", step["run"]), step["run"]
            assert "${{" not in step["run"], "expressions belong in env:, never in run:"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_sha_with_a_version_comment(path: Path) -> None:
    lines = [line for line in path.read_text().splitlines() if re.search(r"^\s*(- )?uses: ", line)]
    for step in steps(load(path)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), step["uses"]
    for line in lines:
        assert VERSION_COMMENT.search(line), line


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_permissions_and_concurrency(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}, "default to no permissions at the top"
    assert "group" in workflow["concurrency"]
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{name}: declare the permissions the job needs"
        assert job.get("timeout-minutes"), f"{name}: set timeout-minutes"
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_zizmor_clean_offline() -> None:
    zizmor = find_tool("zizmor")
    assert zizmor, "zizmor is a project dependency"
    result = subprocess.run(
        [zizmor, "--offline", "--no-progress", "--persona", "pedantic", ".github/workflows"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_labeler_labels_exist() -> None:
    labels = {entry["name"] for entry in load(ROOT / ".github" / "labels.yaml")}
    assert set(load(ROOT / ".github" / "labeler.yaml")) <= labels
