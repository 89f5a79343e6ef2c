"""What the GitHub Actions workflows need from a step, as plain functions.

A workflow step hands its results on through files GitHub names in the environment:
``GITHUB_OUTPUT`` (``key=value`` lines for later steps' ``if:``) and ``GITHUB_STEP_SUMMARY``
(markdown shown on the run's page). Outside Actions both are unset, and the tasks print
instead, so every step runs the same on a workstation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

OUTPUT_ENV = "GITHUB_OUTPUT"
SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def touches(changed: Iterable[str], prefixes: Sequence[str]) -> list[str]:
    """The changed paths that lie under one of ``prefixes`` (a directory, with or without
    its trailing slash, or a file), in git's order."""
    wanted = [PurePosixPath(p.rstrip("/")) for p in prefixes if p.strip("/")]
    hits = []
    for name in changed:
        path = PurePosixPath(name)
        if any(path == w or w in path.parents for w in wanted):
            hits.append(name)
    return hits


def changed_since(root: Path, base: str) -> list[str]:
    """The paths changed between the merge base of ``base`` and HEAD (a pull request's
    diff). ``base`` is resolved to a commit first: a value git would read as an option, or
    a ref it does not know, is one line and exit 1 (never "nothing changed")."""
    from tasks.lib.boundary import git_commit
    from tasks.lib.errors import UserError
    from tasks.lib.tools.runner import Command, run_one

    commit = git_commit(root, base)
    argv = ("git", "diff", "--name-only", "-z", "--end-of-options", f"{commit}...HEAD")
    outcome = run_one(Command(argv, cwd=root, deadline=120))
    if not outcome.ok:
        raise UserError(f"cannot diff against {base!r}: {outcome.problem}")
    return [name for name in outcome.data.decode("utf-8", "replace").split("\0") if name]


def append(env_name: str, text: str) -> Path | None:
    """Append ``text`` to the file the environment variable names; None when it is unset."""
    target = os.environ.get(env_name)
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    return path


def set_output(name: str, value: str) -> Path | None:
    """``name=value`` for later steps (``steps.<id>.outputs.<name>``)."""
    return append(OUTPUT_ENV, f"{name}={value}")
