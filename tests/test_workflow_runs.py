"""Green from the first push: every ``run:`` step of every workflow job, run the way GitHub
Actions would run it, on a fresh clone of this checkout's committed files — a user's first
pull request (a change under kubernetes/ only). A step's ``if:``, its ``env:`` (with the
expressions the workflows use), the step outputs and the job summary are honoured; a step that
exits non-zero fails the test. Actions other than checkout, setup-uv and cache are not run
(their ``run:`` neighbours are), and a job that cannot run here says why it is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tasks.lib import renovate as rv
from tests.conftest import ROOT, git
from tests.tools_contract import TOOLS_DIR

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))
#: Actions the runner provides here itself: the clone is checked out, inv is on PATH.
PROVIDED = ("actions/checkout@", "astral-sh/setup-uv@", "actions/cache@")
INV_PREFIX = "uv run --locked inv "
#: The install step: this test's environment is that install already.
INSTALL = "uv sync --locked --no-install-project"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
COMPARISON = re.compile(r"^([\w.-]+)\s*(==|!=)\s*(?:'([^']*)'|([\w.-]+))$")


@dataclass
class Run:
    """What one job sees: the event, the outputs of earlier steps and jobs, the summary."""

    repo: Path
    github: dict[str, Any]
    scratch: Path
    steps: dict[str, dict[str, str]] = field(default_factory=dict)
    needs: dict[str, dict[str, str]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def lookup(self, name: str) -> str:
        parts = name.split(".")
        roots: dict[str, Any] = {
            "github": self.github,
            "steps": {k: {"outputs": v} for k, v in self.steps.items()},
            "needs": {k: {"outputs": v} for k, v in self.needs.items()},
            "secrets": {},
            "vars": {},
            "runner": {"os": "Linux", "temp": str(self.scratch)},
        }
        if parts[0] not in roots:
            raise AssertionError(f"the test does not know the context {parts[0]!r} ({name}): teach it")
        value: Any = roots[parts[0]]
        for part in parts[1:]:
            value = value.get(part, "") if isinstance(value, dict) else ""
        return "" if value is None else str(value)

    def evaluate(self, expression: str) -> str:
        """The expressions the workflows use: ``a || b`` of context paths, ``x == 'lit'``."""
        expression = expression.strip()
        if match := COMPARISON.match(expression):
            right = match[3] if match[3] is not None else self.lookup(match[4])
            equal = self.lookup(match[1]) == right
            return "true" if equal == (match[2] == "==") else "false"
        options = [part.strip() for part in expression.split("||")]
        if not all(re.fullmatch(r"[\w.-]+", option) for option in options):
            raise AssertionError(f"the test cannot evaluate ${{{{ {expression} }}}}: teach it")
        return next((value for option in options if (value := self.lookup(option))), "")

    def expand(self, text: str) -> str:
        return EXPRESSION.sub(lambda m: self.evaluate(m[1]), text)

    def condition(self, expression: str | None) -> bool:
        if expression is None:
            return True
        inner = EXPRESSION.fullmatch(expression.strip())
        return self.evaluate(inner[1] if inner else expression) == "true"


def load(path: Path) -> dict[str, Any]:
    return YAML(typ="safe").load(path.read_text())


def fresh_clone(tmp_path: Path) -> Path:
    """``git clone`` of a repository made from this checkout's committed files."""
    origin = tmp_path / "origin"
    origin.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(origin)], input=archive, check=True)
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "the template")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    return clone


def a_users_pull_request(clone: Path) -> dict[str, Any]:
    """A branch that changes one app under kubernetes/ (a label): what the event says."""
    base = git(clone, "rev-parse", "HEAD").strip()
    git(clone, "checkout", "-q", "-b", "my-change")
    namespace = next((clone / "kubernetes" / "apps").glob("*/namespace.yaml"))
    text = namespace.read_text()
    assert "  labels:\n" not in text
    namespace.write_text(text.replace("metadata:\n", "metadata:\n  labels:\n    owner: me\n", 1))
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "my change")
    return {
        "event_name": "pull_request",
        "base_ref": "main",
        "repository": "someone/home-ops",
        "event": {
            "before": "",
            "pull_request": {"base": {"sha": base}, "head": {"repo": {"full_name": "someone/home-ops"}}},
        },
    }


