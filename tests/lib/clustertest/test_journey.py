"""The cluster test's journey without a cluster: the scratch copy's environment, where
diagnostics go, and how a failure and the report read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.lib.clustertest import journey
from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths
from tasks.lib.tools.runner import Command, Outcome


def test_every_tool_reads_the_scratch_copys_files(tmp_path: Path) -> None:
    values = journey.scratch_variables(tmp_path / "scratch", tmp_path / "tools")
    assert all(Path(value).is_relative_to(tmp_path) for value in values.values())
    assert {"KUBECONFIG", "TALOSCONFIG", "SOPS_AGE_KEY_FILE"} <= values.keys()


def test_the_environment_is_set_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPS_CONFIG", "/callers/.sops.yaml")
    monkeypatch.delenv("HOME_OPS_TEST_VALUE", raising=False)
    with journey.environment({"HOME_OPS_TEST_VALUE": "1"}):
        assert os.environ["HOME_OPS_TEST_VALUE"] == "1" and "SOPS_CONFIG" not in os.environ
    assert "HOME_OPS_TEST_VALUE" not in os.environ and os.environ["SOPS_CONFIG"] == "/callers/.sops.yaml"


def test_diagnostics_stay_inside_the_repository(tmp_path: Path) -> None:
    paths = repo_paths(tmp_path)
    assert journey.diagnostics_folder(paths, "diag").parent == (tmp_path / "diag").resolve()
    for name in ("../outside", ".", "/tmp"):
        with pytest.raises(UserError, match="must be a folder inside the repository"):
            journey.diagnostics_folder(paths, name)


def test_failure_lines_and_report() -> None:
    failed = Outcome(Command(("talosctl", "health")), 1, "", "a\n\nwaiting\nboom\n")
    lines = journey.failure_lines(failed)
    assert lines[1:] == ["  a", "  waiting", "  boom"]
    assert journey.slug("Bootstrap Talos (3 nodes)") == "bootstrap-talos--3-nodes"
    records = [journey.Record(1, "configure", True, 30.0), journey.Record(2, "bootstrap", True, 90.0)]
    assert journey.report(records)[-1] == "  2 steps in 2.0 min"
