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
EXPECTED = {"lint", "test", "validate", "e2e", "renovate", "label-sync", "labeler", "release", "cluster-test"}


def load(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_the_workflows_the_seed_lists_exist() -> None:
    assert {p.stem for p in WORKFLOWS} == EXPECTED


#: The one run: step that is not `inv`: the dependencies before the project, so that the
#: project's `inv` replaces the one Invoke installs (uv does not order two same-named scripts).
INSTALL = "uv sync --locked --no-install-project"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_calls_inv(path: Path) -> None:
    for job in load(path)["jobs"].values():
        runs = [step["run"] for step in job.get("steps", []) if "run" in step]
        if not runs:
            continue
        assert runs[0] == INSTALL, "the job installs the dependencies first, then runs `inv`"
        for run in runs[1:]:
            assert re.match(r"^uv run --locked inv( --dry)? [\w.-]+", run), run
            assert "${{" not in run, "expressions belong in env:, never in run:"


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


# Forks, required checks, caches, pins ----------------------------------------------------
FROM_THIS_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository"
MISE = (ROOT / ".mise.toml").read_text()


def workflow(name: str) -> dict:
    return load(ROOT / ".github" / "workflows" / f"{name}.yaml")


def triggers(data: dict) -> dict:
    # YAML 1.1 readers turn the key `on` into True
    return data.get("on", data.get(True))


def test_validate_runs_on_every_pull_request_and_skips_the_work_when_kubernetes_is_untouched() -> None:
    data = workflow("validate")
    assert triggers(data) == {"pull_request": None}, "no paths: filter, a required check always reports"
    job = data["jobs"]["validate"]
    (probe,) = [s for s in job["steps"] if "ci.changed" in s.get("run", "")]
    assert "--path kubernetes/" in probe["run"]
    assert job["outputs"]["kubernetes"] == f"${{{{ steps.{probe['id']}.outputs.kubernetes }}}}"
    (work,) = [s for s in job["steps"] if "dev.validate" in s.get("run", "")]
    assert work["if"] == f"steps.{probe['id']}.outputs.kubernetes == 'true'"
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0, "ci.changed diffs against the base branch"
    assert data["jobs"]["diff"]["if"] == "needs.validate.outputs.kubernetes == 'true'"


def test_writing_steps_are_skipped_on_forks_and_the_diff_still_shows_in_the_summary() -> None:
    diff = workflow("validate")["jobs"]["diff"]["steps"]
    comment = next(s for s in diff if s.get("uses", "").startswith("actions/github-script@"))
    assert comment["if"] == FROM_THIS_REPOSITORY
    names = [s.get("run", "") for s in diff]
    made = next(i for i, r in enumerate(names) if "dev.diff" in r and "--output-file" in r)
    shown = next(i for i, r in enumerate(names) if "ci.summary" in r)
    assert made < shown and "if" not in diff[shown], "the summary shows on forks too"
    output_file = diff[made]["run"].split("--output-file ", 1)[1].split()[0]
    assert output_file in diff[shown]["run"]
    labeler = workflow("labeler")["jobs"]["labeler"]
    assert labeler["if"] == FROM_THIS_REPOSITORY
    assert labeler["permissions"]["pull-requests"] == "write"


def every_step_using(prefix: str) -> list[dict]:
    return [s for path in WORKFLOWS for s in steps(load(path)) if str(s.get("uses", "")).startswith(prefix)]


def test_uv_and_python_are_pinned_in_every_workflow_like_ci_and_mise() -> None:
    uv_ci = re.search(r"\buv==(\S+)", (ROOT / ".ci" / "run").read_text())
    python = re.search(r'^"python" = "(.+)"$', MISE, re.M)
    assert uv_ci and python
    uses = every_step_using("astral-sh/setup-uv@")
    assert uses
    for step in uses:
        assert step["with"]["version"] == uv_ci.group(1)
        assert step["with"]["python-version"] == python.group(1)
        assert step["with"]["enable-cache"] is True, "uv's cache is kept between runs"


def test_node_for_the_renovate_check_is_the_mise_pin() -> None:
    node = re.search(r'^"node" = "(.+)"$', MISE, re.M)
    (step,) = every_step_using("actions/setup-node@")
    assert node and step["with"]["node-version"] == node.group(1)


def test_pre_commit_hooks_and_renovate_are_cached_by_what_decides_their_contents() -> None:
    jobs = workflow("lint")["jobs"]
    caches = {
        s["with"]["path"]: s["with"]["key"]
        for s in jobs["lint"]["steps"] + jobs["renovate"]["steps"]
        if str(s.get("uses", "")).startswith("actions/cache@")
    }
    assert "hashFiles('.pre-commit-config.yaml'" in caches["~/.cache/pre-commit"]
    assert "hashFiles('.github/workflows/renovate.yaml')" in caches["~/.cache/home-ops/renovate"]
    lint_steps = [s.get("name") for s in jobs["lint"]["steps"]]
    assert lint_steps.index("Cache pre-commit hooks") < lint_steps.index("Lint")


def test_renovate_runs_a_pinned_renovate_that_the_lint_workflow_checks() -> None:
    from tasks.lib.renovate import workflow_version

    version = workflow_version(ROOT)
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "a full version: the check installs exactly this"
    assert int(version.split(".")[0]) >= 41, "managerFilePatterns needs Renovate 41 or later"
    (check,) = [s for s in workflow("lint")["jobs"]["renovate"]["steps"] if "inv" in s.get("run", "")]
    assert check["run"].endswith("inv lint.renovate --extract")


def test_the_cluster_test_runs_nightly_by_hand_and_on_what_makes_a_cluster() -> None:
    on = triggers(workflow("cluster-test"))
    assert set(on) == {"workflow_dispatch", "schedule", "pull_request"}
    assert re.fullmatch(r"\d+ \d+ \* \* \*", on["schedule"][0]["cron"]), "once a day"
    for folder in ("templates", "talos", "bootstrap", "tasks"):
        assert f"{folder}/**" in on["pull_request"]["paths"]


def test_the_cluster_test_boots_what_dev_cluster_test_expects() -> None:
    """The action's VMs are the ones `inv dev.cluster-test --controlplanes 1 --workers 1`
    would boot itself (network, counts, memory, maintenance mode), and the test step hands
    their addresses over controllers first."""
    from tasks.lib.clustertest import plan

    job = workflow("cluster-test")["jobs"]["cluster-test"]
    (boot,) = [s for s in job["steps"] if "talosctl-cluster-action@" in s.get("uses", "")]
    config = load(ROOT / boot["with"]["config"])["spec"]
    assert config["qemu"]["presets"] == plan.PRESETS.split(",")
    assert config["network"]["cidr"] == plan.DEFAULT_CIDR
    assert config["controlplanes"]["count"] == 1 and config["workers"]["count"] == 1
    mib = {"GiB": 1024, "MiB": 1}
    for role, memory in (("controlplanes", plan.CONTROLPLANE_MEMORY), ("workers", plan.WORKER_MEMORY)):
        number, unit = re.fullmatch(r"(\d+)(GiB|MiB)", memory).groups()  # type: ignore[union-attr]
        assert config[role]["memory"] == int(number) * mib[unit]
    assert boot["with"]["talosctl"].endswith("/.tools/bin/talosctl"), "the pinned talosctl doctor built"
    (test,) = [s for s in job["steps"] if "dev.cluster-test" in s.get("run", "")]
    assert test["env"]["CONTROLLERS"] == f"${{{{ steps.{boot['id']}.outputs.controlplane-ips }}}}"
    assert '--controlplanes 1 --nodes "${CONTROLLERS},${WORKERS}"' in test["run"]
    assert f"--cidr {plan.DEFAULT_CIDR}" in test["run"]
    names = [s.get("run", "") for s in job["steps"]]
    assert names.index("uv run --locked inv ci.install-qemu") < job["steps"].index(boot)
    (upload,) = [s for s in job["steps"] if "upload-artifact@" in s.get("uses", "")]
    assert upload["if"] == "failure()" and upload["with"]["path"].rstrip("/") == "cluster-test-diagnostics"
