"""The ConfigMaps and Secrets that postBuild.substituteFrom may name: what each kind of
object creates, and what we know of its values offline."""

from __future__ import annotations

import base64
from pathlib import Path

from tasks.lib.fluxtree.registry import (
    ANY_NAMESPACE,
    Registry,
    VarSource,
    bootstrap_references,
    placeholder,
    sources_from,
)


def test_each_kind_creates_what_the_cluster_would_hold() -> None:
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"A": base64.b64encode(b"x").decode()}}
    assert sources_from(secret, "ns", "f")[0].values == {"A": "x"}
    sealed = {"kind": "SealedSecret", "metadata": {"name": "s"}, "spec": {"encryptedData": {"B": "..."}}}
    assert sources_from(sealed, "ns", "f")[0].values == {"B": placeholder("B")}
    encrypted = {**secret, "sops": {}}
    assert sources_from(encrypted, "ns", "f")[0].values == {"A": placeholder("A")}
    external = {"kind": "ExternalSecret", "metadata": {"name": "e"}, "spec": {"target": {"name": "t"}}}
    assert [(s.kind, s.name, s.keys_known) for s in sources_from(external, "ns", "f")] == [
        ("Secret", "t", False)
    ]
    cluster_wide = {"kind": "ClusterExternalSecret", "metadata": {"name": "c"}, "spec": {}}
    assert sources_from(cluster_wide, "ns", "f")[0].namespace == ANY_NAMESPACE
    assert sources_from({"kind": "Deployment"}, "ns", "f") == []


def test_the_registry_keeps_the_first_and_finds_cluster_wide_ones() -> None:
    registry = Registry()
    registry.add(VarSource("ConfigMap", "a", "vars", "one.yaml"))
    registry.add(VarSource("ConfigMap", "a", "vars", "two.yaml"))
    registry.add(VarSource("Secret", ANY_NAMESPACE, "shared", "c.yaml"))
    assert registry.get("ConfigMap", "a", "vars").file == "one.yaml"  # type: ignore[union-attr]
    assert registry.get("Secret", "anywhere", "shared") is not None
    assert registry.get("Secret", "a", "vars") is None


def test_manifests_a_bootstrap_script_names_are_found(tmp_path: Path) -> None:
    manifest = tmp_path / "kubernetes/components/sops/cluster-secrets.sops.yaml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("kind: Secret\n")
    (tmp_path / "kubernetes/other.yaml").write_text("kind: Secret\n")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/bootstrap.sh").write_text(
        'kubectl apply -f "$ROOT_DIR/kubernetes/components/sops/cluster-secrets.sops.yaml"\n'
    )
    assert bootstrap_references(tmp_path) == [manifest]
    assert Registry.bootstrap_manifests(tmp_path, []) == [(manifest, {"kind": "Secret"})]
