"""How kustomize builds are batched, and which repository file a kustomize error is about."""

from __future__ import annotations

from pathlib import Path

from tasks.lib.fluxtree.build import BuildItem, kustomize_error, plan_groups


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
