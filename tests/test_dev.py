"""dev.start / dev.stop against fake kubectl and flux, with real git repositories."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

from tasks import dev
from tasks.lib.flux_live import ORIGINAL_REF
from tests.conftest import EXAMPLE_INPUTS, git
from tests.fakes import FakeTools, ok

INSTANCE = "fluxinstances.fluxcd.controlplane.io"


def instance(ref: str, original: str | None = None) -> str:
    metadata = {
        "name": "flux",
        "namespace": "flux-system",
        "labels": {
            "helm.toolkit.fluxcd.io/name": "flux-instance",
            "helm.toolkit.fluxcd.io/namespace": "flux-system",
        },
    }
    if original:
        metadata["annotations"] = {ORIGINAL_REF: original}
    return json.dumps({"items": [{"metadata": metadata, "spec": {"sync": {"ref": ref}}}]})


def release(suspended: bool) -> str:
    return json.dumps({"spec": {"suspend": suspended}})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A clone with a pushed feature branch checked out, and a kubeconfig."""
    return pushed_clone(tmp_path)


def pushed_clone(tmp_path: Path) -> Path:
    """A clone with a pushed feature branch checked out, and a kubeconfig."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", str(origin))
    (root / "README.md").write_text("x\n")
    (root / "kubeconfig").write_text("apiVersion: v1\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "initial")
    git(root, "push", "-q", "-u", "origin", "main")
    git(root, "checkout", "-q", "-b", "feature")
    git(root, "push", "-q", "-u", "origin", "feature")
    return root


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    fakes = FakeTools(tmp_path / "fakebin").install("kubectl", "flux")
    monkeypatch.setenv("PATH", fakes.path_env())
    return fakes


def context(root: Path, dry: bool = False) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(root)}, "run": {"dry": dry}}))


def cluster(tools: FakeTools, ref: str, suspended: bool, original: str | None = None) -> None:
    tools.script(
        "kubectl",
        (f"get {INSTANCE}", ok(instance(ref, original))),
        ("get helmreleases", ok(release(suspended))),
        (None, ok()),
    )


def refuses(root: Path, capsys, text: str) -> None:
    with pytest.raises(Exit):
        dev.start(context(root))
    assert text in capsys.readouterr().err


def test_start_refuses_on_main(repo: Path, tools: FakeTools, capsys) -> None:
    git(repo, "checkout", "-q", "main")
    refuses(repo, capsys, "default branch")
    assert tools.calls() == []


def test_start_refuses_on_detached_head(repo: Path, tools: FakeTools, capsys) -> None:
    git(repo, "checkout", "-q", "--detach")
    refuses(repo, capsys, "detached")


def test_start_refuses_unpushed_branch(repo: Path, tools: FakeTools, capsys) -> None:
    git(repo, "checkout", "-q", "-b", "local-only")
    refuses(repo, capsys, "not pushed")
    git(repo, "checkout", "-q", "feature")
    (repo / "new.txt").write_text("y\n")
    git(repo, "add", "new.txt")
    git(repo, "commit", "-q", "-m", "ahead")
    refuses(repo, capsys, "1 unpushed commit")


def test_start_checks_the_remote_flux_pulls_from(repo: Path, tools: FakeTools, capsys) -> None:
    """With a cluster.yaml, the branch must be on the remote whose URL is repository_name,
    whatever the branch tracks and whatever form the remote's URL takes."""
    for name in ("cluster.yaml", "nodes.yaml"):
        shutil.copy(EXAMPLE_INPUTS / name, repo / name)
    text = (repo / "cluster.yaml").read_text()
    (repo / "cluster.yaml").write_text(
        text.replace("example/home-ops", "https://git.example.org/Me/Home-Ops", 1)
    )
    git(repo, "remote", "add", "forge", "git@git.example.org:me/home-ops.git")
    refuses(repo, capsys, "branch 'feature' is not on forge: run `git push -u forge feature` first")
    git(repo, "update-ref", "refs/remotes/forge/feature", "HEAD~0")
    cluster(tools, "refs/heads/feature", suspended=True, original="refs/heads/main")
    dev.start(context(repo))
    assert "nothing to change" in capsys.readouterr().out


