"""Shared fixtures: a temporary copy of the repository and fake cluster tools."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from invoke import Config, Context
from invoke.exceptions import Exit

from tasks.lib import selftest
from tasks.lib.tools.runner import observe
from tests import scripted
from tests.fakes import FakeTools
from tests.scripted import Reply
from tests.tools_contract import TOOLS_DIR, real_tool  # before the tests' isolation moves HOME_OPS_TOOLS_DIR

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_OPERATOR = ROOT / "tests" / "fixtures" / "example-operator"
#: The bundled example's inputs as the tests know them (cluster.sops.yaml encrypted to the
#: test-only key). The copies at the repository root are the user's to change: `inv init`
#: re-encrypts cluster.sops.yaml to the user's key, and the user edits the rest.
EXAMPLE_INPUTS = ROOT / "tests" / "fixtures" / "example"
EXAMPLE_INPUT_FILES = ("cluster.yaml", "nodes.yaml", "cluster.sops.yaml")
#: What configure renders from them (never copied from the work tree: rendered per session).
RENDERED_ITEMS = ("kubernetes", "talos", "bootstrap", ".sops.yaml", ".configure-manifest.json")

#: The code a temporary repository copies from this checkout (tasks/ included, so `inv` run
#: inside it resolves its own root). Never operator files, never rendered output.
CODE_ITEMS = (
    "tasks",
    "templates",
    "makejinja.toml",
    ".mise.toml",
    ".gitignore",
    "pyproject.toml",
    ".gitleaks.toml",
    "tests/fixtures/example-operator",
)
#: Everything a temporary repository holds.
REPO_ITEMS = (*CODE_ITEMS, *EXAMPLE_INPUT_FILES, *RENDERED_ITEMS)


def copy_items(source: Path, destination: Path, items: tuple[str, ...]) -> None:
    for item in items:
        origin = source / item
        target = destination / item
        if origin.is_dir():
            shutil.copytree(
                origin, target, ignore=shutil.ignore_patterns("__pycache__", "clusterconfig"), symlinks=True
            )
        elif origin.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


#: The environment the test session started with (before any test put fakes on PATH).
SESSION_ENV = dict(os.environ)


@contextlib.contextmanager
def example_environment() -> Iterator[None]:
    """The session's own environment with the test-only keys selected, whatever the running
    test has changed (fake tools on PATH, ...); restored afterwards."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(SESSION_ENV)
    for name in ("KUBECONFIG", "SOPS_AGE_KEY_FILE", "SOPS_CONFIG", "TALOSCONFIG"):
        os.environ.pop(name, None)
    os.environ["HOME_OPS_OPERATOR_DIR"] = str(EXAMPLE_OPERATOR)
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # no compiled modules in the copies (see _isolated_env)
    if "XDG_CACHE_HOME" in saved:  # the session's template cache, not ~/.cache
        os.environ["XDG_CACHE_HOME"] = saved["XDG_CACHE_HOME"]
    os.environ["PATH"] = f"{SESSION_ENV.get('PATH', '')}{os.pathsep}{Path(sys.executable).parent}"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@functools.cache
def example_source() -> Path:
    """The bundled example, rendered once per test process from the fixture inputs and the
    test-only key by the configure pipeline of this checkout, in a temporary directory."""
    from tasks.lib.config import configure as pipeline
    from tasks.lib.paths import repo_paths

    source = Path(tempfile.mkdtemp(prefix="home-ops-example-"))
    atexit.register(shutil.rmtree, source, ignore_errors=True)
    copy_items(ROOT, source, CODE_ITEMS)
    copy_items(EXAMPLE_INPUTS, source, EXAMPLE_INPUT_FILES)
    with example_environment():
        pipeline.configure(repo_paths(source), pipeline.Options(say=lambda line: None))
    return source


def copy_repo(destination: Path) -> Path:
    """A copy of the bundled example (code of this checkout, inputs from the fixtures, the
    tree rendered from them): what a fresh clone holds, whatever the work tree holds now."""
    destination.mkdir(parents=True, exist_ok=True)
    copy_items(example_source(), destination, REPO_ITEMS)
    return destination


