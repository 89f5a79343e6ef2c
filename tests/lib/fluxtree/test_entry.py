"""Where a Flux tree starts: the conventional cluster folder, a folder of Flux
Kustomizations, one of several clusters, or nothing (one line saying what was looked for)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.fluxtree.entry import CLUSTER_DIR, EntryNotFound, locate

FLUX_KS = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n"


def cluster(root: Path, folder: Path = CLUSTER_DIR) -> Path:
    (root / folder).mkdir(parents=True)
    (root / folder / "ks.yaml").write_text(FLUX_KS)
    return (root / folder).resolve()


def test_the_conventional_cluster_folder(tmp_path: Path) -> None:
    entry = cluster(tmp_path)
    assert locate(tmp_path) == (tmp_path.resolve(), entry)
    assert locate(tmp_path / CLUSTER_DIR / "ks.yaml")[1] == entry  # a file: its folder


def test_one_of_several_clusters_must_be_chosen(tmp_path: Path) -> None:
    cluster(tmp_path, Path("kubernetes/home/flux/cluster"))
    lab = cluster(tmp_path, Path("kubernetes/lab/flux/cluster"))
    with pytest.raises(EntryNotFound, match="holds 2 Flux clusters"):
        locate(tmp_path)
    assert locate(tmp_path / "kubernetes" / "lab")[1] == lab


def test_nothing_to_validate_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text("kind: Deployment\n")
    with pytest.raises(EntryNotFound, match="no Flux tree under"):
        locate(tmp_path)
    with pytest.raises(EntryNotFound, match="is not a directory"):
        locate(tmp_path / "absent")