def test_start_suspends_patches_and_reconciles(repo: Path, tools: FakeTools, capsys) -> None:
    cluster(tools, "refs/heads/main", suspended=False)
    dev.start(context(repo))
    lines = tools.lines()
    assert "flux --namespace flux-system suspend helmrelease flux-instance" in lines
    patch = next(call for call in tools.calls("kubectl") if "patch" in call.argv)
    body = json.loads(patch.argv[-1])
    assert body == {
        "metadata": {"annotations": {ORIGINAL_REF: "refs/heads/main"}},
        "spec": {"sync": {"ref": "refs/heads/feature"}},
    }
    assert lines[-1] == "flux --namespace flux-system reconcile kustomization flux-system --with-source"
    out = capsys.readouterr().out
    assert "sync ref refs/heads/main -> refs/heads/feature" in out


def test_start_is_idempotent(repo: Path, tools: FakeTools, capsys) -> None:
    cluster(tools, "refs/heads/feature", suspended=True, original="refs/heads/main")
    dev.start(context(repo))
    assert not [line for line in tools.lines() if "patch" in line or "suspend" in line]
    assert "nothing to change" in capsys.readouterr().out


def test_start_dry_run_changes_nothing(repo: Path, tools: FakeTools, capsys) -> None:
    cluster(tools, "refs/heads/main", suspended=False)
    dev.start(context(repo, dry=True))
    assert all(" get " in f" {line} " for line in tools.lines())  # only reads ran
    out = capsys.readouterr().out
    assert "kubectl --namespace flux-system patch" in out
    assert "flux --namespace flux-system suspend helmrelease flux-instance" in out


def test_stop_restores_and_resumes(repo: Path, tools: FakeTools, capsys) -> None:
    cluster(tools, "refs/heads/feature", suspended=True, original="refs/heads/main")
    dev.stop(context(repo))
    patch = next(call for call in tools.calls("kubectl") if "patch" in call.argv)
    assert json.loads(patch.argv[-1]) == {
        "metadata": {"annotations": {ORIGINAL_REF: None}},
        "spec": {"sync": {"ref": "refs/heads/main"}},
    }
    assert "flux --namespace flux-system resume helmrelease flux-instance" in tools.lines()
    assert "resumed HelmRelease flux-system/flux-instance" in capsys.readouterr().out


def test_stop_is_idempotent(repo: Path, tools: FakeTools, capsys) -> None:
    cluster(tools, "refs/heads/main", suspended=False)
    dev.stop(context(repo))
    assert not [line for line in tools.lines() if "patch" in line or "resume" in line]
    assert "nothing to change" in capsys.readouterr().out


def test_needs_a_kubeconfig(repo: Path, tools: FakeTools, capsys) -> None:
    (repo / "kubeconfig").unlink()
    with pytest.raises(Exit):
        dev.stop(context(repo))
    assert "kubeconfig not found" in capsys.readouterr().err


def test_validate_task_exit_codes(tmp_path: Path, capsys) -> None:
    clean = Path(__file__).parent / "fixtures" / "flux-repos" / "clean"
    c = Context(config=Config(overrides={"home_ops": {"root": str(tmp_path)}}))
    dev.validate(c, path=str(clean), json=True)
    assert json.loads(capsys.readouterr().out)["summary"]["problems"] == 0
    with pytest.raises(Exit):
        dev.validate(c, path=str(tmp_path))
    assert "no Flux tree under" in capsys.readouterr().err


CASES = Path(__file__).parent / "fixtures" / "flux-repos" / "cases"
ROOT = Path(__file__).parent.parent


