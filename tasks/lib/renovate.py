"""Renovate checked by Renovate itself, at the version the Renovate workflow runs.

The workflow pins the Renovate release it runs (the action's ``renovate-version``, which
Renovate updates like any other dependency). ``inv lint.renovate`` installs that same
release from the npm registry into the user's cache and runs its strict config validator on
``.renovaterc.json5``: a config the release would reject never lands, and a Renovate update
that would reject the config fails its own pull request. ``--extract`` also runs Renovate's
offline extraction (``--platform=local --dry-run=extract``) and fails when two managers
claim the same dependency in the same file (they would open competing pull requests).

Pure functions here; the task in ``tasks/lint.py`` runs the commands.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tasks.lib.errors import UserError

WORKFLOW = ".github/workflows/renovate.yaml"
CONFIG = ".renovaterc.json5"
ACTION = "renovatebot/github-action"
VALIDATOR = "renovate-config-validator"


def workflow_version(root: Path) -> str:
    """The Renovate version the workflow runs: its action step's ``renovate-version``."""
    path = root / WORKFLOW
    try:
        workflow = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        raise UserError(f"{WORKFLOW} not found: it runs Renovate and pins its version") from None
    for job in (workflow.get("jobs") or {}).values():
        for step in job.get("steps") or []:
            if str(step.get("uses", "")).startswith(f"{ACTION}@"):
                version = str((step.get("with") or {}).get("renovate-version", "")).strip()
                if not version:
                    break
                return version
    raise UserError(
        f"{WORKFLOW}: the {ACTION} step has no `with: renovate-version:` — pin the Renovate "
        "release it runs (e.g. renovate-version: 44.121.2), or it runs the action's default"
    )


def cache_root() -> Path:
    """Where Renovate releases are installed: the user's cache, shared by checkouts."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "home-ops" / "renovate"


def install_dir(version: str) -> Path:
    return cache_root() / version


def executable(version: str, name: str) -> Path:
    return install_dir(version) / "node_modules" / ".bin" / name


def is_installed(version: str) -> bool:
    return executable(version, VALIDATOR).is_file()


def node_engine(version: str) -> str:
    """The Node.js versions the installed release supports (its package.json ``engines``)."""
    manifest = install_dir(version) / "node_modules" / "renovate" / "package.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8")).get("engines", {}).get("node", ""))
    except (OSError, ValueError):
        return ""


def engine_argv(version: str) -> list[str]:
    """npm's answer to "which Node.js does this release need" (a few bytes from the registry,
    asked before the download of the release itself)."""
    return ["npm", "view", f"renovate@{version}", "engines.node", "--json"]


def parse_engine(stdout: str) -> str:
    """The range ``npm view … engines.node --json`` prints (a JSON string), or ""."""
    try:
        value = json.loads(stdout or '""')
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""


def node_satisfies(found: str, engine: str) -> bool:
    """Whether Node.js ``found`` (``v24.19.0``) meets ``engine`` in the form npm packages
    use for it: caret ranges joined by ``||`` (``^22.13.0 || ^24.11.0``). Anything else is
    taken as satisfied: npm itself decides then."""

    def parts(text: str) -> tuple[int, ...] | None:
        match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", text.strip())
        return tuple(int(n) for n in match.groups()) if match else None

    have = parts(found)
    ranges = [r.strip() for r in engine.split("||") if r.strip()]
    if have is None or not ranges or not all(r.startswith("^") and parts(r[1:]) for r in ranges):
        return True
    return any(have[0] == want[0] and have >= want for want in (parts(r[1:]) for r in ranges) if want)


def has_re2(version: str) -> bool:
    """Whether npm built Renovate's native RE2 module (an optional dependency that needs a
    compiler or a prebuilt download; the workflow's container image always has it)."""
    return (install_dir(version) / "node_modules" / "re2").is_dir()


