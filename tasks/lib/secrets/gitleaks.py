"""Token and key shapes in any file, found by gitleaks (its own ~220 rules, kept current by its
project) over exactly the files the secret guard checks.

gitleaks scans a directory or one stream; the guard's files are a list (what git tracks, or
what a commit stages). So they are linked, by their paths in the repository, into a private
scratch directory that gitleaks scans with ``--follow-symlinks``: it reports the same
relative paths, and reads nothing else. Its configuration is the repository's
``.gitleaks.toml`` (which also names the test data the guard leaves out); a reviewed false
positive carries a ``gitleaks:allow`` comment on its line. Findings are redacted: the report
names the rule, file and line, never the secret.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.lib.errors import UserError
from tasks.lib.tools.runner import Command, find_tool, missing_tool_message, run_one

#: The repository's gitleaks configuration and its list of ignored findings (fingerprints).
CONFIG = ".gitleaks.toml"
IGNORE_FILE = ".gitleaksignore"
#: Files larger than this are not scanned (gitleaks' own limit, in MB).
MAX_MEGABYTES = 8
#: The deadline of one scan.
TIMEOUT = 300.0


@dataclass(frozen=True)
class Leak:
    """One gitleaks finding: which rule matched where (the match itself is never kept)."""

    file: str
    line: int
    rule: str

    @property
    def what(self) -> str:
        """The rule's name as words: ``github-pat`` -> ``github pat``."""
        return self.rule.replace("-", " ")


def argv(root: Path) -> list[str]:
    """``gitleaks dir .`` (run inside the scratch directory) with the repository's config."""
    args = [
        "gitleaks",
        "dir",
        ".",
        "--no-banner",
        "--no-color",
        "--redact",
        "--follow-symlinks",
        "--exit-code",
        "0",
        "--log-level",
        "error",
        "--report-format",
        "json",
        "--report-path",
        "-",
        "--max-target-megabytes",
        str(MAX_MEGABYTES),
    ]
    if (root / CONFIG).is_file():
        args += ["--config", str(root / CONFIG)]
    if (root / IGNORE_FILE).is_file():
        args += ["--gitleaks-ignore-path", str(root / IGNORE_FILE)]
    return args


def link_tree(root: Path, labels: Sequence[str], farm: Path) -> None:
    """``farm/LABEL`` -> ``root/LABEL`` for every label (paths inside the repository)."""
    for label in labels:
        link = farm / label
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(root / label, link)


def parse_report(stdout: bytes, root: Path) -> list[Leak]:
    """gitleaks' JSON report as leaks, paths relative to ``root`` (gitleaks names a followed
    link by its target: the file in the repository)."""
    try:
        report = json.loads(stdout.decode("utf-8", "replace") or "[]")
    except ValueError:
        raise UserError("gitleaks: its report is not JSON — is `gitleaks` really gitleaks?") from None
    leaks = []
    for item in report if isinstance(report, list) else []:
        if not isinstance(item, dict):
            continue
        file = label_of(str(item.get("File", "")), root)
        leaks.append(Leak(file, int(item.get("StartLine") or 0), str(item.get("RuleID", "secret"))))
    return leaks


def label_of(name: str, root: Path) -> str:
    path = Path(os.path.normpath(name))
    if path.is_absolute():
        try:
            path = path.relative_to(root.resolve())
        except ValueError:
            try:
                path = path.relative_to(root)
            except ValueError:
                return path.as_posix()
    return path.as_posix()


#: Where a CI system runs us (GitHub Actions, GitLab CI, Forgejo/Gitea Actions, ... set it).
CI_ENV = "CI"


def in_ci() -> bool:
    """Whether this run is a CI job, where every check must really run."""
    return os.environ.get(CI_ENV, "").strip().lower() not in ("", "0", "false", "no")


def missing_line() -> str:
    return f"{missing_tool_message('gitleaks')} — without it the token and key check cannot run"


def scan(root: Path, labels: Sequence[str]) -> list[Leak] | None:
    """Every token or key shape gitleaks finds in ``labels`` (paths relative to ``root``).

    Without gitleaks: in CI a :class:`UserError` (the guard never passes there without its
    scanner); on a workstation None, "not scanned", which the caller says out loud — a fresh
    clone has no Go-built tools yet, and its CI, which builds gitleaks first, still scans.
    A gitleaks that fails is always an error."""
    if not labels:
        return []
    if find_tool("gitleaks") is None:
        if in_ci():
            raise UserError(missing_line())
        return None
    with tempfile.TemporaryDirectory(prefix="home-ops-gitleaks-") as scratch:
        farm = Path(scratch)
        link_tree(root, labels, farm)
        outcome = run_one(Command(tuple(argv(root)), cwd=farm, deadline=TIMEOUT, what="scanning for secrets"))
    if not outcome.ok:
        raise UserError(outcome.problem)
    return parse_report(outcome.data, root)
