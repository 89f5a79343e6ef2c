"""The engine on a small tree: the root's Kustomization builds a folder whose objects are
substituted; a missing file is one problem located on its kustomization."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.fluxtree.engine import Engine, rel

ROOT_KS = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: web
  namespace: flux-system
spec:
  path: ./kubernetes/apps/web
  sourceRef: {kind: GitRepository, name: flux-system}
  dependsOn:
    - name: database
  postBuild:
    substitute:
      GREETING: hello
"""
CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: greeting
  namespace: web
data:
  text: ${GREETING} ${NAME:=world}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "kubernetes/flux/cluster").mkdir(parents=True)
    (tmp_path / "kubernetes/flux/cluster/ks.yaml").write_text(ROOT_KS)
    (tmp_path / "kubernetes/apps/web").mkdir(parents=True)
    (tmp_path / "kubernetes/apps/web/cm.yaml").write_text(CONFIG_MAP)
    (tmp_path / "kubernetes/apps/web/kustomization.yaml").write_text("resources:\n  - cm.yaml\n")
    return tmp_path


def test_objects_are_built_and_substituted(repo: Path) -> None:
    tree = Engine(repo, repo / "kubernetes/flux/cluster", workers=1).run()
    (config_map,) = [o for o in tree.objects() if o.kind == "ConfigMap"]
    assert config_map.body["data"]["text"] == "hello world"
    assert config_map.owner == "flux-system/web"
    assert tree.problems == []  # dependencies are checked over the whole tree (checks.py)
    assert tree.kustomizations["flux-system/web"].depends_on() == ["flux-system/database"]


def test_a_missing_file_is_reported_on_its_kustomization(repo: Path) -> None:
    (repo / "kubernetes/apps/web/kustomization.yaml").write_text("resources:\n  - cm.yaml\n  - gone.yaml\n")
    tree = Engine(repo, repo / "kubernetes/flux/cluster", workers=1).run()
    assert [(p.kind, p.file, p.kustomization) for p in tree.problems] == [
        ("missing-file", "kubernetes/apps/web/kustomization.yaml", "flux-system/web")
    ]
    assert "gone.yaml" in tree.problems[0].message


def test_rel_is_relative_to_the_root_or_the_path_itself(tmp_path: Path) -> None:
    assert rel(tmp_path, tmp_path / "a" / "b") == "a/b"
    assert rel(tmp_path, tmp_path) == "."
    assert rel(tmp_path / "x", Path("/elsewhere")) == "/elsewhere"
