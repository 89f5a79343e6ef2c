"""--helm: the `helm template` command line of each HelmRelease, and the notes that say what
was not inflated or checked (real helm and kubeconform: tests/test_tools_contract.py)."""

from __future__ import annotations

from typing import Any

from tasks.lib.fluxtree.helm import inflate, template_argv
from tasks.lib.fluxtree.model import FluxKustomization, Obj, Tree


def obj(kind: str, api: str, spec: dict[str, Any], name: str = "app") -> Obj:
    return Obj(
        {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "web"}, "spec": spec},
        "ks",
        "f",
    )


def test_an_oci_chart_is_templated_at_its_tag_with_values_on_stdin() -> None:
    hr = obj("HelmRelease", "helm.toolkit.fluxcd.io/v2", {"releaseName": "blog", "targetNamespace": "sites"})
    source = obj(
        "OCIRepository",
        "source.toolkit.fluxcd.io/v1",
        {"url": "oci://ghcr.io/x/app", "ref": {"tag": "1.2.3"}},
    )
    assert template_argv(hr, source, "") == [
        "helm", "template", "blog", "oci://ghcr.io/x/app", "--version", "1.2.3",
        "--namespace", "sites", "--include-crds", "--values", "-",
    ]  # fmt: skip


def test_a_helm_repository_chart_by_repo_or_oci_url_and_git_sources_not_at_all() -> None:
    hr = obj("HelmRelease", "helm.toolkit.fluxcd.io/v2", {"chart": {"spec": {"version": "2.0.0"}}})
    https = obj("HelmRepository", "source.toolkit.fluxcd.io/v1", {"url": "https://charts.example.com"})
    assert template_argv(hr, https, "app")[3:6] == ["app", "--repo", "https://charts.example.com"]  # type: ignore[index]
    oci = obj("HelmRepository", "source.toolkit.fluxcd.io/v1", {"url": "oci://ghcr.io/x/"})
    assert template_argv(hr, oci, "app")[3:6] == ["oci://ghcr.io/x/app", "--version", "2.0.0"]  # type: ignore[index]
    git = obj("GitRepository", "source.toolkit.fluxcd.io/v1", {"url": "https://github.com/x/y"})
    assert template_argv(hr, git, "app") is None


def test_without_the_tools_the_notes_say_what_was_not_done() -> None:
    ks = FluxKustomization("apps", "flux-system", {}, "ks.yaml")
    ks.objects = [obj("HelmRelease", "helm.toolkit.fluxcd.io/v2", {}, name=f"r{i}") for i in range(2)]
    tree = Tree(".", "entry", {ks.id: ks})
    assert inflate(tree, helm=None, kubeconform=None) == [
        "--helm: helm is not installed, 2 HelmRelease(s) not inflated",
        "--helm: kubeconform is not installed, schemas not checked",
    ]
    assert tree.problems == []
