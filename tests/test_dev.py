"""dev.start / dev.stop against fake kubectl and flux, with real git repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

from tasks import dev
from tests.conftest import git
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
        metadata["annotations"] = {dev.ORIGINAL_REF: original}
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


def test_start_suspends_patches_and_reconciles(repo: Path, tools: FakeTools, capsys) -> None:
    cluster(tools, "refs/heads/main", suspended=False)
    dev.start(context(repo))
    lines = tools.lines()
    assert "flux --namespace flux-system suspend helmrelease flux-instance" in lines
    patch = next(call for call in tools.calls("kubectl") if "patch" in call.argv)
    body = json.loads(patch.argv[-1])
    assert body == {
        "metadata": {"annotations": {dev.ORIGINAL_REF: "refs/heads/main"}},
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
        "metadata": {"annotations": {dev.ORIGINAL_REF: None}},
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
    assert "no Flux cluster Kustomization" in capsys.readouterr().err