def test_no_task_lets_a_short_flag_take_help() -> None:
    from tasks import ns

    def flags(collection):
        for name, task in collection.tasks.items():
            yield name, {n for a in task.get_arguments() for n in a.names}
        for prefix, sub in collection.collections.items():
            yield from ((f"{prefix}.{n}", f) for n, f in flags(sub))

    taken = [name for name, names in flags(ns) if "h" in names]
    assert taken == []


def inv(*args: str, stdin_pipe: str = "") -> subprocess.CompletedProcess[str]:
    import subprocess
    import sys

    line = " ".join([sys.executable, "-m", "tasks", *args]) + stdin_pipe
    return subprocess.run(line, shell=True, cwd=ROOT, capture_output=True, text=True, check=False)


def test_validate_help_is_shown_with_h() -> None:
    result = inv("dev.validate", "-h")
    assert result.returncode == 0
    assert "--helm" in result.stdout and "Usage:" in result.stdout


def test_validate_json_into_a_closed_pipe_is_silent(tmp_path: Path) -> None:
    import shutil

    repo = tmp_path / "features"
    shutil.copytree(CASES / "features", repo)
    result = inv("dev.validate", "--json", "--path", str(repo), stdin_pipe=" | head -c 10")
    assert result.returncode == 0
    assert result.stdout == '{\n  "summa'
    assert result.stderr == ""


def test_validate_json_is_valid_with_problems_and_without_a_tree(tmp_path: Path, capsys) -> None:
    import shutil

    c = Context(config=Config(overrides={"home_ops": {"root": str(tmp_path)}}))
    repo = tmp_path / "external-sources"
    shutil.copytree(CASES / "external-sources", repo)
    with pytest.raises(Exit):
        dev.validate(c, path=str(repo), json=True)
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["external"] == [
        "flux-system/generated: ExternalArtifact flux-system/generated",
        "flux-system/platform: OCIRepository flux-system/platform",
        "flux-system/shared: GitRepository flux-system/shared",
    ]
    assert [p["kind"] for p in data["problems"]] == ["source-missing"]
    assert data["problems"][0]["chain"] == ["flux-system/cluster-apps"]
    with pytest.raises(Exit):
        dev.validate(c, path=str(tmp_path / "nowhere"), json=True)
    assert "error" in json.loads(capsys.readouterr().out)


def test_validate_unexpected_failure_is_one_line_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    import tasks.lib.fluxtree as fluxtree

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(fluxtree, "validate", broken)
    c = Context(config=Config(overrides={"home_ops": {"root": str(tmp_path)}}))
    with pytest.raises(Exit) as exited:
        dev.validate(c, path=str(CASES / "features"))
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("internal error (a bug in home-ops, please report it): RuntimeError: boom")


def test_validate_vars_and_vars_file(tmp_path: Path, capsys) -> None:
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(CASES / "kustomize-error", repo)
    c = Context(config=Config(overrides={"home_ops": {"root": str(tmp_path)}}))
    env = tmp_path / "cluster.env"
    env.write_text("# cluster-only values\nexport A='5'\n")
    with pytest.raises(Exit):
        dev.validate(c, path=str(repo), json=True, vars_file=str(env))
    capsys.readouterr()
    with pytest.raises(Exit):
        dev.validate(c, path=str(repo), var=["not-an-assignment"])
    assert "is not KEY=VALUE" in capsys.readouterr().err


def test_validate_under_dry_shows_the_commands_it_ran(tmp_path: Path, capsys) -> None:
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(CASES / "features", repo)
    c = Context(config=Config(overrides={"home_ops": {"root": str(tmp_path)}, "run": {"dry": True}}))
    dev.validate(c, path=str(repo))
    captured = capsys.readouterr()
    assert "ran (read-only): " in captured.err and " --load-restrictor LoadRestrictionsNone " in captured.err
    assert "Problems        0" in captured.out