def with_config(repo: Path, directory: Path) -> Path:
    """The repository copy with a test configuration's files (its own secrets, when it has
    them; else the example's stay)."""
    for name in (*selftest.CONFIG_FILES, selftest.SECRETS_FILE):
        if (directory / name).is_file():
            shutil.copy(directory / name, repo / name)
    return repo


@pytest.fixture(scope="session")
def _cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _scripted_commands() -> Iterator[None]:
    """Commands of a ``tests.scripted`` context are answered by its script (only while the
    test that made it runs)."""
    with observe(scripted.answer):
        yield
    scripted.ACTIVE.clear()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, _cache_home: Path) -> None:
    """No test sees the developer's own kubeconfig, age key, talosconfig or installed
    .tools/bin, and the tools installed next to this Python (sops, kubectl, yamlfmt) are found
    without activation."""
    for name in ("KUBECONFIG", "SOPS_AGE_KEY_FILE", "SOPS_CONFIG", "TALOSCONFIG", "HOME_OPS_OPERATOR_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(_cache_home))  # compiled templates: not in ~/.cache
    # `inv` compiles the modules it loads, like any Python program: not into the copies of
    # the repository the tests compare before and after a run.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    # Tools built by `inv doctor --install` are seen only by the contract tests (test_tools_*),
    # so every other test meets exactly the tools it sets up.
    monkeypatch.setenv("HOME_OPS_TOOLS_DIR", str(_cache_home / "no-tools"))
    # Nor on PATH, where a developer may have put it.
    tools = TOOLS_DIR.resolve()
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if not _same_dir(entry, tools)]
    scripts = str(Path(sys.executable).parent)
    if scripts not in path:
        path.append(scripts)
    monkeypatch.setenv("PATH", os.pathsep.join(path))


def _same_dir(entry: str, folder: Path) -> bool:
    try:
        return bool(entry) and Path(entry).resolve() == folder
    except OSError:
        return False


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


@pytest.fixture
def gitleaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The real gitleaks (what `inv doctor --install` builds) on PATH for this test: the
    secret guard needs it. Missing, the test skips (in CI, where it is built first, fails)."""
    exe = real_tool("gitleaks")
    directory = tmp_path / "gitleaks-bin"
    directory.mkdir(exist_ok=True)
    (directory / "gitleaks").symlink_to(exe)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
    return exe


def rewrite_secrets(repo: Path, change: Callable[[str], str]) -> None:
    """Decrypt ``repo``'s cluster.sops.yaml (the test-only key), apply ``change`` to the
    plaintext and encrypt it back in place, with the real sops and no plaintext file."""
    from tasks.lib.secrets.sopsfile import encrypt_argv

    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(EXAMPLE_OPERATOR / "age.key")}

    def sops(argv: list[str], stdin: str | None = None) -> str:
        return subprocess.run(
            argv, cwd=repo, env=env, input=stdin, capture_output=True, text=True, check=True
        ).stdout

    plain = sops(["sops", "--decrypt", "cluster.sops.yaml"])
    (repo / "cluster.sops.yaml").write_text(sops(encrypt_argv("cluster.sops.yaml"), change(plain)))


def replace_in(path: Path, *replacements: tuple[str, str]) -> None:
    """Edit ``path`` as a user would by hand: each ``(old, new)``, once; ``old`` must be there."""
    text = path.read_text()
    for old, new in replacements:
        assert old in text, (path.name, old)
        text = text.replace(old, new, 1)
    path.write_text(text)


def gen(*commands: str) -> Reply:
    """What ``talhelper gencommand`` prints: one talosctl command per line, ``;``-terminated."""
    return Reply(stdout="".join(f"{command};\n" for command in commands))


def exit_code(call: object) -> int:
    """The exit code a task ends with (through ``@friendly``)."""
    with pytest.raises(Exit) as error:
        call()  # type: ignore[operator]
    return error.value.code


# Speed is measured by the benchmarks under scripts/, not by per-example deadlines, which
# only turn a loaded CI machine into flaky failures.
settings.register_profile("home-ops", deadline=None)
settings.load_profile("home-ops")
