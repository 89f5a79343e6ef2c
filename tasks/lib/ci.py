"""What the GitHub Actions workflows need from a step, as plain functions.

A workflow step hands its results on through files GitHub names in the environment:
``GITHUB_OUTPUT`` (``key=value`` lines for later steps' ``if:``) and ``GITHUB_STEP_SUMMARY``
(markdown shown on the run's page). Outside Actions both are unset, and the tasks print
instead, so every step runs the same on a workstation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from tasks.lib.boundary import git_commit
from tasks.lib.errors import UserError
from tasks.lib.tools.runner import Command, run_one

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


#: Where the Renovate workflow's credentials come from (names of its step environment).
RENOVATE_APP_TOKEN_ENV = "RENOVATE_APP_TOKEN"  # noqa: S105 - a variable name
RENOVATE_TOKEN_ENV = "RENOVATE_TOKEN"  # noqa: S105 - a variable name
RENOVATE_SETUP = (
    "Renovate is not set up for this repository, so it did not run. Either install a GitHub App "
    "(repository variable RENOVATE_APP_CLIENT_ID, secret RENOVATE_APP_PRIVATE_KEY) or add a "
    "fine-grained token as the secret RENOVATE_TOKEN: step by step in docs/tasks/ci.md#renovate"
)


def no_base(base: str) -> bool:
    """A push that created the branch (all-zero ``before``) or a manual run has nothing to
    compare with: everything counts as changed."""
    return not base.strip() or set(base.strip()) == {"0"}


def renovate_credential(env: Mapping[str, str]) -> str:
    """Which credential the Renovate workflow has: ``app``, ``token`` or "" (none)."""
    if env.get(RENOVATE_APP_TOKEN_ENV, "").strip():
        return "app"
    if env.get(RENOVATE_TOKEN_ENV, "").strip():
        return "token"
    return ""


def warning(title: str, message: str) -> str:
    """A warning line: an annotation on the run's page inside Actions, plain text outside."""
    if os.environ.get("GITHUB_ACTIONS") == "true":
        return f"::warning title={title}::{message}"
    return f"warning: {message}"
