"""Shared fixtures: a temporary copy of the repository and fake cluster tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings
from invoke import Config, Context, Result
from invoke.exceptions import Exit

from tests.fakes import FakeTools

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_OPERATOR = ROOT / "tests" / "fixtures" / "example-operator"

#: What a temporary repository copies from this checkout (tasks/ included, so `inv` run
#: inside it resolves its own root).
REPO_ITEMS = (
    "tasks",
    "templates",
    "kubernetes",
    "talos",
    "bootstrap",
    "cluster.yaml",
    "nodes.yaml",
    "cluster.sops.yaml",
    ".sops.yaml",
    "makejinja.toml",
    ".mise.toml",
    ".configure-manifest.json",
    ".gitignore",
    "pyproject.toml",
    "tests/fixtures/example-operator",
)


@pytest.fixture(scope="session")
def _cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, _cache_home: Path) -> None:
    """No test sees the developer's own kubeconfig, age key or talosconfig, and the tools
    installed next to this Python (sops, kubectl, yamlfmt) are found without activation."""
    for name in ("KUBECONFIG", "SOPS_AGE_KEY_FILE", "SOPS_CONFIG", "TALOSCONFIG", "HOME_OPS_OPERATOR_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(_cache_home))  # compiled templates: not in ~/.cache
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        monkeypatch.setenv("PATH", f"{path}{os.pathsep}{scripts}")


def copy_repo(destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    for item in REPO_ITEMS:
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, destination / item, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists() and "/" in item:
            (destination / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / item)
        elif source.exists():
            shutil.copy2(source, destination / item)
    return destination


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def example_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding a copy of this one, committed, with the bundled example's
    test-only operator keys selected."""
    repo = copy_repo(tmp_path / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    return repo


@pytest.fixture
def repo_context(example_repo: Path) -> Context:
    """An Invoke context whose tasks operate on ``example_repo``."""
    return Context(config=Config(overrides={"home_ops": {"root": str(example_repo)}}))


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    """Fake talosctl/talhelper/kubectl/helmfile/flux/helm first on PATH (install more with
    ``fake_tools.install(name)``)."""
    fakes = FakeTools(tmp_path / "fakebin").install(
        "talosctl", "talhelper", "kubectl", "helmfile", "flux", "helm"
    )
    monkeypatch.setenv("PATH", fakes.path_env())
    return fakes


def gen(*commands: str) -> Result:
    """What ``talhelper gencommand`` prints: one talosctl command per line, ``;``-terminated."""
    return Result(stdout="".join(f"{command};\n" for command in commands))


def exit_code(call: object) -> int:
    """The exit code a task ends with (through ``@friendly``)."""
    with pytest.raises(Exit) as error:
        call()  # type: ignore[operator]
    return error.value.code


# Speed is measured by the benchmarks under scripts/, not by per-example deadlines, which
# only turn a loaded CI machine into flaky failures.
settings.register_profile("home-ops", deadline=None)
settings.load_profile("home-ops")
