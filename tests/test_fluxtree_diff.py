"""Object-level diffs of two Flux trees, and `inv dev.diff` on a real git repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from invoke import Config, Context

from tasks import dev
from tasks.lib.fluxtree import validate
from tasks.lib.fluxtree.diff import markdown
from tests.conftest import git

CLEAN = Path(__file__).parent / "fixtures" / "flux-repos" / "clean"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(CLEAN, root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def change_atuin(root: Path) -> None:
    ks = root / "kubernetes/apps/default/atuin/ks.yaml"
    ks.write_text(ks.read_text().replace("VOLSYNC_CAPACITY: 2Gi", "VOLSYNC_CAPACITY: 8Gi"))


def test_markdown_shows_object_diffs(repo: Path) -> None:
    base = validate(repo)
    change_atuin(repo)
    head = validate(repo)
    text = markdown(base, head, base_label="main")
    assert text.startswith("## Flux diff: `main` → working tree")
    assert "### Kustomization `default/atuin`" in text
    assert "PersistentVolumeClaim default/atuin (changed)" in text
    assert "-      storage: 2Gi\n+      storage: 8Gi" in text
    assert "Kustomization default/atuin (changed)" in text  # the Kustomization object itself
    assert len(markdown(base, head, base_label="main", limit=300)) < 600
    assert "not shown" in markdown(base, head, base_label="main", limit=300)
    assert "No changes" in markdown(base, base, base_label="main")


def test_dev_diff_task_uses_a_temporary_worktree(repo: Path, tmp_path: Path, capsys) -> None:
    change_atuin(repo)
    out = tmp_path / "comment.md"
    c = Context(config=Config(overrides={"home_ops": {"root": str(repo)}}))
    dev.diff(c, output_file=str(out))
    printed = capsys.readouterr().out
    assert "storage: 8Gi" in printed
    assert out.read_text() == printed
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1  # the temporary worktree is gone


def test_dev_diff_rejects_unknown_ref(repo: Path) -> None:
    from invoke.exceptions import Exit

    c = Context(config=Config(overrides={"home_ops": {"root": str(repo)}}))
    with pytest.raises(Exit):
        dev.diff(c, base="no-such-branch")
