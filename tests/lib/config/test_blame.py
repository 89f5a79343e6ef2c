"""A rendered file's parse error blamed on the config keys whose values sit on its lines."""

from __future__ import annotations

from pathlib import Path

from tasks.lib.config import blame, document
from tasks.lib.config.blame import Origin


def documents(tmp_path: Path) -> tuple[document.Document, document.Document]:
    (tmp_path / "cluster.yaml").write_text("node_cidr: 10.0.0.0/24\ndns:\n  - 1.1.1.1\nempty: ''\n")
    (tmp_path / "nodes.yaml").write_text("nodes:\n  - name: k8s-0\n    disk: S4EWNX0R123456\n")
    return (
        document.read_yaml(tmp_path / "cluster.yaml", "cluster.yaml"),
        document.read_yaml(tmp_path / "nodes.yaml", "nodes.yaml"),
    )


def test_origins_are_every_set_scalar_with_its_position(tmp_path: Path) -> None:
    found = [str(o) for o in blame.origins(*documents(tmp_path))]
    assert found == [
        "cluster.yaml:1:12: node_cidr",
        "cluster.yaml:3:5: dns[0]",
        "nodes.yaml:2:11: nodes[0].name",
        "nodes.yaml:3:11: nodes[0].disk",
    ]


def test_blame_names_the_longest_values_found_never_a_part_of_one() -> None:
    candidates = [
        Origin("c", 1, 1, "short", "k8s"),
        Origin("c", 2, 1, "long", "k8s-0.lan"),
        Origin("c", 3, 1, "other", "10.0.0.1"),
        Origin("c", 4, 1, "tiny", "x"),
    ]
    assert [o.key for o in blame.blame(candidates, ["host: k8s-0.lan", "  x: 10.0.0.1"])] == ["long", "other"]
    assert blame.blame(candidates, ["nothing here"]) == []
