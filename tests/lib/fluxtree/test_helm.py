"""--helm's pieces without helm: the release name helm-controller uses, a valuesFrom
targetPath written into the values, the chart cache. Rendering with the real helm and
kubeconform: tests/test_fluxtree_helm.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tasks.lib.fluxtree import helm
from tasks.lib.fluxtree.model import Obj


def release(spec: dict[str, Any]) -> Obj:
    return Obj(
        {"kind": "HelmRelease", "metadata": {"name": "web", "namespace": "apps"}, "spec": spec}, "o", "f"
    )


def test_release_name_as_helm_controller_makes_it() -> None:
    assert helm.release_name(release({})) == "web"
    assert helm.release_name(release({"targetNamespace": "media"})) == "media-web"
    assert helm.release_name(release({"releaseName": "site", "targetNamespace": "media"})) == "site"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("3", 3),
        ("true", True),
        ("'3'", "3"),
        ('"x y"', "x y"),
        ("[1, 2]", "[1, 2]"),
        ("a: b", "a: b"),
        ("", ""),
    ],
)
def test_set_path_reads_a_value_as_helm_set_does(raw: str, value: Any) -> None:
    values: dict[str, Any] = {}
    helm.set_path(values, "a.b", raw)
    assert values == {"a": {"b": value}}


def test_set_path_replaces_what_is_in_the_way_and_keeps_the_rest() -> None:
    values: dict[str, Any] = {"a": {"keep": 1, "b": "scalar"}, "other": 2}
    helm.set_path(values, "a.b.c", "x")
    assert values == {"a": {"keep": 1, "b": {"c": "x"}}, "other": 2}
    helm.set_path(values, "", "ignored")
    assert values == {"a": {"keep": 1, "b": {"c": "x"}}, "other": 2}


def test_the_chart_cache_is_in_the_users_cache_and_can_be_cleared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = helm.chart_cache()
    assert cache == tmp_path / "home-ops" / "charts"
    (cache / "x").mkdir(parents=True)
    helm.clear_cache()
    assert not cache.exists()