def renovate_can_run() -> str:
    """Why the Renovate check cannot run here ("" when it can): it needs the Renovate
    release installed (341 MB from npm) and the Node.js it supports."""
    version = rv.workflow_version(ROOT)
    node = shutil.which("node")
    if not rv.is_installed(version):
        return f"Renovate {version} is not installed here (inv lint.renovate installs it from npm)"
    found = (
        subprocess.run([node or "node", "--version"], capture_output=True, text=True).stdout if node else ""
    )
    if not rv.node_satisfies(found.strip(), rv.node_engine(version)):
        return f"Node.js {found.strip() or 'none'} here, Renovate {version} needs {rv.node_engine(version)}"
    return ""


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A workflow ``paths:`` glob as GitHub reads it: ``**`` any characters, ``*`` any but
    ``/``, ``?`` one character."""
    parts = re.split(r"(\*\*|\*|\?)", glob)
    wild = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(part, re.escape(part)) for part in parts) + r"\Z")


def pull_request_matches(trigger: dict[str, Any] | None, clone: Path, github: dict[str, Any]) -> bool:
    """Whether GitHub would start the workflow for the pull request: no ``paths:`` filter,
    or a file it changes matches one of the globs."""
    globs = (trigger or {}).get("paths")
    if not globs:
        return True
    base = github["event"]["pull_request"]["base"]["sha"]
    changed = git(clone, "diff", "--name-only", f"{base}...HEAD").split()
    return any(glob_pattern(glob).match(name) for glob in globs for name in changed)


#: Jobs that cannot run on this machine, and why (checked, not assumed).
def unrunnable(workflow: str, job: str) -> str:
    if (workflow, job) == ("lint", "renovate"):
        return renovate_can_run()
    return ""


def run_job(run: Run, workflow: dict[str, Any], job_id: str, job: dict[str, Any]) -> dict[str, str]:
    """Every step of one job, in order; returns the job's outputs."""
    env_base = {**os.environ, **{k: run.expand(str(v)) for k, v in (workflow.get("env") or {}).items()}}
    env_base.update({k: run.expand(str(v)) for k, v in (job.get("env") or {}).items()})
    run.steps = {}
    for index, step in enumerate(job.get("steps", [])):
        step_id = step.get("id", f"step{index}")
        if not run.condition(step.get("if")):
            run.log.append(f"{job_id}: skip {step.get('name')} (if: {step.get('if')})")
            continue
        if "uses" in step:
            provided = str(step["uses"]).startswith(PROVIDED)
            run.log.append(f"{job_id}: {'provided' if provided else 'not run'}: {step['uses']}")
            continue
        if str(step["run"]).strip() == INSTALL:
            run.log.append(f"{job_id}: provided: {INSTALL}")
            continue
        outputs = run.scratch / f"{job_id}-{step_id}.out"
        outputs.write_text("")
        env = {**env_base, **{k: run.expand(str(v)) for k, v in (step.get("env") or {}).items()}}
        env.update(
            GITHUB_ACTIONS="true",
            CI="true",
            GITHUB_OUTPUT=str(outputs),
            GITHUB_STEP_SUMMARY=str(run.scratch / "summary.md"),
            RUNNER_TEMP=str(run.scratch),
            HOME_OPS_TOOLS_DIR=str(TOOLS_DIR),  # what `doctor --install` built, not rebuilt per test
            ZIZMOR_OFFLINE="true",
        )
        script = str(step["run"])
        assert script.startswith(INV_PREFIX), script
        command = f"{sys.executable} -m tasks {script[len(INV_PREFIX) :]}"
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command],
            cwd=run.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            stdin=subprocess.DEVNULL,
        )
        ok = result.returncode == 0 or step.get("continue-on-error") is True
        run.log.append(f"{job_id}: {'ok' if ok else 'FAILED'} (exit {result.returncode}): {script}")
        output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert ok, f"{job_id}: `{script}` exited {result.returncode}\n{output}"
        run.steps[step_id] = dict(
            line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line
        )
    return {k: run.expand(str(v)) for k, v in (job.get("outputs") or {}).items()}


