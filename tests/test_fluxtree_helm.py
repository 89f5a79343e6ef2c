"""``dev.validate --helm`` and ``dev.diff --helm`` with the real helm and kubeconform, charts
served by the local OCI registry (tests/oci_registry.py) and one chart folder of the
repository itself; an unreachable Helm repository stands for being offline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke import Config, Context

from tasks import dev
from tasks.lib.fluxtree import validate
from tasks.lib.fluxtree.helm import release_name, set_path
from tasks.lib.fluxtree.model import Obj
from tasks.lib.fluxtree.values import merge_values
from tests.conftest import git
from tests.oci_registry import Registry, serve
from tests.tools_contract import TOOLS_DIR, real_tool

pytestmark = pytest.mark.tools

KS = """---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 1h
  path: ./kubernetes/apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"""
SOURCES = """---
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: web
  namespace: default
spec:
  interval: 1h
  url: oci://{registry}/charts/web
  insecure: true
  ref:
    tag: 1.0.0
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: charts
  namespace: default
spec:
  interval: 1h
  type: oci
  url: oci://{registry}/charts
  insecure: true
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: unreachable
  namespace: default
spec:
  interval: 1h
  url: http://127.0.0.1:1/charts
"""
RELEASES = """---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-values
  namespace: default
data:
  values.yaml: |
    data:
      from: valuesFrom
      both: valuesFrom
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: web
  namespace: default
spec:
  interval: 1h
  chartRef:
    kind: OCIRepository
    name: web
  valuesFrom:
    - kind: ConfigMap
      name: web-values
  values:
    data:
      both: inline
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: api
  namespace: default
spec:
  interval: 1h
  chart:
    spec:
      chart: api
      version: 2.0.0
      sourceRef:
        kind: HelmRepository
        name: charts
  values:
    pod:
      image:
        repository: ghcr.io/example/api
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: local
  namespace: default
spec:
  interval: 1h
  chart:
    spec:
      chart: ./charts/local
      sourceRef:
        kind: GitRepository
        name: flux-system
        namespace: flux-system
  values:
    greeting: hello
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: offline
  namespace: default
spec:
  interval: 1h
  chart:
    spec:
      chart: offline
      version: 1.0.0
      sourceRef:
        kind: HelmRepository
        name: unreachable
"""
LOCAL_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: local\nversion: 0.1.0\n",
    "values.yaml": "greeting: hi\n",
    "templates/configmap.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-local\n"
        "data:\n  greeting: {{ .Values.greeting }}\n"
    ),
}


@pytest.fixture
def registry() -> Iterator[tuple[str, Registry]]:
    with serve() as running:
        yield running


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_tool("helm")
    real_tool("kubeconform")
    monkeypatch.setenv("HOME_OPS_TOOLS_DIR", str(TOOLS_DIR))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # charts cached here


def make_repo(root: Path, host: str) -> Path:
    files = {
        "kubernetes/flux/cluster/ks.yaml": KS,
        "kubernetes/apps/sources.yaml": SOURCES.format(registry=host),
        "kubernetes/apps/releases.yaml": RELEASES,
        **{f"charts/local/{name}": text for name, text in LOCAL_CHART.items()},
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_values_merge_as_helm_controller_does() -> None:
    assert merge_values({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": 3}, "l": [2]}) == {
        "a": {"b": 3, "c": 2},
        "l": [2],
    }
    values: dict = {"a": {"x": 1}}
    set_path(values, "a.b.c", "true")
    set_path(values, "quoted", "'true'")
    assert values == {"a": {"x": 1, "b": {"c": True}}, "quoted": "true"}
    hr = Obj({"kind": "HelmRelease", "metadata": {"name": "web", "namespace": "x"}, "spec": {}}, "o", "f")
    assert release_name(hr) == "web"
    hr.body["spec"]["targetNamespace"] = "media"
    assert release_name(hr) == "media-web"


def test_every_helmrelease_is_rendered_and_checked(
    tmp_path: Path, registry: tuple[str, Registry], tools: None
) -> None:
    host, served = registry
    repo = make_repo(tmp_path / "repo", host)
    tree = validate(repo, helm=True)
    assert [(p.kind, p.file, p.line) for p in tree.problems] == [
        ("schema-invalid", "kubernetes/apps/releases.yaml", 30)
    ]
    assert (
        "HelmRelease default/api's chart renders Pod api: spec.containers[0].image"
        in tree.problems[0].message
    )
    (web,) = [o for o in tree.rendered["default/web"] if o.name == "web-values"]
    assert web.body["data"] == {"from": "valuesFrom", "both": "inline"}  # valuesFrom, then values
    (local,) = tree.rendered["default/local"]
    assert local.body["data"] == {"greeting": "hello"}
    offline = [n for n in tree.notes if "not rendered (offline)" in n]
    unreachable = "HelmRepository default/unreachable (http://127.0.0.1:1/charts)"
    assert offline == [f"--helm: not rendered (offline): {unreachable} (1 HelmRelease(s))"]
    assert sorted(served.pulled) == ["charts/api:2.0.0", "charts/web:1.0.0"]
    validate(repo, helm=True)
    assert sorted(served.pulled) == ["charts/api:2.0.0", "charts/web:1.0.0"]  # the second run: from the cache
    blobs = list((tmp_path / "cache/home-ops/charts/blobs").glob("*.tgz"))
    assert len(blobs) == 2 and all(re.fullmatch(r"[0-9a-f]{64}\.tgz", b.name) for b in blobs)


def test_dev_diff_shows_what_changed_charts_render(
    tmp_path: Path, registry: tuple[str, Registry], tools: None, capsys: pytest.CaptureFixture[str]
) -> None:
    host, _served = registry
    repo = make_repo(tmp_path / "repo", host)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    releases = repo / "kubernetes/apps/releases.yaml"
    releases.write_text(releases.read_text().replace("both: inline", "both: changed"))
    c = Context(config=Config(overrides={"home_ops": {"root": str(repo)}}))
    dev.diff(c, helm=True)
    text = capsys.readouterr().out
    assert "### HelmRelease `default/web` (what its chart renders)" in text
    assert "ConfigMap default/web-values (changed)" in text
    assert "-  both: inline\n+  both: changed" in text
    assert "HelmRelease `default/api`" not in text  # unchanged releases are not rendered
