"""The committed bundled example is exactly what the templates produce (what CI checks with
`inv configure --check`), and its secrets are all encrypted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.lib.config import configure as pipeline
from tasks.lib.config.manifest import Manifest
from tasks.lib.paths import repo_paths
from tasks.lib.secrets.sopsfile import is_encrypted, is_sops_name
from tests.conftest import EXAMPLE_OPERATOR, ROOT


@pytest.fixture
def example_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))


def test_committed_tree_is_what_configure_produces(example_keys: None) -> None:
    lines: list[str] = []
    pipeline.configure(repo_paths(ROOT), pipeline.Options(check=True, say=lines.append))
    assert any(line.startswith("rendered ") for line in lines)


def test_every_generated_file_is_recorded_and_every_secret_encrypted() -> None:
    manifest = Manifest.load(ROOT / ".configure-manifest.json")
    assert len(manifest.files) > 100
    secrets = [name for name in manifest.files if is_sops_name(name)]
    assert len(secrets) >= 9
    # The age key is committed (encrypted) once: for flux-system, applied at bootstrap.
    assert [name for name in secrets if name.endswith("sops-age.sops.yaml")] == [
        "bootstrap/sops-age.sops.yaml"
    ]
    for name in manifest.files:
        assert (ROOT / name).is_file(), f"{name} is recorded but missing"
    for name in secrets:
        assert is_encrypted(ROOT / name), f"{name} is not encrypted"
        assert manifest.files[name].plaintext, f"{name} has no plaintext digest"


def test_inv_configure_check_passes_from_the_command_line() -> None:
    env = {**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR)}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "configure", "--check"],
        cwd=ROOT / "kubernetes",  # any subdirectory: paths resolve from the repository root
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "the tree is exactly what configure produces" in result.stdout


def test_example_operator_keys_are_marked_test_only() -> None:
    readme = (EXAMPLE_OPERATOR / "README.md").read_text()
    assert "TEST-ONLY" in readme
    assert "TEST-ONLY" in (EXAMPLE_OPERATOR / "age.key").read_text()
    assert Path(EXAMPLE_OPERATOR).is_relative_to(ROOT / "tests")
