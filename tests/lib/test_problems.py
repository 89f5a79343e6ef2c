"""Problems: one line each for the user, listed by file and position."""

from __future__ import annotations

from tasks.lib.errors import UserError
from tasks.lib.problems import ConfigProblem


def test_a_config_problem_is_one_line_with_its_position_and_key() -> None:
    assert str(ConfigProblem("cluster.yaml", 3, 5, "node_cidr", "not a network")) == (
        "cluster.yaml:3:5: node_cidr: not a network"
    )
    assert str(ConfigProblem("nodes.yaml", 7, None, "", "bad")) == "nodes.yaml:7: bad"
    assert str(ConfigProblem("cluster.yaml", None, None, "k", "missing")) == "cluster.yaml: k: missing"


def test_problems_are_listed_by_file_then_line() -> None:
    found = [
        ConfigProblem("nodes.yaml", 1, 1, "a", "x"),
        ConfigProblem("cluster.yaml", 10, 2, "b", "x"),
        ConfigProblem("cluster.yaml", 9, 1, "c", "x"),
        ConfigProblem("cluster.yaml", None, None, "d", "x"),
    ]
    assert UserError.from_problems(found).lines == [
        "cluster.yaml: d: x",
        "cluster.yaml:9:1: c: x",
        "cluster.yaml:10:2: b: x",
        "nodes.yaml:1:1: a: x",
    ]
