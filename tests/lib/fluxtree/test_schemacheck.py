"""kubeconform's verdicts read back onto the objects, its messages as `field: reason`, and
what is said when it cannot run (the real kubeconform: tests/test_tools_contract.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.lib.fluxtree import schemacheck
from tasks.lib.fluxtree.model import Obj
from tasks.lib.tools.runner import Command, Outcome


def deployment(name: str) -> Obj:
    return Obj(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}}, "ks", f"{name}.yaml"
    )


def test_reason_names_each_field() -> None:
    message = (
        "problem validating schema. Check JSON formatting: jsonschema: '/spec' does not validate: "
        "- at '/spec': validation failed "
        "- at '/spec/template/spec/containers/0/image': got number, want string"
    )
    assert schemacheck.reason(message) == "spec.template.spec.containers[0].image: got number, want string"
    assert schemacheck.reason("  plain  ") == "plain"


def test_verdicts_are_read_back_onto_the_objects_by_their_stand_in_names() -> None:
    objects = [deployment("a"), deployment("b")]
    plan = schemacheck.Plan(
        objects, checked=objects, command=Command(("kubeconform",)), kubernetes_version="1.35"
    )
    report = {
        "resources": [
            {"name": "o0", "status": "statusValid"},
            {
                "name": "o1",
                "status": "statusInvalid",
                "msg": "- at '/spec/replicas': got string, want integer",
            },
        ]
    }
    invalid, notes = schemacheck.read(plan, Outcome(plan.command, 0, json.dumps(report)))  # type: ignore[arg-type]
    assert [(i.obj.file, i.reason) for i in invalid] == [
        ("b.yaml", "spec.replicas: got string, want integer")
    ]
    assert notes == [
        "2 object(s) checked against the Kubernetes 1.35 schemas (0 of kinds without a shipped schema)"
    ]
    _, notes = schemacheck.read(plan, Outcome(plan.command, 1, "not json", "boom"))  # type: ignore[arg-type]
    assert notes == ["schemas not checked: kubeconform failed (boom)"]


def test_without_kubeconform_nothing_runs_and_the_note_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert schemacheck.check([deployment("a")]) == (
        [],
        ["schemas not checked: kubeconform is missing (inv doctor --install)"],
    )
