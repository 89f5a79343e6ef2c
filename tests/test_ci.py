"""inv ci.*: what the workflows call to skip work and to show results, run against git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from invoke import Config, Context

from tasks import ci as ci_tasks
from tasks.lib import ci
from tests.conftest import exit_code

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a main branch and a pull request branch on top of it."""
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    (tmp_path / "README.md").write_text("x\n")
    (tmp_path / "kubernetes").mkdir()
    (tmp_path / "kubernetes" / "ks.yaml").write_text("a: 1\n")
    subprocess.run([*GIT, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*GIT, "commit", "-qm", "base"], cwd=tmp_path, check=True)
    subprocess.run([*GIT, "switch", "-q", "-c", "pr"], cwd=tmp_path, check=True)
    return tmp_path


def commit(repo: Path, name: str, text: str) -> None:
    (repo / name).write_text(text)
    subprocess.run([*GIT, "commit", "-qam", name], cwd=repo, check=True)


def context(repo: Path) -> Context:
    return Context(Config(overrides={"home_ops": {"root": str(repo)}}))


def outputs(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_changed_sets_the_step_output(repo: Path, tmp_path_factory, monkeypatch, capsys) -> None:
    out = tmp_path_factory.mktemp("gh") / "output"
    monkeypatch.setenv(ci.OUTPUT_ENV, str(out))
    commit(repo, "README.md", "docs only\n")
    ci_tasks.changed(context(repo), base="main", path=["kubernetes/"], output="kubernetes")
    assert outputs(out) == ["kubernetes=false"]
    assert "nothing under kubernetes/ changed since main" in capsys.readouterr().out
    commit(repo, "kubernetes/ks.yaml", "a: 2\n")
    ci_tasks.changed(context(repo), base="main", path=["kubernetes/"], output="kubernetes")
    assert outputs(out) == ["kubernetes=false", "kubernetes=true"]
    assert "  kubernetes/ks.yaml" in capsys.readouterr().out


def test_changed_compares_with_the_merge_base(repo: Path, monkeypatch, tmp_path_factory) -> None:
    """Changes that landed on main after the branch point are not the pull request's."""
    out = tmp_path_factory.mktemp("gh") / "output"
    monkeypatch.setenv(ci.OUTPUT_ENV, str(out))
    commit(repo, "README.md", "pr\n")
    subprocess.run([*GIT, "switch", "-q", "main"], cwd=repo, check=True)
    commit(repo, "kubernetes/ks.yaml", "a: 3\n")
    subprocess.run([*GIT, "switch", "-q", "pr"], cwd=repo, check=True)
    ci_tasks.changed(context(repo), base="main", path=["kubernetes/"])
    assert outputs(out) == ["changed=false"]


def test_changed_with_an_unknown_base_says_what_to_fetch(repo: Path, capsys) -> None:
    code = exit_code(lambda: ci_tasks.changed(context(repo), base="origin/main", path=["kubernetes/"]))
    assert code == 1
    assert "fetch-depth: 0" in capsys.readouterr().err
    assert exit_code(lambda: ci_tasks.changed(context(repo), base="main")) == 1


@pytest.mark.parametrize("base", ["--output=OUT", "-oOUT", "--output", "main\n--output=OUT"])
def test_changed_never_passes_the_base_to_git_as_an_option(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, capsys, base: str
) -> None:
    """A base git would read as an option writes no file and fails (CI must not fail open)."""
    outside = tmp_path_factory.mktemp("outside")
    steps = outside / "github-output"
    monkeypatch.setenv(ci.OUTPUT_ENV, str(steps))
    base = base.replace("OUT", str(outside / "written"))
    commit(repo, "kubernetes/ks.yaml", "a: 2\n")
    code = exit_code(lambda: ci_tasks.changed(context(repo), base=base, path=["kubernetes/"]))
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("--base ")
    assert sorted(p.name for p in outside.iterdir()) == []  # no output file, no step output


def test_summary_appends_to_the_job_summary_or_prints(tmp_path: Path, monkeypatch, capsys) -> None:
    diff = tmp_path / "diff.md"
    diff.write_text("```diff\n+ a\n```\n")
    monkeypatch.delenv(ci.SUMMARY_ENV, raising=False)
    ci_tasks.summary(context(tmp_path), file=str(diff), title="Flux diff")
    assert capsys.readouterr().out == "## Flux diff\n\n```diff\n+ a\n```\n"
    page = tmp_path / "summary.md"
    page.write_text("earlier step\n")
    monkeypatch.setenv(ci.SUMMARY_ENV, str(page))
    ci_tasks.summary(context(tmp_path), file=str(tmp_path / "missing.md"))
    assert page.read_text() == "earlier step\n_Nothing to show._\n"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("base", ["", "0000000000000000000000000000000000000000"])
def test_without_a_base_everything_counts_as_changed(
    repo: Path, base: str, tmp_path_factory, monkeypatch
) -> None:
    output = tmp_path_factory.mktemp("gh") / "output"
    monkeypatch.setenv(ci.OUTPUT_ENV, str(output))
    ci_tasks.changed(context(repo), base=base, path=["tasks/"], output="template")
    assert output.read_text() == "template=true\n"


@pytest.mark.parametrize(
    ("env", "ready", "says"),
    [
        ({"RENOVATE_APP_TOKEN": "app-token-value"}, "true", "using the GitHub App credential"),
        ({"RENOVATE_TOKEN": "pat-value"}, "true", "using the RENOVATE_TOKEN credential"),
        (
            {"RENOVATE_APP_TOKEN": "", "RENOVATE_TOKEN": ""},
            "false",
            "::warning title=Renovate is not set up::",
        ),
    ],
)
def test_renovate_says_which_credential_or_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, env: dict[str, str], ready: str, says: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv(ci.OUTPUT_ENV, str(tmp_path / "output"))
    monkeypatch.setenv(ci.SUMMARY_ENV, str(tmp_path / "summary"))
    ci_tasks.renovate_token(context(tmp_path))  # exits 0 either way: an unset-up repository stays green
    assert (tmp_path / "output").read_text() == f"ready={ready}\n"
    out = capsys.readouterr().out
    assert says in out and "-value" not in out
    if ready == "false":
        assert "docs/tasks/ci.md#renovate" in (tmp_path / "summary").read_text()
