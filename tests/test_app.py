"""`inv app.new`: an app scaffolded like the bundled ones, deployed in Flux's view, with every
argument checked before anything is written, nothing overwritten, all files or none."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from invoke import Config, Context

from tasks import app
from tasks.lib import apps, swap
from tasks.lib.config import configure as pipeline
from tasks.lib.errors import UserError
from tasks.lib.fluxtree import validate
from tasks.lib.paths import repo_paths
from tests.conftest import ROOT, exit_code
from tests.fakes import FakeTools, fail, ok
from tests.oci_registry import serve
from tests.tools_contract import real_tool

CHART = "oci://ghcr.io/stefanprodan/charts/podinfo"


def context(repo: Path, dry: bool = False) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(repo)}, "run": {"dry": dry}}))


def new(repo: Path, name: str, dry: bool = False, **options: Any) -> None:
    app.new(context(repo, dry), name, **options)


def tree(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted((repo / "kubernetes").rglob("*"))
        if p.is_file()
    }


def kustomizations(repo: Path) -> dict[str, Any]:
    result = validate(repo)
    assert [p.message for p in result.problems] == []
    return {ks.id: ks for ks in result.kustomizations.values()}


def test_an_app_in_a_bundled_namespace_is_deployed(
    example_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new(example_repo, "podinfo", namespace="default", chart=CHART, version="6.7.1")
    out = capsys.readouterr().out
    assert "wrote kubernetes/apps/default/podinfo/ks.yaml" in out
    folder = example_repo / "kubernetes/apps/default/podinfo"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "app/helmrelease.yaml",
        "app/kustomization.yaml",
        "app/ocirepository.yaml",
        "ks.yaml",
    ]
    source = yaml.safe_load((folder / "app/ocirepository.yaml").read_text())
    assert source["spec"]["url"] == CHART and source["spec"]["ref"] == {"tag": "6.7.1"}
    listing = (example_repo / "kubernetes/apps/default/kustomization.yaml").read_text()
    assert listing.endswith("  - ./echo/ks.yaml\n  - ./podinfo/ks.yaml\n")
    deployed = kustomizations(example_repo)["default/podinfo"]
    assert deployed.built and deployed.spec["targetNamespace"] == "default"
    assert sorted((o.kind, o.name) for o in deployed.objects) == [
        ("HelmRelease", "podinfo"),
        ("OCIRepository", "podinfo"),
    ]
    # configure keeps it: the listing is what configure itself writes, and --check agrees.
    pipeline.configure(repo_paths(example_repo), pipeline.Options(check=True, say=lambda line: None))
    pipeline.configure(repo_paths(example_repo), pipeline.Options(say=lambda line: None))
    assert (example_repo / "kubernetes/apps/default/kustomization.yaml").read_text() == listing


def test_an_app_in_a_new_namespace_gets_the_namespace_folder(example_repo: Path) -> None:
    new(example_repo, "jellyfin", namespace="media", chart=CHART, version="1.2.3+build.4")
    folder = example_repo / "kubernetes/apps/media"
    assert yaml.safe_load((folder / "namespace.yaml").read_text())["metadata"]["name"] == "media"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "media"
    assert kustomization["resources"] == ["./namespace.yaml", "./jellyfin/ks.yaml"]
    source = yaml.safe_load((folder / "jellyfin/app/ocirepository.yaml").read_text())
    assert source["spec"]["ref"] == {"tag": "1.2.3_build.4"}  # the tag Helm pushes a `+` version as
    deployed = kustomizations(example_repo)
    assert deployed["media/jellyfin"].built
    namespaces = [o for ks in deployed.values() for o in ks.objects if o.kind == "Namespace"]
    assert "media" in {o.name for o in namespaces}
    new(example_repo, "sonarr", namespace="media", chart=CHART, version="4.0.0")  # a second one
    assert yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"][-1] == "./sonarr/ks.yaml"
    assert kustomizations(example_repo)["media/sonarr"].built


def test_scaffolded_files_are_formatted_as_the_linter_wants(example_repo: Path) -> None:
    new(example_repo, "podinfo", namespace="media", chart=CHART, version="6.7.1")
    shutil.copy(ROOT / ".yamlfmt.yaml", example_repo / ".yamlfmt.yaml")
    files = [str(p) for p in (example_repo / "kubernetes/apps/media").rglob("*.yaml")]
    result = subprocess.run(
        ["yamlfmt", "-lint", *files], cwd=example_repo, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("My_App", {}, "NAME 'My_App': not a DNS-1123 label"),
        ("a" * 54, {}, "longer than 53 characters"),
        ("ok", {"namespace": "-media"}, "--namespace '-media': not a DNS-1123 label"),
        ("ok", {"namespace": ""}, "--namespace: required"),
        ("ok", {"chart": ""}, "--chart: required"),
        ("ok", {"chart": "https://charts.example.com/podinfo"}, "not an OCI URL"),
        ("ok", {"chart": CHART + ":6.7.1"}, "give the version with --version, not in the URL"),
        ("ok", {"chart": "oci://ghcr.io/Upper/case"}, "not a valid OCI URL"),
        ("ok", {"chart": "oci://ghcr.io/x/--flag"}, "not a valid OCI URL"),
        ("ok", {"version": "1.0 beta"}, "--version '1.0 beta': not a chart version"),
        ("ok", {"version": "--set=x"}, "--version '--set=x': not a chart version"),
        ("echo", {}, "kubernetes/apps/default/echo: already exists; nothing is overwritten"),
    ],
)
def test_bad_arguments_are_one_line_each_and_nothing_is_written(
    example_repo: Path, capsys: pytest.CaptureFixture[str], name: str, options: dict[str, str], message: str
) -> None:
    arguments = {"namespace": "default", "chart": CHART, "version": "6.7.1", **options}
    before = tree(example_repo)
    assert exit_code(lambda: new(example_repo, name, **arguments)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert tree(example_repo) == before


def test_a_namespace_folder_without_kustomization_is_refused(example_repo: Path) -> None:
    (example_repo / "kubernetes/apps/media").mkdir()
    with pytest.raises(UserError) as raised:
        apps.scaffold(repo_paths(example_repo), "x", "media", CHART, "1.0.0", False, False)
    (line,) = raised.value.lines
    assert line.startswith("kubernetes/apps/media: has no kustomization.yaml to list the app in — add one")


def test_without_version_the_newest_is_asked_of_the_registry(
    example_repo: Path, fake_tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_tools.script("helm", ("show chart", ok("apiVersion: v2\nname: podinfo\nversion: 6.7.1+build\n")))
    new(example_repo, "podinfo", namespace="default", chart=CHART)
    assert fake_tools.lines("helm") == [f"helm show chart {CHART}"]
    source = (example_repo / "kubernetes/apps/default/podinfo/app/ocirepository.yaml").read_text()
    assert 'tag: "6.7.1_build"' in source
    assert f"chart {CHART} version 6.7.1_build" in capsys.readouterr().out


def test_offline_without_version_is_one_line_asking_for_it(
    example_repo: Path, fake_tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://ghcr.io/v2/stefanprodan/charts/podinfo/tags/list"
    offline = f'Error: Get "{url}": dial tcp: lookup ghcr.io: no such host'
    fake_tools.script("helm", ("show chart", fail(offline)))
    before = tree(example_repo)
    assert exit_code(lambda: new(example_repo, "podinfo", namespace="default", chart=CHART)) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"could not read the versions of {CHART} from its registry (Get ")
    assert "no such host" in line and line.endswith("pass the version with --version VERSION")
    assert tree(example_repo) == before


def test_without_helm_and_version_the_error_asks_for_the_version(
    example_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(apps, "find_tool", lambda name: None)
    assert exit_code(lambda: new(example_repo, "podinfo", namespace="default", chart=CHART)) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("--version not given and helm not found") and "--version VERSION" in line


def test_dry_run_writes_nothing_and_shows_the_registry_question(
    example_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(example_repo)
    new(example_repo, "podinfo", dry=True, namespace="media", chart=CHART)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"would ask the registry for the newest version: helm show chart {CHART}"
    assert "would write kubernetes/apps/media/namespace.yaml" in out
    assert "would write kubernetes/apps/media/podinfo/ks.yaml" in out
    assert tree(example_repo) == before


def test_a_failing_write_leaves_nothing_behind(
    example_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(example_repo)
    real_replace = os.replace
    calls = {"n": 0}

    def flaky(source: Any, target: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # in the middle of the renames
            raise OSError(28, "No space left on device", str(target))
        real_replace(source, target)

    monkeypatch.setattr(swap.os, "replace", flaky)
    assert (
        exit_code(lambda: new(example_repo, "podinfo", namespace="default", chart=CHART, version="6.7.1"))
        == 1
    )
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("could not write the new files, so nothing was changed")
    assert tree(example_repo) == before


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(max_size=70),
    namespace=st.text(max_size=70),
    chart=st.text(max_size=90),
    version=st.text(max_size=40),
)
def test_any_arguments_are_refused_cleanly_or_give_valid_yaml(
    name: str, namespace: str, chart: str, version: str
) -> None:
    problems = [
        *apps.check_label(name, "NAME", apps.MAX_NAME),
        *apps.check_label(namespace, "--namespace", apps.MAX_NAMESPACE),
        *apps.check_chart(chart),
        *apps.check_version(version),
    ]
    if problems:
        assert all("\n" not in line for line in problems)
        return
    target = apps.App(name, namespace, chart, version or "1.0.0")
    for text in (apps.ks_yaml(target), apps.helmrelease_yaml(target), apps.ocirepository_yaml(target)):
        document = yaml.safe_load(text)
        assert document["metadata"]["name"] == name
    assert yaml.safe_load(apps.ocirepository_yaml(target))["spec"]["url"] == chart


@pytest.mark.tools
def test_the_real_helm_finds_the_newest_stable_version_in_a_registry(
    example_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OCI registry stand-in lists tags out of order, a pre-release and `latest`: the
    newest stable version is 1.10.0, as `helm show chart` (helm's own tag sort) finds it."""
    helm = real_tool("helm")
    monkeypatch.setenv("PATH", f"{Path(helm).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(example_repo.parent / "home"))  # helm's registry config
    with serve() as (host, registry):
        new(
            example_repo,
            "podinfo",
            namespace="default",
            chart=f"oci://{host}/charts/podinfo",
            plain_http=True,
        )
    source = yaml.safe_load(
        (example_repo / "kubernetes/apps/default/podinfo/app/ocirepository.yaml").read_text()
    )
    assert source["spec"]["ref"] == {"tag": "1.10.0"}
    assert registry.pulled == ["charts/podinfo:1.10.0"]
