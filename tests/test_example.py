"""The bundled example: the repository ships exactly what the templates produce from its
inputs (what CI checks with `inv configure --check`), every secret encrypted to the
test-only key, and the tests' own copy of its inputs is the same.

The check runs on a copy in a temporary directory. Its source is the work tree while that
still holds the example, else the last commit (after `inv init` the work tree's
cluster.sops.yaml is encrypted to the user's own key, and the user may have rendered their
own configuration). A repository whose last commit holds a user's own configuration has no
bundled example left to check.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tasks.lib.config import configure as pipeline
from tasks.lib.config.manifest import Manifest
from tasks.lib.paths import repo_paths
from tasks.lib.secrets.sopsfile import is_encrypted, is_sops_name
from tests.conftest import (
    CODE_ITEMS,
    EXAMPLE_INPUT_FILES,
    EXAMPLE_INPUTS,
    EXAMPLE_OPERATOR,
    RENDERED_ITEMS,
    ROOT,
    copy_items,
)

SHIPPED = (*EXAMPLE_INPUT_FILES, *RENDERED_ITEMS)


def committed(path: str) -> bytes | None:
    result = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, check=False)
    return result.stdout if result.returncode == 0 else None


def export_bundled_example(destination: Path) -> str:
    """Copy the repository's bundled example (code from the work tree) to ``destination``;
    returns where it came from, or skips when the repository holds none."""
    marker = (EXAMPLE_INPUTS / "cluster.sops.yaml").read_bytes()
    copy_items(ROOT, destination, CODE_ITEMS)
    work_tree = ROOT / "cluster.sops.yaml"
    if work_tree.is_file() and work_tree.read_bytes() == marker:
        copy_items(ROOT, destination, SHIPPED)
        return "work tree"
    if committed("cluster.sops.yaml") == marker:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", *SHIPPED], cwd=ROOT, capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(destination, filter="data")
        return "HEAD"
    pytest.skip("neither the work tree nor HEAD holds the bundled example (your own configuration)")


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "bundled"
    export_bundled_example(repo)
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    return repo


def test_bundled_tree_is_what_configure_produces(bundled: Path) -> None:
    lines: list[str] = []
    pipeline.configure(repo_paths(bundled), pipeline.Options(check=True, say=lines.append))
    assert any(line.startswith("rendered ") for line in lines)


def test_the_tests_inputs_are_the_bundled_inputs(bundled: Path) -> None:
    for name in EXAMPLE_INPUT_FILES:
        assert (bundled / name).read_bytes() == (EXAMPLE_INPUTS / name).read_bytes(), (
            f"{name} differs from tests/fixtures/example/{name}: copy it there after changing the example"
        )


def test_every_generated_file_is_recorded_and_every_secret_encrypted(bundled: Path) -> None:
    manifest = Manifest.load(bundled / ".configure-manifest.json")
    assert len(manifest.files) > 100
    secrets = [name for name in manifest.files if is_sops_name(name)]
    assert len(secrets) >= 9
    # The age key is committed (encrypted) once: for flux-system, applied at bootstrap.
    assert [name for name in secrets if name.endswith("sops-age.sops.yaml")] == [
        "bootstrap/sops-age.sops.yaml"
    ]
    for name in manifest.files:
        assert (bundled / name).is_file(), f"{name} is recorded but missing"
    for name in secrets:
        assert is_encrypted(bundled / name), f"{name} is not encrypted"
        assert manifest.files[name].plaintext, f"{name} has no plaintext digest"


def test_inv_configure_check_passes_from_the_command_line(bundled: Path) -> None:
    env = {**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "inv"), "configure", "--check"],
        cwd=bundled / "kubernetes",  # any subdirectory: paths resolve from the repository root
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
