"""Shell completion from the virtualenv, and the way the README sets it up for `uv run`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
README = (ROOT / "README.md").read_text()


def inv(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "tasks", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_prints_for_each_documented_shell(shell: str) -> None:
    script = inv("--print-completion-script", shell)
    assert "invoke --complete" in script or "invoke ${=collection_arg} --complete" in script
    assert f"inv --print-completion-script {shell}" in README


def test_completion_lists_our_tasks_and_their_options() -> None:
    tasks = inv("--complete", "--", "inv").split()
    assert {"configure", "doctor", "bootstrap.talos", "lint.renovate", "ci.changed"} <= set(tasks)
    assert "--base" in inv("--complete", "--", "inv", "dev.diff", "--").split()


def bash_complete(script: str, words: str, path: str) -> list[str]:
    """What bash offers after ``words`` + Tab, with the completion ``script`` loaded."""
    probe = f'{script}\nCOMP_WORDS=({words} ""); _complete_invoke inv "" ; printf "%s\\n" "${{COMPREPLY[@]}}"'
    env = {**os.environ, "PATH": path}
    out = subprocess.run(["bash", "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completes_task_names_with_the_virtualenv_on_path() -> None:
    path = os.pathsep.join([str(VENV_BIN), "/usr/bin", "/bin"])
    offered = bash_complete(inv("--print-completion-script", "bash"), "inv", path)
    assert "bootstrap.apps" in offered and "lint.renovate" in offered


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_the_readmes_uv_recipe_completes_without_an_active_virtualenv(tmp_path: Path) -> None:
    """The README's sed line, with a stand-in `uv` that runs the project's commands the way
    `uv run` does (from the project's virtualenv), and no virtualenv on PATH."""
    (recipe,) = re.findall(r"\| (sed '[^']+')\)", README)
    fake_uv = tmp_path / "uv"
    fake_uv.write_text(f'#!/bin/sh\n[ "$1" = run ] && shift\nexec "{VENV_BIN}/$@"\n')
    fake_uv.chmod(0o755)
    path = os.pathsep.join([str(tmp_path), "/usr/bin", "/bin"])
    script = subprocess.run(
        f"uv run inv --print-completion-script bash | {recipe}",
        shell=True,
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "uv run invoke --complete" in script
    offered = bash_complete(script, "inv lint.", path)
    assert "lint.renovate" in offered and "configure" in offered
