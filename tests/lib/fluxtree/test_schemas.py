"""Kubernetes schemas for kubeconform, made self-contained from the kubernetes-validate wheel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.lib.fluxtree import schemas
from tasks.lib.fluxtree.helm import schema_notes
from tasks.lib.fluxtree.model import Tree

DEFS = {
    "io.k8s.Meta": {"type": "object", "properties": {"name": {"type": "string"}}},
    "io.k8s.Spec": {"type": "object", "properties": {"ports": {"$ref": "#/$defs/io.k8s.Port"}}},
    "io.k8s.Port": {"type": "integer"},
    "io.k8s.Unused": {"type": "string"},
}
SERVICE = {
    "$id": "https://example.invalid/api/service",
    "properties": {
        "metadata": {"$ref": "/api/_definitions.json#/$defs/io.k8s.Meta"},
        "spec": {"$ref": "/api/_definitions.json#/$defs/io.k8s.Spec"},
    },
}


def test_self_contained_carries_exactly_what_it_reaches() -> None:
    result = schemas.self_contained(SERVICE, DEFS)
    assert "$id" not in result  # relative references must not resolve against the web
    assert set(result["definitions"]) == {"io.k8s.Meta", "io.k8s.Spec", "io.k8s.Port"}
    assert result["properties"]["spec"] == {"$ref": "#/definitions/io.k8s.Spec"}
    assert result["definitions"]["io.k8s.Spec"]["properties"]["ports"] == {
        "$ref": "#/definitions/io.k8s.Port"
    }


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    for version in ("v1.36.0-local", "v1.37.0-local", "v1.37.0-local-strict"):
        directory = tmp_path / "shipped" / version
        directory.mkdir(parents=True)
        (directory / "_definitions.json").write_text(json.dumps({"$defs": DEFS}))
        (directory / "service-v1.json").write_text(json.dumps(SERVICE))
        (directory / "all.json").write_text("{}")
    return tmp_path / "shipped"


def test_local_schemas_converts_the_newest_version_once(shipped: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(schemas, "shipped_dir", lambda: shipped)
    found = schemas.local_schemas(tmp_path / "cache")
    assert found is not None and found.kubernetes_version == "1.37.0"
    converted = found.directory / "v1.37.0-local"
    assert sorted(p.name for p in converted.iterdir()) == ["service-v1.json"]
    assert "/api/_definitions.json" not in (converted / "service-v1.json").read_text()
    (converted / "service-v1.json").write_text("{}")  # a second call reuses what is there
    assert schemas.local_schemas(tmp_path / "cache") == found
    assert (converted / "service-v1.json").read_text() == "{}"
    argv = found.argv()
    assert argv[argv.index("-kubernetes-version") + 1] == "1.37.0"
    assert argv[argv.index("-schema-location") + 1].startswith(f"{found.directory}/")


def test_no_wheel_means_no_schemas(monkeypatch) -> None:
    monkeypatch.setattr(schemas, "shipped_dir", lambda: None)
    assert schemas.local_schemas() is None


def test_the_real_wheel_ships_schemas() -> None:
    shipped = schemas.shipped_dir()
    assert shipped is not None, "kubernetes-validate is a pinned dependency"
    newest = schemas.newest_version(shipped)
    assert newest is not None and (newest[1] / "deployment-apps-v1.json").is_file()


def test_notes_name_what_was_not_checked() -> None:
    tree = Tree(root=".", entry="kubernetes/flux/cluster/ks.yaml")
    resources = [
        {"kind": "ConfigMap", "name": "a", "status": "statusValid"},
        {"kind": "HelmRelease", "name": "b", "status": "statusSkipped"},
        {"kind": "HelmRelease", "name": "c", "status": "statusSkipped"},
        {
            "kind": "Service",
            "name": "d",
            "status": "statusInvalid",
            "msg": "jsonschema failed - at '/spec': bad",
        },
    ]
    notes = schema_notes(tree, resources, "1.37.0")
    assert notes == [
        "--helm: kubeconform checked 2 object(s) against the Kubernetes 1.37.0 schemas",
        "--helm: 2 object(s) not schema-checked (no schema for the kind): HelmRelease x2",
    ]
    assert [p.message for p in tree.problems] == ["Service d: at '/spec': bad"]