@pytest.mark.slow
def test_every_run_step_passes_on_a_fresh_clone_of_a_users_first_pull_request(
    tmp_path: Path, gitleaks: str, capsys: pytest.CaptureFixture[str]
) -> None:
    clone = fresh_clone(tmp_path)
    github = a_users_pull_request(clone)
    ran: list[str] = []
    skipped: list[str] = []
    for path in WORKFLOWS:
        workflow = load(path)
        triggers = workflow.get("on", workflow.get(True)) or {}
        if "pull_request" not in triggers:
            continue
        if not pull_request_matches(triggers["pull_request"], clone, github):
            skipped.append(f"{path.stem}: the pull request touches none of its paths")
            continue
        scratch = tmp_path / "runner" / path.stem
        scratch.mkdir(parents=True)
        run = Run(clone, github, scratch)
        for job_id, job in workflow["jobs"].items():
            if not run.condition(job.get("if")):
                skipped.append(f"{path.stem}/{job_id}: if: {job.get('if')}")
                continue
            if reason := unrunnable(path.stem, job_id):
                skipped.append(f"{path.stem}/{job_id}: {reason}")
                continue
            run.needs[job_id] = run_job(run, workflow, job_id, job)
            ran.append(f"{path.stem}/{job_id}")
        print("\n".join(run.log))
    print("skipped:", *skipped, sep="\n  ")
    # The user's pull request touched kubernetes/ only: validation ran, the template's own
    # suite and end-to-end runs reported and skipped their work.
    assert {"lint/lint", "validate/validate", "validate/diff", "test/test", "e2e/e2e"} <= set(ran)
    log = capsys.readouterr().out
    assert "validate: ok (exit 0): uv run --locked inv dev.validate" in log
    assert "test: skip Test suite" in log and "e2e: skip Every configuration" in log
    assert "cluster-test: the pull request touches none of its paths" in skipped, "it boots VMs"
    assert git(clone, "status", "--porcelain") == "", "a workflow step changed the checkout"


@pytest.mark.slow
def test_sops_check_passes_on_a_fresh_clone_and_after_init_configure(tmp_path: Path, gitleaks: str) -> None:
    clone = fresh_clone(tmp_path)
    env = {**os.environ, "HOME_OPS_TOOLS_DIR": str(TOOLS_DIR)}
    env.pop("HOME_OPS_OPERATOR_DIR", None)

    def inv(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tasks", *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    first = inv("sops.check")
    assert first.returncode == 0, first.stdout + first.stderr
    made = inv("init", "configure")
    assert made.returncode == 0, made.stdout + made.stderr
    again = inv("sops.check")
    assert again.returncode == 0, again.stdout + again.stderr
    git(clone, "add", "-A")
    staged = git(clone, "diff", "--cached", "--name-only").split()
    assert "age.key" not in staged and "cluster.sops.yaml" in staged  # re-encrypted to the new key


def test_a_paths_glob_is_read_as_github_reads_it() -> None:
    assert glob_pattern("tasks/**").match("tasks/lib/clustertest/plan.py")
    assert glob_pattern(".github/*.yaml").match(".github/talos-cluster.yaml")
    assert not glob_pattern(".github/*.yaml").match(".github/workflows/test.yaml")
    assert not glob_pattern("talos/**").match("kubernetes/talos/x.yaml")
