"""The command line as a user meets it: `inv` in a real process, in a copy of the example.

- a closed pipe (`inv TASK | head -1`) is never an internal error, for every read-only task
  and every task under `--dry`;
- `--dry` says what it would do and never claims that something happened;
- `--force` is `-f` in every task that has it;
- a bare `inv` lists the tasks and a mistyped task gets the nearest name.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tasks
from tests.conftest import EXAMPLE_OPERATOR, ROOT, copy_repo, git
from tests.fakes import FakeTools
from tests.test_guard import all_tasks

TASKS = dict(all_tasks(tasks.ns))

#: The arguments each task needs to get past its own checks under --dry.
DRY_ARGS: dict[str, list[str]] = {name: [] for name in TASKS}
DRY_ARGS.update(
    {
        "app.new": [
            "demo",
            "--namespace",
            "default",
            "--chart",
            "oci://ghcr.io/example/charts/demo",
            "--version",
            "1.0.0",
        ],
        "ci.changed": ["--base", "HEAD", "--path", "kubernetes/"],
        "ci.summary": ["README.md"],
        "sops.decrypt": ["cluster.sops.yaml"],
        "sops.edit": ["cluster.sops.yaml"],
        "talos.discover": ["--ip", "192.168.1.50"],
        "talos.reset-node": ["--node", "k8s-0"],
    }
)

#: Tasks that change nothing, run for real.
READ_ONLY = [
    ["--list"],
    ["--help", "configure"],
    ["configure", "--check"],
    ["sops.check"],
    ["sops.decrypt", "cluster.sops.yaml"],
    ["dev.validate"],
    ["doctor"],
    ["ci.summary", "README.md"],
    ["flux.status"],
    ["lint.yaml"],
]


#: What the lint tasks check, besides the code copy_repo takes.
LINTED = (".pre-commit-config.yaml", ".yamlfmt.yaml", ".renovaterc.json5", ".github", "scripts", "tests")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("cli") / "repo")
    for name in LINTED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, root / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(source, root / name)
    (root / "README.md").write_text("# demo\n" + "".join(f"line {n}\n" for n in range(5000)))
    (root / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.fixture
def env(tmp_path: Path, fake_tools: FakeTools) -> dict[str, str]:
    return {**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR)}


def piped(repo: Path, env: dict[str, str], args: list[str]) -> tuple[int, str]:
    """`inv ARGS | head -1` in a shell: inv's own exit code and its stderr."""
    inv = shlex.join([sys.executable, "-m", "tasks", *args])
    script = f"{inv} 2>stderr.txt | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", script], cwd=repo, env=env, timeout=600, check=False)
    stderr = (repo / "stderr.txt").read_text()
    (repo / "stderr.txt").unlink()
    return done.returncode, stderr


def inv(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tasks", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )


def test_every_task_has_its_dry_arguments() -> None:
    assert set(DRY_ARGS) == set(TASKS)


@pytest.mark.slow
@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_task_into_head_is_never_an_internal_error(
    repo: Path, env: dict[str, str], args: list[str]
) -> None:
    code, stderr = piped(repo, env, args)
    assert code in (0, 1, 141), stderr
    assert "internal error" not in stderr and "Traceback" not in stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_under_dry_into_head_is_never_an_internal_error(
    repo: Path, env: dict[str, str], name: str
) -> None:
    code, stderr = piped(repo, env, ["--dry", name, *DRY_ARGS[name]])
    assert code in (0, 1, 141), stderr
    assert "internal error" not in stderr and "Traceback" not in stderr


#: Tasks whose own checks stop them in this copy even under --dry, with the reason.
REFUSED_EVEN_DRY = {
    "dev.start": "on main, the default branch: Flux already follows it",
    "dev.stop": "the fake cluster has no FluxInstance",
    "doctor": "tools are missing here (gitleaks, talosctl): doctor says so with exit 1",
    "sops.check": "gitleaks is not installed for the tests",
    "talos.generate-config": "the example has no Talos secrets yet (bootstrap.talos creates them)",
    "talos.reset-node": "the example's one node is its only controller (talos.reset resets the cluster)",
}

#: What only a run that did something may say.
CLAIMS = re.compile(
    r"\b(passed|installed|created|wrote|written|applied|rotated|imported|synced|reset|upgraded|done)\b",
    re.IGNORECASE,
)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TASKS))
def test_dry_says_would_and_claims_nothing(repo: Path, env: dict[str, str], name: str) -> None:
    done = inv(repo, env, "--dry", name, *DRY_ARGS[name])
    assert done.returncode == 0 or name in REFUSED_EVEN_DRY, done.stderr
    for line in done.stdout.splitlines():
        if "would" in line or line.startswith(("cd ", "#")) or "|" in line:
            continue  # what would run, as commands or as "would ..."
        assert not CLAIMS.search(line), f"--dry {name}: {line!r}"


def test_force_is_f_in_every_task_that_has_it() -> None:
    with_force = {
        name: task for name, task in TASKS.items() if any(a.name == "force" for a in task.get_arguments())
    }
    assert {"configure", "init"} <= set(with_force)
    for name, task in with_force.items():
        (force,) = [arg for arg in task.get_arguments() if arg.name == "force"]
        assert "f" in force.names, f"{name}: --force is {force.names}"


def test_a_bare_inv_lists_the_tasks(repo: Path, env: dict[str, str]) -> None:
    done = inv(repo, env)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("Available tasks:") and "configure" in done.stdout


def test_a_mistyped_task_gets_the_nearest_name(repo: Path, env: dict[str, str]) -> None:
    done = inv(repo, env, "confgure")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "No idea what 'confgure' is! Did you mean 'configure'?\n"
    done = inv(repo, env, "validate")
    assert done.stderr == "No idea what 'validate' is! Did you mean 'dev.validate'?\n"
