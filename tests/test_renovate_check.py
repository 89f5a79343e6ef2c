"""inv lint.renovate: the workflow's Renovate version, its validator, its extraction log."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.lib import renovate as rv

ROOT = Path(__file__).resolve().parent.parent


def node_ok(version: str) -> bool:
    node = shutil.which("node")
    if node is None:
        return False
    found = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
    return rv.node_satisfies(found.strip(), rv.node_engine(version))


VERSION = rv.workflow_version(ROOT)
MISE_NODE = re.search(r'^"node" = "(.+)"$', (ROOT / ".mise.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]
CACHE = rv.cache_root()  # the user's, read before the tests point XDG_CACHE_HOME elsewhere


@pytest.mark.slow
@pytest.mark.skipif(
    not (rv.is_installed(VERSION) and node_ok(VERSION)),
    reason=f"Renovate {VERSION} not installed (inv lint.renovate installs it) or Node.js too old",
)
def test_the_workflows_renovate_accepts_our_config_and_finds_each_dependency_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real thing: the pinned release's strict validator and its offline extraction,
    on a copy of the repository's tracked files."""
    monkeypatch.setattr(rv, "cache_root", lambda: CACHE)
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        if (ROOT / name).is_file() and not name.startswith("tests/"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=tmp_path, check=True)
    checked = subprocess.run(rv.validator_argv(VERSION), cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    env = {**os.environ, **rv.extract_env(tmp_path / ".renovate")}
    out = subprocess.run(rv.extract_argv(VERSION), cwd=tmp_path, env=env, capture_output=True, text=True)
    deps = rv.extracted(out.stdout.splitlines())
    assert out.returncode == 0 and deps, rv.log_problems(out.stdout.splitlines())
    assert rv.duplicates(deps) == []
    names = {(d.manager, d.name) for d in deps}
    assert ("github-actions", "ghcr.io/renovatebot/renovate") in names  # the pinned release itself
    assert ("github-actions", "astral-sh/uv") in names and ("regex", "uv") in names
    assert ("helmfile", "ghcr.io/home-operations/charts-mirror/cilium") in names


def test_without_re2_renovate_is_told_to_skip_it_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rv, "cache_root", lambda: tmp_path)
    assert rv.run_env("1.2.3") == {"RENOVATE_X_IGNORE_RE2": "true"}
    (rv.install_dir("1.2.3") / "node_modules" / "re2").mkdir(parents=True)
    assert rv.run_env("1.2.3") == {}


def test_install_goes_exactly_to_the_version_asked(tmp_path: Path) -> None:
    argv = rv.install_argv("44.121.2", tmp_path)
    assert argv[:2] == ["npm", "install"] and argv[-1] == "renovate@44.121.2"
    assert argv[argv.index("--prefix") + 1] == str(tmp_path)


def test_dry_run_shows_the_install_and_the_checks_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke import Config, Context

    from tasks import lint

    monkeypatch.setattr(rv, "cache_root", lambda: tmp_path / "cache")
    c = Context(Config(overrides={"run": {"dry": True}, "home_ops": {"root": str(ROOT)}}))
    lint.renovate(c, extract=True)
    out = capsys.readouterr().out
    assert f"npm install --no-audit --no-fund --loglevel=error --prefix {tmp_path}/cache/{VERSION}" in out
    assert "renovate-config-validator --strict --no-global .renovaterc.json5" in out
    assert "renovate --platform=local --dry-run=extract" in out
    assert not (tmp_path / "cache").exists()


def test_without_node_it_names_the_pinned_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke import Config, Context

    from tasks import lint
    from tests.conftest import exit_code

    monkeypatch.setattr(rv, "cache_root", lambda: tmp_path / "cache")
    monkeypatch.setattr(lint, "find_tool", lambda name: None)
    c = Context(Config(overrides={"home_ops": {"root": str(ROOT)}}))
    assert exit_code(lambda: lint.renovate(c)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Renovate {VERSION} needs Node.js (any), found none: install Node.js ")
    assert "(pinned in .mise.toml) with `mise install` (nothing was downloaded)" in err
    assert not (tmp_path / "cache").exists()


def test_an_old_node_is_named_before_anything_is_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_tools
) -> None:
    """The registry's few bytes (``npm view renovate@V engines.node``) decide, not 341 MB."""
    from invoke import Config, Context

    from tasks import lint
    from tests.conftest import exit_code
    from tests.fakes import ok

    monkeypatch.setattr(rv, "cache_root", lambda: tmp_path / "cache")
    fake_tools.install("node", "npm")
    fake_tools.script("node", (None, ok("v20.20.2\n")))
    fake_tools.script("npm", ("view", ok('"^24.11.0"\n')), ("install", ok("")))
    c = Context(Config(overrides={"home_ops": {"root": str(ROOT)}}))
    assert exit_code(lambda: lint.renovate(c)) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"Renovate {VERSION} needs Node.js ^24.11.0, found v20.20.2: install Node.js "
        f"{MISE_NODE} (pinned in .mise.toml) with `mise install` (nothing was downloaded)"
    )
    assert [call.argv[0] for call in fake_tools.calls("npm")] == ["view"]
    assert not (tmp_path / "cache").exists()
