"""Renovate's extraction log, the Node engine range and the workflow's pinned version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.lib import renovate as rv
from tasks.lib.errors import UserError


def log(package_files: dict) -> list[str]:
    """A Renovate JSON log as `--dry-run=extract` writes it (other records around it)."""
    return [
        json.dumps({"level": 30, "msg": "Repository started"}),
        "not json at all",
        json.dumps({"level": 30, "msg": "Extracted dependencies", "packageFiles": package_files}),
        json.dumps({"level": 30, "msg": "Repository finished"}),
    ]


def dep(name: str, value: str = "1.0.0", **extra: str) -> dict:
    return {"depName": name, "datasource": "docker", "currentValue": value, **extra}


def test_extraction_log_is_read_per_manager_and_file() -> None:
    deps = rv.extracted(
        log(
            {
                "flux": [{"packageFile": "k/hr.yaml", "deps": [dep("ghcr.io/a/chart")]}],
                "mise": [
                    {"packageFile": ".mise.toml", "deps": [dep("sops", skipReason="github-token-required")]}
                ],
            }
        )
    )
    assert [(d.manager, d.file, d.name) for d in deps] == [
        ("flux", "k/hr.yaml", "ghcr.io/a/chart"),
        ("mise", ".mise.toml", "sops"),
    ]
    assert rv.summary(deps) == [
        "flux: 1 dependencies in 1 files",
        "mise: 1 dependencies in 1 files (skipped: 1 github-token-required)",
    ]
    assert rv.extracted(["{broken", json.dumps({"msg": "other"})]) == []


def test_a_dependency_two_managers_find_in_one_file_is_reported_once() -> None:
    deps = rv.extracted(
        log(
            {
                "helmfile": [{"packageFile": "b/01-apps.yaml", "deps": [dep("cilium"), dep("coredns")]}],
                "regex": [{"packageFile": "b/01-apps.yaml", "deps": [dep("cilium")]}],
                # the same action in two jobs of one workflow is one manager: fine
                "github-actions": [{"packageFile": "w.yaml", "deps": [dep("actions/checkout")] * 2}],
            }
        )
    )
    (line,) = rv.duplicates(deps)
    assert line.startswith("b/01-apps.yaml: cilium is found by helmfile and regex")
    assert ".renovaterc.json5" in line


@pytest.mark.parametrize(
    ("found", "engine", "ok"),
    [
        ("v24.19.0", "^24.11.0", True),
        ("v24.10.0", "^24.11.0", False),
        ("v20.20.2", "^24.11.0", False),
        ("v25.0.0", "^24.11.0", False),
        ("v22.14.0", "^22.13.0 || ^24.11.0", True),
        ("v20.20.2", ">=18", True),  # not a caret range: npm decides
        ("v20.20.2", "", True),
    ],
)
def test_node_engine_ranges(found: str, engine: str, ok: bool) -> None:
    assert rv.node_satisfies(found, engine) is ok


@given(st.tuples(*[st.integers(0, 40)] * 3), st.tuples(*[st.integers(0, 40)] * 3))
def test_caret_range_is_same_major_and_not_older(have: tuple[int, ...], want: tuple[int, ...]) -> None:
    found, engine = "v{}.{}.{}".format(*have), "^{}.{}.{}".format(*want)
    assert rv.node_satisfies(found, engine) is (have[0] == want[0] and have >= want)


def write_workflow(root: Path, step: dict) -> None:
    from ruamel.yaml import YAML

    path = root / rv.WORKFLOW
    path.parent.mkdir(parents=True)
    YAML().dump({"jobs": {"renovate": {"steps": [{"name": "Checkout"}, step]}}}, path)


def test_workflow_version_is_the_actions_renovate_version(tmp_path: Path) -> None:
    write_workflow(tmp_path, {"uses": f"{rv.ACTION}@abc", "with": {"renovate-version": "44.121.2"}})
    assert rv.workflow_version(tmp_path) == "44.121.2"


def test_an_unpinned_renovate_is_an_error_that_says_how_to_pin(tmp_path: Path) -> None:
    write_workflow(tmp_path, {"uses": f"{rv.ACTION}@abc", "with": {"token": "x"}})
    with pytest.raises(UserError, match="no `with: renovate-version:`"):
        rv.workflow_version(tmp_path)
    with pytest.raises(UserError, match="not found"):
        rv.workflow_version(tmp_path / "elsewhere")
