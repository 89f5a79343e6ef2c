"""How kustomize builds are batched, which repository file a kustomize error is about, and
the shadow trees: items share one shadow where their needs agree, get their own where they
conflict, and build as they would alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.fluxtree.build import Builder, BuildItem, kustomize_error, plan_groups, wait_cleanup
from tasks.lib.fluxtree.yamlio import dump as yaml
from tasks.lib.tools.kustomize import pick_kustomize


def test_plan_groups_keeps_renaming_items_apart() -> None:
    items = [BuildItem(str(i), Path("."), alone=i == 3) for i in range(10)]
    groups = plan_groups(items, workers=2)
    assert [len(g) for g in groups] == [5, 4, 1]
    assert groups[-1][0].key == "3"
    # A renaming item never shares a batch with another item of its namespace (or with one
    # whose namespace is unknown).
    items = [BuildItem(f"p{i}", Path("."), namespace=f"ns{i}") for i in range(4)]
    items += [
        BuildItem("r0", Path("."), renames=True, namespace="ns0"),
        BuildItem("rx", Path("."), renames=True),
    ]
    items += [BuildItem("r9", Path("."), renames=True, namespace="ns9")]
    groups = plan_groups(items, workers=2)
    assert [[i.key for i in g] for g in groups] == [["p0", "p2", "r9"], ["p1", "p3", "r0"], ["rx"]]
    # Items of one namespace sharing a component (same ${APP} ids before substitution) are
    # spread over batches; other namespaces fill them up.
    shared = frozenset({Path("components/volsync")})
    items = [BuildItem(f"{ns}{i}", Path("."), namespace=ns, dirs=shared) for i in range(3) for ns in "ab"]
    groups = plan_groups(items, workers=2)
    assert len(groups) == 3
    assert all(sorted(i.namespace for i in g) == ["a", "b"] for g in groups)


def test_kustomize_error_names_the_innermost_repository_file(tmp_path: Path) -> None:
    (tmp_path / "app/base").mkdir(parents=True)
    (tmp_path / "app/base/settings.yaml").write_text("kind: ConfigMap\n")
    shadow = tmp_path / "shadow"
    error = (
        "# Warning: 'patchesStrategicMerge' is deprecated.\n"
        f"Error: accumulating resources: accumulation err='accumulating resources from './base': "
        f"'{shadow}/s3/app/base' must resolve to a file': recursed accumulation of path "
        f"'{shadow}/s3/app/base': accumulating components: loader.New \"must build at directory: "
        f"'{tmp_path}/app/base/settings.yaml': file is not directory\""
    )
    assert kustomize_error(error, tmp_path, [shadow]) == ("app/base/settings.yaml", "file is not directory")


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
