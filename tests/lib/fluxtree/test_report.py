"""The validator's report as text and JSON, and an error under --json."""

from __future__ import annotations

import json

import pytest

from tasks.lib.errors import UserError
from tasks.lib.fluxtree import report
from tasks.lib.fluxtree.model import FluxKustomization, Obj, Problem, Tree


def tree() -> Tree:
    apps = FluxKustomization("apps", "flux-system", {"path": "./apps"}, "ks.yaml", built=True)
    remote = FluxKustomization("remote", "flux-system", {"sourceRef": {"name": "other"}}, "r.yaml")
    remote.skipped = "source GitRepository flux-system/other: not built"
    apps.objects = [
        Obj({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease"}, apps.id, "hr.yaml")
    ]
    problem = Problem("hr.yaml", "missing-file", "./values.yaml not found", apps.id, 4)
    return Tree(
        ".", "kubernetes/flux/cluster", {apps.id: apps, remote.id: remote}, [problem], ["a note"], 1.234, 2
    )


def test_summary_counts() -> None:
    info = report.summary(tree())
    assert (info["kustomizations"], info["built"], info["helmreleases"], info["problems"]) == (2, 1, 1, 1)
    assert info["external"] == ["flux-system/remote: GitRepository flux-system/other"]
    assert info["problem_kinds"] == {"missing-file": 1}


def test_text_and_json_say_the_same() -> None:
    text = report.as_text(tree(), ["extra"])
    assert "  Problems        1 (1 missing-file)" in text
    assert text.endswith("hr.yaml:4: missing-file: ./values.yaml not found [flux-system/apps]")
    assert "  note: a note\n  note: extra" in text
    data = json.loads(report.as_json(tree(), ["extra"]))
    assert data["problems"][0]["line"] == 4 and data["notes"] == ["a note", "extra"]
    assert [k["id"] for k in data["kustomizations"]] == ["flux-system/apps", "flux-system/remote"]


def test_an_error_under_json_is_also_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError), report.errors_as_json(True):
        raise UserError("first", "  second")
    assert json.loads(capsys.readouterr().out) == {"error": "first second"}
    with pytest.raises(UserError), report.errors_as_json(False):
        raise UserError("x")
    assert capsys.readouterr().out == ""
