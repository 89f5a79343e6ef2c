"""CI helpers the GitHub Actions workflows call (they run on a workstation too)."""

from __future__ import annotations

import os
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context

from tasks.lib.errors import UserError
from tasks.lib.files import read_text
from tasks.lib.paths import paths_for
from tasks.lib.taskdef import task


@task(
    iterable=["path"],
    help={
        "base": "git ref the pull request goes into, e.g. origin/main (needs its history fetched); "
        "empty or all zeros (a new branch): everything counts as changed",
        "path": "a directory or file to look for (repeatable)",
        "output": "name of the step output set to true/false (default: changed)",
    },
)
def changed(c: Context, base: str, path: list[str] | None = None, output: str = "changed") -> None:
    """Say whether the changes since BASE touch any --path; sets a step output in Actions.

    Compares with the merge base, as a pull request's diff does. Always exits 0, so a
    required check can run on every pull request and skip its work when nothing it checks
    changed.
    """
    from tasks.lib import ci

    if not path:
        raise UserError("give at least one --path, e.g. --path kubernetes/")
    if ci.no_base(base):
        ci.set_output(output, "true")
        print("no base to compare with (a new branch, a manual run): everything counts as changed")
        return
    root = paths_for(c).root
    hits = ci.touches(ci.changed_since(root, base), path)
    ci.set_output(output, "true" if hits else "false")
    if hits:
        print(f"{len(hits)} changed file(s) under {', '.join(path)}:")
        for name in hits:
            print(f"  {name}")
    else:
        print(f"nothing under {', '.join(path)} changed since {base}: the checks that need it are skipped")


@task(help={"file": "markdown file to show", "title": "heading written above it"})
def summary(c: Context, file: str, title: str = "") -> None:
    """Show a markdown file in the job summary of a workflow run (printed outside Actions).

    A missing or empty file is shown as a note, not an error."""
    from tasks.lib import ci

    source = Path(file)

    text = read_text(source, file).strip() if source.is_file() else ""
    body = (f"## {title}\n\n" if title else "") + (text or "_Nothing to show._") + "\n"
    if ci.append(ci.SUMMARY_ENV, body) is None:
        print(body, end="")


@task
def renovate_token(c: Context) -> None:
    """Say which credential the Renovate workflow has, or what to set up; sets `ready`.

    Reads RENOVATE_APP_TOKEN (a GitHub App's token, made by the step before) and
    RENOVATE_TOKEN (a fine-grained token) from the environment. With neither, it says what is
    missing (an annotation and the job summary in Actions) and exits 0, so an unconfigured
    repository gets one clear notice instead of a failed run every six hours.
    """
    from tasks.lib import ci

    credential = ci.renovate_credential(os.environ)
    ci.set_output("ready", "true" if credential else "false")
    if credential:
        print(f"renovate: using the {'GitHub App' if credential == 'app' else 'RENOVATE_TOKEN'} credential")
        return
    print(ci.warning("Renovate is not set up", ci.RENOVATE_SETUP))
    ci.append(ci.SUMMARY_ENV, f"## Renovate\n\n{ci.RENOVATE_SETUP}.\n")


@task
def install_qemu(c: Context) -> None:
    """Install QEMU for `inv dev.cluster-test` on a Debian/Ubuntu runner (sudo apt-get).

    Does nothing when QEMU is installed already. On a workstation install it yourself."""
    from tasks.lib.clustertest import journey

    journey.install_qemu(c)


ns = Collection("ci")
for _task in (changed, summary, renovate_token, install_qemu):
    ns.add_task(_task)
