"""app.new's checks and the files it scaffolds, without Invoke or a registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from tasks.lib import apps
from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths

CHART = "oci://ghcr.io/bjw-s-labs/helm/app-template"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (CHART, None),
        ("oci://registry.local:5000/charts/x", None),
        ("", "required"),
        ("https://charts.example.com/x", "not an OCI URL"),
        ("oci://ghcr.io/x/chart:1.0.0", "give the version with --version"),
        ("oci://ghcr.io/X/Chart", "not a valid OCI URL"),
        ("oci://ghcr.io/" + "a" * 300, "longer than 255"),
        ("oci://ghcr.io/a//b", "not a valid OCI URL"),
    ],
)
def test_check_chart(url: str, problem: str | None) -> None:
    found = apps.check_chart(url)
    assert (found == []) if problem is None else (len(found) == 1 and problem in found[0])


def test_check_label() -> None:
    assert apps.check_label("echo-2", "NAME", 53) == []
    assert apps.check_label("", "NAME", 53) == ["NAME: required"]
    assert "longer than 53" in apps.check_label("a" * 54, "NAME", 53)[0]
    for bad in ("Echo", "-echo", "echo-", "e_cho", "e.cho"):
        assert "not a DNS-1123 label" in apps.check_label(bad, "NAME", 53)[0]


@given(st.text(max_size=40))
def test_an_accepted_version_is_a_valid_oci_tag(version: str) -> None:
    if not apps.check_version(version) and version:
        assert apps.TAG.match(version.replace("+", "_"))
        assert "\n" not in version and " " not in version


def test_chart_version_of_what_helm_show_chart_prints() -> None:
    assert apps.chart_version(b"apiVersion: v2\nname: x\nversion: 4.2.0\n") == "4.2.0"
    assert apps.chart_version(b"version: 4\n") is None  # not a string
    assert apps.chart_version(b"- a list\n") is None
    assert apps.chart_version(b"{broken") is None
    assert apps.chart_version(b"version: x\n" + b"#" * (1 << 20)) is None


def test_inputs_are_checked_together_before_the_target(tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        apps.check_inputs(repo_paths(tmp_path), "Bad", "", "http://x", "1 0")
    assert [line.split(" ", 1)[0].rstrip(":") for line in error.value.lines] == [
        "NAME",
        "--namespace",
        "--chart",
        "--version",
    ]
    (tmp_path / "kubernetes/apps/web/blog").mkdir(parents=True)
    with pytest.raises(UserError) as error:
        apps.check_inputs(repo_paths(tmp_path), "blog", "web", CHART, "1.0.0")
    assert error.value.lines == [
        "kubernetes/apps/web/blog: already exists; nothing is overwritten (choose another name)",
        "kubernetes/apps/web: has no kustomization.yaml to list the app in — add one, "
        "or choose another namespace",
    ]


def test_a_new_namespace_gets_its_folder_and_every_file_is_yaml(tmp_path: Path) -> None:
    app = apps.App("blog", "web", CHART, "1.2.3")
    files = apps.files_for(repo_paths(tmp_path), app)
    assert sorted(files) == [
        "kubernetes/apps/web/blog/app/helmrelease.yaml",
        "kubernetes/apps/web/blog/app/kustomization.yaml",
        "kubernetes/apps/web/blog/app/ocirepository.yaml",
        "kubernetes/apps/web/blog/ks.yaml",
        "kubernetes/apps/web/kustomization.yaml",
        "kubernetes/apps/web/namespace.yaml",
    ]
    yaml = YAML(typ="safe", pure=True)
    documents = {name: yaml.load(data) for name, data in files.items()}
    assert documents["kubernetes/apps/web/kustomization.yaml"]["resources"] == [
        "./namespace.yaml",
        "./blog/ks.yaml",
    ]
    assert documents["kubernetes/apps/web/blog/ks.yaml"]["spec"]["path"] == "./kubernetes/apps/web/blog/app"
    assert documents["kubernetes/apps/web/blog/app/ocirepository.yaml"]["spec"]["url"] == CHART


def test_an_existing_namespace_keeps_its_kustomization_and_gains_the_app(tmp_path: Path) -> None:
    namespace = tmp_path / "kubernetes/apps/web"
    namespace.mkdir(parents=True)
    (namespace / "kustomization.yaml").write_text(
        "# mine\nresources:\n  - ./namespace.yaml\n  - ./wiki/ks.yaml\n"
    )
    files = apps.files_for(repo_paths(tmp_path), apps.App("blog", "web", CHART, "1.2.3"))
    assert "kubernetes/apps/web/namespace.yaml" not in files
    text = files["kubernetes/apps/web/kustomization.yaml"].decode()
    assert text.startswith("# mine\n") and "./wiki/ks.yaml" in text and "./blog/ks.yaml" in text
    assert apps.create(repo_paths(tmp_path), apps.App("blog", "web", CHART, "1.2.3"), dry=True)[0] == (
        "kubernetes/apps/web/kustomization.yaml"
    )
    assert not (namespace / "blog").exists()
