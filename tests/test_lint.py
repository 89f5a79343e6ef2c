"""inv lint: real pre-commit (hooks installed from PyPI, cached after the first run) on a
temporary git repository, and on this repository's committed files."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit
from ruamel.yaml import YAML

from tasks import lint
from tests.conftest import ROOT, git

#: What a repository needs for its hooks to run.
LINT_FILES = (
    ".pre-commit-config.yaml",
    ".yamlfmt.yaml",
    "scripts/precommit_hook.py",
    ".gitleaks.toml",
    "tasks/lib/__init__.py",
    "tasks/lib/boundary.py",
    "tasks/lib/errors.py",
    "tasks/lib/files.py",
    "tasks/lib/paths.py",
    "tasks/lib/problems.py",
    "tasks/lib/terminal.py",
    "tasks/lib/hygiene.py",
    "tasks/lib/secrets/__init__.py",
    "tasks/lib/secrets/gitleaks.py",
    "tasks/lib/secrets/scan.py",
    "tasks/lib/secrets/sopsfile.py",
    "tasks/lib/secrets/structure.py",
    "tasks/lib/tools/__init__.py",
    "tasks/lib/tools/pins.py",
    "tasks/lib/tools/runner.py",
    ".github/workflows/lint.yaml",
)

BAD_YAML = "---\nkey:   value\nlist:\n- a\n-   b\n"
BAD_MARKDOWN = "# Title\nSome text   \n* one\n* two\n"


def context(root: Path) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(root)}}))


@pytest.fixture
def lint_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "lint-repo"
    for name in LINT_FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    (repo / "good.yaml").write_text("---\nkey: value\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    monkeypatch.setenv("ZIZMOR_OFFLINE", "true")
    return repo


@pytest.mark.slow
def test_lint_flags_bad_files_and_fix_repairs_them(
    lint_repo: Path, gitleaks: str, capfd: pytest.CaptureFixture[str]
) -> None:
    lint.lint_all(context(lint_repo))  # a clean repository passes
    (lint_repo / "bad.yaml").write_text(BAD_YAML)
    (lint_repo / "notes.md").write_text(BAD_MARKDOWN)
    git(lint_repo, "add", "-A")
    capfd.readouterr()
    with pytest.raises(Exit):
        lint.yaml(context(lint_repo))
    with pytest.raises(Exit):
        lint.markdown(context(lint_repo))
    with pytest.raises(Exit):
        lint.lint_all(context(lint_repo))
    output = capfd.readouterr()
    assert "lint.fix" in output.err
    # Checking changed nothing.
    assert (lint_repo / "bad.yaml").read_text() == BAD_YAML
    assert (lint_repo / "notes.md").read_text() == BAD_MARKDOWN
    lint.fix(context(lint_repo))
    assert (lint_repo / "bad.yaml").read_text() == "---\nkey: value\nlist:\n  - a\n  - b\n"
    fixed_md = (lint_repo / "notes.md").read_text()
    assert "- one" in fixed_md and "   \n" not in fixed_md
    lint.lint_all(context(lint_repo))


@pytest.mark.slow
def test_secret_guard_hook_blocks_plaintext(
    lint_repo: Path, gitleaks: str, capfd: pytest.CaptureFixture[str]
) -> None:
    (lint_repo / "talos").mkdir()
    (lint_repo / "talos" / "talsecret.sops.yaml").write_text("---\nsecret: value\n")
    (lint_repo / "cluster.yaml").write_text("---\ncloudflare_token: abcdefghij\n")
    git(lint_repo, "add", "-A")
    with pytest.raises(Exit):
        lint.lint_all(context(lint_repo))
    out = capfd.readouterr()
    text = out.out + out.err
    assert "talos/talsecret.sops.yaml: not encrypted" in text
    assert "cluster.yaml:2: cloudflare_token: a secret in a file git commits" in text


def test_actionlint_is_skipped_with_a_clear_message_when_missing(
    lint_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(lint, "find_tool", lambda name: None)
    assert lint.actionlint(context(lint_repo), lint.paths_for(context(lint_repo)))
    assert "actionlint: skipped — not installed" in capsys.readouterr().out


@pytest.mark.slow
def test_committed_repository_is_lint_clean(monkeypatch: pytest.MonkeyPatch, gitleaks: str) -> None:
    monkeypatch.setenv("ZIZMOR_OFFLINE", "true")
    lint.lint_all(Context())


def pinned(requirement: str) -> tuple[str, str]:
    name, version = requirement.split("==")
    return name.lower(), version


def test_hook_versions_match_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(pinned(r) for r in project["dependencies"] if "==" in r)
    config = YAML(typ="safe").load((ROOT / ".pre-commit-config.yaml").read_text())
    for repo in config["repos"]:
        assert repo["repo"] == "local"  # nothing comes from a git host
        for hook in repo["hooks"]:
            assert hook["language"] in ("python", "system")
            for requirement in hook.get("additional_dependencies", []):
                name, version = pinned(requirement)
                if name in pins:
                    assert pins[name] == version, (
                        f"{hook['id']}: {requirement} but pyproject pins {pins[name]}"
                    )


def test_every_fixing_hook_has_a_checking_twin() -> None:
    config = YAML(typ="safe").load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for h in config["repos"][0]["hooks"]}
    for hook_id in lint.FIX_HOOKS:
        assert hooks[hook_id].get("stages", ["pre-commit"]) == ["pre-commit"]
        assert hooks[f"{hook_id}-check"]["stages"] == ["manual"]
    checking = [h for h in hooks.values() if "manual" in h.get("stages", [])]
    assert not [h["id"] for h in checking if re.search(r"--fix\b|^(yamlfmt|mdformat)$", h["entry"])]


def test_python_checks_cover_ruff_and_strict_mypy(tmp_path: Path) -> None:
    from tasks.lib.paths import repo_paths

    assert lint.python_commands(repo_paths(tmp_path)) == []  # no Python project: nothing to check
    (tmp_path / "pyproject.toml").write_text("[tool.mypy]\nstrict = true\n")
    (tmp_path / "tasks").mkdir()
    assert lint.python_commands(repo_paths(tmp_path)) == [
        ["ruff", "check", "tasks"],
        ["ruff", "format", "--check", "tasks"],
        ["mypy"],
    ]


def test_the_type_checker_is_strict_and_covers_the_task_library() -> None:
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["strict"] is True
    assert {"tasks", "templates/scripts"} <= set(mypy["files"])
