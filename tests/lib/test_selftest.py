"""dev.e2e's pieces without running it: which configurations, the scratch environment, the
progress and summary lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tasks.lib import selftest
from tasks.lib.errors import UserError
from tasks.lib.tools.runner import TOOLS_DIR_ENV


def config_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in selftest.CONFIG_FILES:
        (path / name).write_text("{}\n")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    config_dir(tmp_path / selftest.EXAMPLE_DIR)
    config_dir(tmp_path / selftest.CONFIGS_DIR / "bgp")
    (tmp_path / selftest.CONFIGS_DIR / "half").mkdir()
    (tmp_path / selftest.CONFIGS_DIR / "half" / "cluster.yaml").write_text("{}\n")
    return tmp_path


def test_available_lists_the_example_then_complete_directories(root: Path) -> None:
    assert [c.name for c in selftest.available(root)] == ["example", "bgp"]
    assert selftest.resolve_configs(root, []) == selftest.available(root)
    with pytest.raises(UserError, match="no test configurations"):
        selftest.resolve_configs(root / "empty", [])


def test_names_and_directories_are_resolved_and_every_problem_reported(root: Path, tmp_path: Path) -> None:
    own = config_dir(tmp_path / "mine")
    chosen = selftest.resolve_configs(root, ["bgp", str(own)])
    assert [(c.name, c.directory) for c in chosen] == [
        ("bgp", root / selftest.CONFIGS_DIR / "bgp"),
        ("mine", own),
    ]
    with pytest.raises(UserError) as error:
        selftest.resolve_configs(root, ["nope", str(root / selftest.CONFIGS_DIR / "half")])
    assert error.value.lines[0] == "nope: not a test configuration (known: example, bgp) nor a directory"
    assert error.value.lines[1].endswith("half: no nodes.yaml in this directory")


def test_the_scratch_environment_points_only_into_the_copy(tmp_path: Path) -> None:
    env = selftest.scratch_env(tmp_path)
    assert {k: v for k, v in env.items() if k != TOOLS_DIR_ENV and v}.keys() >= {"KUBECONFIG", "TALOSCONFIG"}
    assert all(
        v.startswith(str(tmp_path)) for k, v in env.items() if k not in {TOOLS_DIR_ENV, "NO_COLOR"} and v
    )


def test_worktree_files_are_what_git_tracks_or_would_track(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text("secret.key\n")
    (tmp_path / "secret.key").write_text("x")
    (tmp_path / "new.txt").write_text("x")
    assert selftest.worktree_files(tmp_path) == [".gitignore", "new.txt"]
    with pytest.raises(UserError, match="not a git work tree"):
        selftest.worktree_files(tmp_path.parent / "elsewhere")


def test_progress_and_summary_lines(root: Path) -> None:
    example, bgp = selftest.available(root)
    done = [
        selftest.StepResult(selftest.step_label(step), True, 1.0, "configure: done — 3 files")
        for step in selftest.STEPS
    ]
    assert selftest.progress_line(done[0]) == "inv configure: ok (1.0s) — 3 files"
    failed = selftest.StepResult("inv --dry bootstrap.talos", False, 2.0, "configure: done — x")
    assert selftest.progress_line(failed) == "inv --dry bootstrap.talos: FAILED (2.0s)"
    results = [selftest.ConfigResult(example, done), selftest.ConfigResult(bgp, [done[0], failed])]
    assert selftest.summary_lines(results) == [
        "e2e:",
        f"  example  ok      {len(selftest.STEPS)} steps in {len(selftest.STEPS):.1f}s",
        "  bgp      FAILED  at `inv --dry bootstrap.talos`",
        "e2e: 1 of 2 configurations passed",
    ]
