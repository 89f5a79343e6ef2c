"""``inv lint``: every check of .pre-commit-config.yaml, plus actionlint when installed.

``inv lint`` only checks (the hooks of the ``manual`` stage never write a file);
``inv lint.fix`` runs the rewriting hooks (yamlfmt, mdformat, whitespace), then checks.
The hooks install from PyPI only, so no git host needs to be reachable. Like pre-commit
itself, they see the files git knows about: ``git add`` a new file to lint it.
"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context

from tasks.lib.errors import UserError
from tasks.lib.paths import Paths, paths_for
from tasks.lib.taskdef import task
from tasks.lib.tools.runner import find_tool, is_dry, require, run

CHECK_STAGE = "manual"
FIX_HOOKS = ("yamlfmt", "mdformat", "whitespace")
FIX_HINT = "run `inv lint.fix` to rewrite what can be fixed automatically"


def pre_commit(c: Context, paths: Paths, *selection: str, stage: str = CHECK_STAGE) -> bool:
    """Run pre-commit on all files (``selection``: a hook id or alias); True when it passed."""
    require(c, "pre-commit")
    if not (paths.root / ".pre-commit-config.yaml").exists():
        raise UserError(f"{paths.rel(paths.root / '.pre-commit-config.yaml')} not found")
    argv = ["pre-commit", "run", *selection, "--all-files", "--hook-stage", stage, "--color", "auto"]
    return run(c, argv, cwd=paths.root, stream=True, check=False).ok


def actionlint(c: Context, paths: Paths) -> bool:
    """Run actionlint over the workflows when it is installed; say so when it is not."""
    if find_tool("actionlint") is None and not is_dry(c):
        print(
            "actionlint: skipped — not installed (`mise install` installs the version pinned in "
            ".mise.toml); zizmor still audited the workflows"
        )
        return True
    ok = run(c, ["actionlint", "-color"], cwd=paths.root, stream=True, check=False).ok
    if ok:
        print("actionlint: ok")
    return ok


def finish(failed: list[str], hint: str = FIX_HINT) -> None:
    if failed:
        raise UserError(f"lint failed: {', '.join(failed)} — {hint}")
    print("lint: all checks passed")


@task(name="all", default=True)
def lint_all(c: Context) -> None:
    """Check everything (YAML, Markdown, whitespace, secrets, workflows); changes nothing."""
    paths = paths_for(c)
    failed = [] if pre_commit(c, paths) else ["pre-commit hooks"]
    if not actionlint(c, paths):
        failed.append("actionlint")
    finish(failed)


@task
def fix(c: Context) -> None:
    """Rewrite what can be fixed (yamlfmt, mdformat, whitespace), then check everything."""
    paths = paths_for(c)
    for hook in FIX_HOOKS:
        pre_commit(c, paths, hook, stage="pre-commit")
    failed = [] if pre_commit(c, paths) else ["pre-commit hooks"]
    if not actionlint(c, paths):
        failed.append("actionlint")
    finish(failed, hint="these need a fix by hand")


@task
def yaml(c: Context) -> None:
    """Check YAML: yamlfmt formatting (.yamlfmt.yaml) and syntax."""
    paths = paths_for(c)
    finish([] if pre_commit(c, paths, "yaml") else ["yaml"])


@task
def markdown(c: Context) -> None:
    """Check Markdown formatting (mdformat with GFM tables)."""
    paths = paths_for(c)
    finish([] if pre_commit(c, paths, "markdown") else ["markdown"])


@task
def actions(c: Context) -> None:
    """Audit GitHub Actions workflows: zizmor always, actionlint when installed."""
    paths = paths_for(c)
    failed = [] if pre_commit(c, paths, "actions") else ["zizmor"]
    if not actionlint(c, paths):
        failed.append("actionlint")
    finish(failed, hint="see the findings above")


@task
def install(c: Context) -> None:
    """Install the git hook: every commit is formatted and checked for plaintext secrets."""
    paths = paths_for(c)
    require(c, "pre-commit")
    run(c, ["pre-commit", "install", "--install-hooks"], cwd=paths.root, stream=True)


ns = Collection("lint")
for _task in (lint_all, fix, yaml, markdown, actions, install):
    ns.add_task(_task)