def run_env(version: str) -> dict[str, str]:
    """Without RE2, Renovate warns with a stack trace on every start and falls back to
    JavaScript regular expressions: say that once ourselves and keep its output readable
    (tests/test_renovate.py keeps the config free of what only RE2 would reject)."""
    return {} if has_re2(version) else {"RENOVATE_X_IGNORE_RE2": "true"}


def install_argv(version: str, prefix: Path) -> list[str]:
    """npm's install of exactly ``renovate@version`` into ``prefix`` (no audit, no ads)."""
    return [
        "npm",
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        "--prefix",
        str(prefix),
        f"renovate@{version}",
    ]


def validator_argv(version: str) -> list[str]:
    """Strict: warnings and pending migrations fail too. ``--no-global``: the file is a
    repository config, not the bot's own."""
    return [str(executable(version, VALIDATOR)), "--strict", "--no-global", CONFIG]


def extract_argv(version: str) -> list[str]:
    return [str(executable(version, "renovate")), "--platform=local", "--dry-run=extract"]


def extract_env(base_dir: Path) -> dict[str, str]:
    """Offline extraction: JSON logs at debug level (the extracted dependencies are logged
    there), Renovate's caches in a scratch directory, no onboarding, no token needed."""
    return {
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "json",
        "RENOVATE_BASE_DIR": str(base_dir),
        "RENOVATE_ONBOARDING": "false",
        "NO_COLOR": "1",
    }


@dataclass(frozen=True)
class Dependency:
    """One dependency as a Renovate manager extracted it."""

    manager: str
    file: str
    name: str
    datasource: str
    current: str
    skip_reason: str = ""


def extracted(log_lines: Iterable[str]) -> list[Dependency]:
    """The dependencies in Renovate's JSON log ("Extracted dependencies"); empty when the
    log has none (an extraction that failed says why in its own lines)."""
    found: list[Dependency] = []
    for line in log_lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("msg") != "Extracted dependencies":
            continue
        package_files: dict[str, list[dict[str, Any]]] = record.get("packageFiles") or {}
        for manager, files in package_files.items():
            for package_file in files:
                for dep in package_file.get("deps") or []:
                    found.append(
                        Dependency(
                            manager=manager,
                            file=str(package_file.get("packageFile", "")),
                            name=str(dep.get("depName") or dep.get("packageName") or ""),
                            datasource=str(dep.get("datasource") or ""),
                            current=str(dep.get("currentValue") or dep.get("currentDigest") or ""),
                            skip_reason=str(dep.get("skipReason") or ""),
                        )
                    )
    return found


def log_problems(log_lines: Iterable[str]) -> list[str]:
    """Renovate's own errors (level 50+) from its JSON log, one line each."""
    problems = []
    for line in log_lines:
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(record, dict) and int(record.get("level", 0)) >= 50:
            problems.append(f"renovate: {record.get('msg', '')}")
    return problems


def duplicates(deps: Iterable[Dependency]) -> list[str]:
    """One line per dependency that more than one manager found in the same file."""
    managers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for dep in deps:
        managers[(dep.file, dep.name)].add(dep.manager)
    return [
        f"{file}: {name} is found by {' and '.join(sorted(found))} — leave it to one manager "
        f"(narrow the other's managerFilePatterns in {CONFIG})"
        for (file, name), found in sorted(managers.items())
        if len(found) > 1
    ]


def summary(deps: Iterable[Dependency]) -> list[str]:
    """Per manager: files, dependencies, and how many Renovate skips (and why)."""
    files: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    skipped: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for dep in deps:
        files[dep.manager].add(dep.file)
        counts[dep.manager] += 1
        if dep.skip_reason:
            skipped[dep.manager][dep.skip_reason] += 1
    lines = []
    for manager in sorted(counts):
        line = f"{manager}: {counts[manager]} dependencies in {len(files[manager])} files"
        if skipped[manager]:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(skipped[manager].items()))
            line += f" (skipped: {reasons})"
        lines.append(line)
    return lines
