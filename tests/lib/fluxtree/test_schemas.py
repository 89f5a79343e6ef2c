"""Kubernetes schemas for kubeconform, made self-contained from the kubernetes-validate wheel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.lib.fluxtree import schemas
from tasks.lib.fluxtree.model import Obj
from tasks.lib.fluxtree.schemacheck import check, reason
from tests.tools_contract import TOOLS_DIR, real_tool

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


def test_reason_names_the_fields_kubeconform_refuses() -> None:
    message = (
        "problem validating schema. Check JSON formatting: jsonschema validation failed with "
        "'file:///x/pod-v1.json#' - at '/spec': validation failed   - at '/spec': missing property "
        "'containers'   - at '/spec/initContainers/0/image': got object, want null or string"
    )
    assert reason(message) == (
        "spec: missing property 'containers'; spec.initContainers[0].image: got object, want null or string"
    )
    assert reason("could not decode") == "could not decode"


def test_only_kinds_with_a_shipped_schema_are_sent(tmp_path: Path) -> None:
    directory = tmp_path / "v1.37.0-local"
    directory.mkdir()
    for name in ("pod-v1.json", "deployment-apps-v1.json", "ingress-networking-v1.json"):
        (directory / name).write_text("{}")
    found = schemas.Schemas(tmp_path, "1.37.0")
    assert found.has("Pod", "v1") and found.has("Deployment", "apps/v1")
    assert found.has("Ingress", "networking.k8s.io/v1")
    assert not found.has("HelmRelease", "helm.toolkit.fluxcd.io/v2")
    assert not found.has("Deployment", "apps/v1beta1")


@pytest.mark.tools
def test_kubeconform_refuses_what_the_api_server_would(monkeypatch: pytest.MonkeyPatch) -> None:
    real_tool("kubeconform")
    monkeypatch.setenv("HOME_OPS_TOOLS_DIR", str(TOOLS_DIR))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "x"}}
    good = Obj({**pod, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, "ks", "a.yaml")
    bad = Obj(
        {**pod, "spec": {"containers": [{"name": "c", "image": {"repository": "busybox"}}]}}, "ks", "b.yaml"
    )
    custom = Obj(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, "ks", "c.yaml"
    )
    invalid, notes = check([good, bad, custom])
    assert [(i.obj.file, i.reason) for i in invalid] == [
        ("b.yaml", "spec.containers[0].image: got object, want null or string")
    ]
    assert notes == [
        "2 object(s) checked against the Kubernetes 1.37.0 schemas (1 of kinds without a shipped schema)"
    ]
