"""The one kustomize build command: standalone kustomize when installed, else kubectl's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.lib.tools import kustomize


def test_the_argv_of_either_tool() -> None:
    assert kustomize.kustomize_argv("apps", "kustomize") == ["kustomize", "build", "apps"]
    assert kustomize.kustomize_argv("apps", "kubectl", unrestricted=True) == [
        "kubectl",
        "kustomize",
        "--load-restrictor",
        "LoadRestrictionsNone",
        "apps",
    ]


def test_kustomize_is_preferred_when_it_is_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert kustomize.pick_kustomize() == "kubectl"
    tool = tmp_path / "kustomize"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert os.access(tool, os.X_OK)
    assert kustomize.pick_kustomize() == "kustomize"
    assert kustomize.kustomize_argv("apps")[:2] == ["kustomize", "build"]
