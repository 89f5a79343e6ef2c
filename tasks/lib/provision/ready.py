"""Is this repository ready to become a cluster? Checked before ``bootstrap.*`` touches one.

- **Your values, not the example's.** While the example's domain, repository or fake secrets
  (or ``inv init``'s placeholders) are still in place (one definition:
  :mod:`tasks.lib.config.examples`), ``bootstrap.talos`` and ``bootstrap.apps`` stop, unless
  ``--yes`` says that is intended.
- **Your commit on the remote.** Flux installs what is on the repository and branch of
  ``cluster.yaml``, not the work tree: ``bootstrap.apps`` would otherwise start a cluster from
  whatever was pushed last, or from nothing. It finds the remote of this checkout that is
  that repository (any URL spelling, :mod:`tasks.lib.gitremote`; else, for a URL through an
  ssh host alias, the remote the branch tracks), fetches the branch and
  stops unless ``HEAD`` is on it and ``kubernetes/`` holds nothing uncommitted.

Every command runs through the runner, with a deadline; under ``--dry`` nothing is fetched
and a refusal is only a note.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.lib.config import examples
from tasks.lib.config.configure import sops_decrypt
from tasks.lib.config.examples import ExampleValue
from tasks.lib.config.template_context import load_secrets
from tasks.lib.errors import UserError
from tasks.lib.gitremote import GitUrl, flux_remote, unpushed
from tasks.lib.paths import Paths
from tasks.lib.tools.runner import Command, Outcome, command_line, find_tool, run_one

if TYPE_CHECKING:
    from tasks.lib.config.schema import ClusterConfig

#: How long fetching the branch may take, in seconds (an ssh passphrase may be asked).
FETCH_TIMEOUT = 120.0
LOCAL_TIMEOUT = 30.0


# --------------------------------------------------------------------------- example values


def example_values(paths: Paths, config: ClusterConfig) -> list[ExampleValue]:
    """The example's values still in cluster.yaml and (decrypted in memory) cluster.sops.yaml,
    whose secrets are checked against what ``config`` needs (as ``configure`` does)."""
    found = examples.in_config(config.cluster, paths.rel(paths.cluster_config))
    if paths.secrets_config.is_file():
        found += examples.in_secrets(
            load_secrets(paths, sops_decrypt(paths), config), paths.rel(paths.secrets_config)
        )
    return found


def refuse_examples(paths: Paths, config: ClusterConfig, yes: bool, dry: bool) -> None:
    """Stop while the example's values are in place, unless ``yes``; ``dry`` only notes it."""
    found = example_values(paths, config)
    if not found or yes:
        return
    lines = [
        "the example's values are still in place; a cluster bootstrapped from them would not be yours:",
        *(f"  {value.line()}" for value in found),
        f"{examples.advice(found)}; or pass --yes to bootstrap with them anyway",
    ]
    if dry:
        for line in ["note: without --dry this stops here:", *lines]:
            print(line, file=sys.stderr)
        return
    raise UserError(*lines)


# --------------------------------------------------------------------------- the remote


def git(root: Path, *args: str, timeout: float = LOCAL_TIMEOUT, what: str = "") -> Outcome:
    return run_one(Command(("git", *args), cwd=root, deadline=timeout, what=what))


def last_line(outcome: Outcome) -> str:
    if outcome.limit:
        return outcome.problem
    return outcome.last_line.removeprefix("fatal: ")[:200]


def commands(remote: str, branch: str) -> list[list[str]]:
    """The check's git commands: uncommitted changes Flux would not see, then the fetch of
    the branch into its remote-tracking ref (which the comparison reads)."""
    refspec = f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}"
    return [
        ["git", "status", "--porcelain", "--", "kubernetes"],
        ["git", "fetch", "--quiet", "--no-tags", "--end-of-options", remote, refspec],
    ]


def check_pushed(root: Path, repository: GitUrl, branch: str, dry: bool = False) -> str:
    """Stop with one line unless ``HEAD`` is on ``branch`` of the remote that is
    ``repository`` and ``kubernetes/`` holds nothing uncommitted (``dry``: show the commands,
    note what would stop, fetch nothing). Returns ``REMOTE/BRANCH``."""
    try:
        remote = find_remote(root, repository)
    except UserError as error:
        if not dry:
            raise
        for line in ["note: without --dry this stops here:", *error.lines]:
            print(line, file=sys.stderr)
        return f"{repository}/{branch}"
    status, fetch = commands(remote, branch)
    if dry:
        print(f"# check that HEAD is on {remote}/{branch}, which Flux deploys:")
        for argv in (status, fetch):
            print(command_line(argv))
        return f"{remote}/{branch}"
    changed = git(root, *status[1:])
    if changed.ok and changed.stdout.strip():
        raise UserError(
            "kubernetes/ has changes that are not committed, and Flux deploys only what is pushed — "
            f"commit and push them (`git push {remote} HEAD:{branch}`), then run this again"
        )
    fetched = git(root, *fetch[1:], timeout=FETCH_TIMEOUT, what=f"fetching {branch} from {remote}")
    if not fetched.ok:
        raise UserError(fetch_problem(fetched, remote, branch))
    problem = unpushed(root, remote, branch)
    if problem:
        raise UserError(f"Flux deploys {remote}/{branch}, and {problem}")
    return f"{remote}/{branch}"


def find_remote(root: Path, repository: GitUrl) -> str:
    """The remote of this checkout that is ``repository``, or one line saying why none."""
    if find_tool("git") is None or not (root / ".git").exists():
        raise UserError(
            f"not a git repository: Flux deploys from {repository} — run this in a clone of it, "
            "with your commit pushed"
        )
    remote = flux_remote(root, repository)
    if remote is None:
        raise UserError(
            f"no git remote of this checkout is {repository} (repository_name in cluster.yaml), "
            "which Flux deploys from, and the branch tracks none — add it "
            f"(`git remote add origin {repository}`) and push"
        )
    return remote


def fetch_problem(outcome: Outcome, remote: str, branch: str) -> str:
    reason = last_line(outcome)
    if "find remote ref" in reason:
        return (
            f"branch '{branch}' is not on {remote} yet, and Flux deploys it — push it first "
            f"(`git push -u {remote} HEAD:{branch}`), then run this again"
        )
    return (
        f"could not fetch {branch} from {remote} to check that your commit is there ({reason}) — "
        "check the network and your access to the repository, then run this again"
    )
