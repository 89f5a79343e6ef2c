"""Object-level diffs of two Flux trees: noise stripped, Secrets hidden, the comment cut at
its limit. Against a real repository: tests/test_fluxtree_diff.py."""

from __future__ import annotations

from tasks.lib.fluxtree.diff import changes, markdown, normalize
from tasks.lib.fluxtree.model import FluxKustomization, Obj, Tree


def test_normalize_strips_noise_and_hides_secrets() -> None:
    body = {
        "kind": "Secret",
        "metadata": {
            "name": "s",
            "labels": {"helm.sh/chart": "x-1.0", "app": "a", "app.kubernetes.io/version": "1"},
            "annotations": {"checksum/config": "abc"},
        },
        "data": {"key": "c2VjcmV0"},
        "sops": {"mac": "x"},
    }
    out = normalize(body)
    assert out["metadata"] == {"name": "s", "labels": {"app": "a"}}
    assert out["data"] == {"key": "<redacted>"}
    assert "sops" not in out
    assert body["data"] == {"key": "c2VjcmV0"}  # the input is untouched


def tree(*bodies: dict) -> Tree:
    ks = FluxKustomization("apps", "flux-system", {}, "ks.yaml")
    ks.objects = [Obj(body, ks.id, "f.yaml") for body in bodies]
    return Tree(".", "entry", {ks.id: ks})


def config_map(name: str, value: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "a"},
        "data": {"k": value},
    }


def test_changes_are_added_removed_or_changed() -> None:
    base = tree(config_map("one", "1"), config_map("two", "2"))
    head = tree(config_map("one", "1b"), config_map("three", "3"))
    found = changes(base, head, base_label="main", head_label="head")
    assert [(c.label, c.status) for c in found] == [
        ("ConfigMap a/one", "changed"),
        ("ConfigMap a/three", "added"),
        ("ConfigMap a/two", "removed"),
    ]
    assert "-  k: '1'" in found[0].diff and "+  k: 1b" in found[0].diff


def test_markdown_says_when_nothing_changed_and_cuts_at_its_limit() -> None:
    same = tree(config_map("one", "1"))
    assert "No changes" in markdown(same, same, base_label="main")
    head = tree(*(config_map(f"cm{i}", "x" * 200) for i in range(20)))
    text = markdown(same, head, base_label="main", limit=2000)
    assert len(text) < 2500 and "more object diff(s) not shown" in text
