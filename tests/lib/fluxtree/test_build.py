"""Shadow trees of the kustomize builds (tasks/lib/fluxtree/build.py): items share one shadow
where their needs agree, get their own where they conflict, and build as they would alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.fluxtree.build import Builder, BuildItem, wait_cleanup
from tasks.lib.fluxtree.yamlio import dump as yaml
from tasks.lib.tools.kustomize import pick_kustomize

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  from: {where}\n"
COMPONENT = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [cm.yaml]\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    component = root / "kubernetes/components/common"
    component.mkdir(parents=True)
    (component / "kustomization.yaml").write_text(COMPONENT)
    (component / "cm.yaml").write_text(CONFIGMAP.format(name="common", where="component"))
    for app in ("a", "b", "c"):
        folder = root / f"kubernetes/apps/{app}/app"
        folder.mkdir(parents=True)
        (folder / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
        (folder / "cm.yaml").write_text(CONFIGMAP.format(name=app, where=app))
    return root


def configmap(name: str, where: str, namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "data": {"from": where},
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
    }


def item(root: Path, app: str, namespace: str) -> BuildItem:
    """What Flux builds for an app with targetNamespace and a component: its own
    kustomization replaced by the generated one."""
    directory = root / f"kubernetes/apps/{app}/app"
    generated = {
        "resources": ["cm.yaml"],
        "components": ["../../../components/common"],
        "namespace": namespace,
    }
    return BuildItem(app, directory, overrides={directory: generated}, namespace=namespace)


def conflicting(root: Path) -> BuildItem:
    """An item that also overrides the component's kustomization: ``kubernetes/components``
    must be a real folder in its shadow, where the others link it."""
    built = item(root, "c", "nc")
    component = root / "kubernetes/components/common"
    built.overrides[component] = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": ["cm.yaml"],
        "commonLabels": {"changed": "yes"},
    }
    built.materialize = {built.directory, component}
    return built


def built(root: Path, items: list[BuildItem]) -> tuple[dict[str, list[str]], int]:
    """(each item's objects with the repository file each comes from, shadow folders
    created) of one Builder run."""
    with Builder(root, workers=2, tool=pick_kustomize()) as builder:
        results = builder.build(items)
        shadows = len([p for p in builder.tmp.iterdir() if p.name.startswith("s")])
    wait_cleanup()
    assert all(result.ok for result in results.values()), results
    objects = {
        key: sorted(f"{doc.file}\n{yaml(doc.body)}" for doc in result.docs) for key, result in results.items()
    }
    return objects, shadows


def test_items_share_a_shadow_and_build_as_alone(repo: Path) -> None:
    items = [item(repo, "a", "na"), item(repo, "b", "nb")]
    together, shadows = built(repo, items)
    assert shadows == 1
    for one in items:
        assert built(repo, [one])[0][one.key] == together[one.key]
    assert together["a"] == [
        "kubernetes/apps/a/app/cm.yaml\n" + yaml(configmap("a", "a", "na")),
        "kubernetes/components/common/cm.yaml\n" + yaml(configmap("common", "component", "na")),
    ]


def test_an_item_whose_needs_conflict_gets_its_own_shadow(repo: Path) -> None:
    items = [item(repo, "a", "na"), conflicting(repo), item(repo, "b", "nb")]
    together, shadows = built(repo, items)
    assert shadows == 2
    assert all("changed: " in text for text in together["c"])
    assert not any("changed" in text for text in together["a"] + together["b"])
    for one in items:
        assert built(repo, [one])[0][one.key] == together[one.key]


def test_the_repository_is_never_written(repo: Path) -> None:
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    built(repo, [item(repo, "a", "na"), conflicting(repo)])
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before
