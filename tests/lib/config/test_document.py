"""Reading YAML config files with positions (tasks/lib/config/document.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.config import document
from tasks.lib.errors import UserError


def test_positions_are_one_based_for_values_items_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("---\nnode_cidr: 10.0.0.0/24\nlist:\n  - a\n  - b\n")
    doc = document.read_yaml(path, "cluster.yaml")
    assert document.position(doc.data, "node_cidr") == (2, 12)
    assert document.position(doc.data["list"], 1) == (5, 5)
    assert document.key_position(doc.data, "list") == (3, 1)
    problem = doc.problem(doc.data, "node_cidr", "node_cidr", "wrong")
    assert str(problem) == "cluster.yaml:2:12: node_cidr: wrong"


def test_read_documents_reports_every_file_at_once(tmp_path: Path) -> None:
    good, broken, absent = tmp_path / "good.yaml", tmp_path / "broken.yaml", tmp_path / "absent.yaml"
    good.write_text("a: 1\n")
    broken.write_text("a: [\n")
    with pytest.raises(UserError) as raised:
        document.read_documents([(broken, "broken.yaml"), (good, "good.yaml"), (absent, "absent.yaml")])
    assert [line.split()[0].split(":")[0] for line in raised.value.lines] == ["broken.yaml", "absent.yaml"]
    assert "invalid YAML" in raised.value.lines[0]


def test_read_documents_names_a_missing_file_with_the_callers_hint(tmp_path: Path) -> None:
    with pytest.raises(UserError) as raised:
        document.read_documents([(tmp_path / "nodes.yaml", "nodes.yaml")], missing_hint="create it first")
    assert raised.value.lines == ["nodes.yaml not found — create it first"]


def test_read_documents_returns_them_in_order(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\n")
    docs = document.read_documents((tmp_path / f"{n}.yaml", n) for n in ("one", "two"))
    assert [d.data["name"] for d in docs] == ["one", "two"]


def test_aliases_are_counted_as_if_expanded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="more than 10000 values"):
        document.read_yaml(path, "bomb.yaml")
