"""The README's quick start is what CI runs: `.ci/run` executes the two commands of the
README's quick-start block, in order, on the fresh checkout (so CI proves that `inv init
configure` followed by the test suite passes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT

QUICK_START_SHELL = (
    r"sed -n '/^## Quick start/,/^## /p' README.md | sed -n '/^```sh$/,/^```$/p' | sed '1d;$d'"
)


def quick_start(root: Path) -> list[str]:
    result = subprocess.run(["bash", "-c", QUICK_START_SHELL], cwd=root, capture_output=True, text=True)
    return result.stdout.splitlines()


def test_the_readme_quick_start_is_install_init_configure_then_the_tests() -> None:
    first, second = quick_start(ROOT)
    assert first.startswith("python3 -m venv .venv") and first.endswith("inv init configure")
    assert second == ".venv/bin/pytest -n auto"


def ci_run(tmp_path: Path, readme: str) -> subprocess.CompletedProcess[str]:
    """The quick-start part of this repository's `.ci/run` (from where it reads the README
    to the end), on a checkout whose README is ``readme``."""
    script = (ROOT / ".ci" / "run").read_text()
    part = script[script.index("mapfile -t quick_start") :]
    (tmp_path / "README.md").write_text(readme)
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + part], cwd=tmp_path, capture_output=True, text=True
    )


def test_ci_runs_the_readme_commands_in_order(tmp_path: Path) -> None:
    result = ci_run(
        tmp_path,
        "# x\n\n## Quick start\n\n```sh\necho first >> order.txt\necho second >> order.txt\n```\n\n## Next\n",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "order.txt").read_text() == "first\nsecond\n"


def test_ci_stops_at_the_first_failing_command(tmp_path: Path) -> None:
    result = ci_run(tmp_path, "## Quick start\n\n```sh\nfalse && echo no\necho second >> order.txt\n```\n")
    assert result.returncode != 0
    assert not (tmp_path / "order.txt").exists()
