"""flux.reconcile (and the root `reconcile`) and flux.status, with fake tools."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

import tasks
from tasks import flux
from tests.fakes import FakeTools, fail, ok


def context(root: Path, dry: bool = False) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(root)}, "run": {"dry": dry}}))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\n")
    return tmp_path


def test_reconcile(root: Path, fake_tools: FakeTools) -> None:
    flux.reconcile(context(root))
    assert fake_tools.lines("flux") == [
        "flux --namespace flux-system reconcile kustomization flux-system --with-source"
    ]
    assert tasks.ns.tasks["reconcile"] is flux.reconcile


def test_reconcile_needs_kubeconfig(tmp_path: Path, fake_tools: FakeTools, capsys) -> None:
    with pytest.raises(Exit):
        flux.reconcile(context(tmp_path))
    assert "kubeconfig not found" in capsys.readouterr().err
    assert fake_tools.calls() == []


def test_reconcile_dry_runs_nothing(tmp_path: Path, fake_tools: FakeTools, capsys) -> None:
    flux.reconcile(context(tmp_path, dry=True))
    assert fake_tools.calls() == []
    assert (
        "flux --namespace flux-system reconcile kustomization flux-system --with-source"
        in capsys.readouterr().out
    )


def test_status_shows_every_section(root: Path, fake_tools: FakeTools, capsys) -> None:
    fake_tools.script(
        "kubectl",
        ("certificates", fail('error: the server doesn\'t have a resource type "certificates"')),
        ("get nodes", ok("NAME STATUS\nk8s-0 Ready\n")),
        (None, ok("")),
    )
    flux.status(context(root))
    out = capsys.readouterr().out
    for title, _args in flux.STATUS_SECTIONS:
        assert f"== {title}" in out
    assert "k8s-0 Ready" in out
    assert "(not installed in the cluster)" in out
    assert len(fake_tools.calls("kubectl")) == len(flux.STATUS_SECTIONS)
