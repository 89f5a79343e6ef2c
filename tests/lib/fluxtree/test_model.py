"""The validator's model: objects, Flux Kustomizations and problems as the user reads them."""

from __future__ import annotations

from tasks.lib.fluxtree.model import FluxKustomization, Obj, Problem, Ref, Tree, group_of


def test_group_of() -> None:
    assert group_of("helm.toolkit.fluxcd.io/v2") == "helm.toolkit.fluxcd.io"
    assert group_of("v1") == ""


def test_an_object_reads_a_sparse_body_without_failing() -> None:
    obj = Obj({"kind": "ConfigMap", "metadata": None, "spec": []}, "flux-system/apps", "a.yaml")
    assert (obj.name, obj.namespace, obj.spec, obj.ref) == ("", "", {}, Ref("ConfigMap", "", ""))
    assert (
        str(Ref("Secret", "default", "db")) == "Secret default/db"
        and str(Ref("Namespace", "", "x")) == "Namespace x"
    )


def test_a_kustomization_normalises_its_path_source_and_dependencies() -> None:
    ks = FluxKustomization(
        "apps",
        "flux-system",
        {
            "path": "./kubernetes//apps/",
            "dependsOn": [{"name": "crds"}, {"name": "db", "namespace": "data"}, "junk"],
            "postBuild": {"substituteFrom": [{"kind": "Secret"}]},
        },
        "ks.yaml",
    )
    assert ks.id == "flux-system/apps" and ks.path == "kubernetes/apps"
    assert ks.source_ref() == Ref("GitRepository", "flux-system", "")
    assert ks.depends_on() == ["flux-system/crds", "data/db"]
    assert ks.has_postbuild()


def test_a_problem_is_one_line_with_the_chain_that_applies_it() -> None:
    problem = Problem(
        "a.yaml",
        "missing-file",
        "./pvc.yaml not found",
        "default/atuin",
        3,
        ("flux-system/apps", "default/atuin"),
    )
    assert str(problem) == "a.yaml:3: missing-file: ./pvc.yaml not found [flux-system/apps > default/atuin]"
    assert problem.as_dict()["chain"] == ["flux-system/apps", "default/atuin"]
    assert str(Problem("b.yaml", "yaml-invalid", "bad")) == "b.yaml: yaml-invalid: bad"


def test_a_tree_lists_helmreleases_and_sources_by_group() -> None:
    ks = FluxKustomization("apps", "flux-system", {}, "ks.yaml")
    ks.objects = [
        Obj({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease"}, ks.id, "a"),
        Obj({"apiVersion": "example.com/v1", "kind": "HelmRelease"}, ks.id, "b"),
        Obj({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository"}, ks.id, "c"),
    ]
    tree = Tree(".", "kubernetes/flux/cluster", {ks.id: ks})
    assert [o.file for o in tree.helmreleases()] == ["a"] and [o.file for o in tree.sources()] == ["c"]
