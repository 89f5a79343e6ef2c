"""The machine check behind ``inv doctor``: what this machine has, what it lacks, and which tasks can run."""

from __future__ import annotations

import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.lib.errors import UserError
from tasks.lib.paths import Paths
from tasks.lib.tools.coherence import drifts
from tasks.lib.tools.pins import (
    MAIN_TASK,
    TASK_TOOLS,
    TOOLS,
    Tool,
    all_pins,
    compare,
    missing_for,
    parse_version,
    satisfied,
)
from tasks.lib.tools.runner import Command, find_tool, install_hint, run_many

if TYPE_CHECKING:
    from invoke.context import Context

#: How long a tool may take to print its version.
VERSION_DEADLINE = 15.0

#: What talhelper says of a Talos version it was not built for (an error, or a warning
#: "might not be compatible" for an unknown patch release).
UNKNOWN_TALOS = ("is not a supported Talos version", "might not be compatible with this Talhelper version")


@dataclass(frozen=True)
class ToolRow:
    tool: Tool
    path: str | None
    version: str | None
    pinned: str | None

    @property
    def status(self) -> str:
        if self.path is None:
            return "missing"
        verdict = compare(self.version, self.pinned)
        return {"ok": "ok", "differs": "differs", "unknown": "found"}[verdict]


@dataclass(frozen=True)
class FileRow:
    label: str
    path: Path
    secret: bool  # must be private (0600)
    needed_for: str

    def describe(self, paths: Paths) -> tuple[str, str]:
        if not self.path.exists():
            return "missing", self.needed_for
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if self.secret and mode & 0o077:
            return f"mode {mode:04o}", f"readable by others: chmod 600 {paths.rel(self.path)}"
        return f"ok ({mode:04o})", ""


def versions(pairs: Sequence[tuple[Tool, str]]) -> list[str | None]:
    """The version each executable reports, asked all at once (a tool that hangs, fails or
    names no version gives None). Read-only, so it runs under ``--dry`` too."""
    commands = [Command((exe, *tool.version_argv), deadline=VERSION_DEADLINE) for tool, exe in pairs]
    outcomes = run_many(commands, workers=len(commands)) if commands else []
    return [parse_version(f"{o.stdout}\n{o.stderr}") for o in outcomes]


def probe_all(tools: Sequence[Tool], pins: dict[str, str]) -> list[ToolRow]:
    """Find every tool and ask its version."""
    found = [(tool, find_tool(tool.name)) for tool in tools]
    present = [(tool, path) for tool, path in found if path is not None]
    reported = dict(zip((tool.name for tool, _ in present), versions(present), strict=True))
    return [ToolRow(tool, path, reported.get(tool.name), pins.get(tool.mise_key)) for tool, path in found]


def talhelper_knows_talos(paths: Paths) -> list[str]:
    """One line when the installed talhelper does not know the rendered talosVersion (what
    `talhelper validate talconfig` says of it; read-only, so it runs under ``--dry`` too)."""
    if not (paths.talconfig.is_file() and paths.talenv.is_file()):
        return []
    argv = ("talhelper", "validate", "talconfig", "talconfig.yaml", "--env-file", "talenv.yaml")
    command = Command(argv, cwd=paths.talos, deadline=30, what="asking talhelper about talosVersion")
    (outcome,) = run_many([command], paths=paths)
    said = outcome.stdout + outcome.stderr
    if not any(phrase in said for phrase in UNKNOWN_TALOS):
        return []
    return [
        "the installed talhelper does not know talenv.yaml's talosVersion — install the talhelper "
        ".mise.toml pins (`mise install`; `inv doctor --install` where it can be built)"
    ]


def operator_files(paths: Paths) -> list[FileRow]:
    return [
        FileRow("age key", paths.age_key, True, "run `inv init`"),
        FileRow("deploy key", paths.deploy_key, True, "run `inv init`"),
        FileRow("push token", paths.push_token, True, "run `inv init`"),
        FileRow("kubeconfig", paths.kubeconfig, True, "made by `inv bootstrap.talos`"),
        FileRow("talosconfig", paths.talosconfig, True, "made by `inv bootstrap.talos`"),
    ]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(cell).ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def required_tools() -> set[str]:
    """Every tool some task cannot run without (both sides of an ``a|b`` choice: doctor asks
    for the one that is missing only when neither is there)."""
    return {name for needs in TASK_TOOLS.values() for req in needs for name in req.split("|")}


def fix_lines(rows: Sequence[ToolRow], found: set[str]) -> tuple[list[str], list[str]]:
    """(required, optional): one line per missing tool, saying how to install it here."""
    required: list[str] = []
    optional: list[str] = []
    needed = required_tools()
    for row in rows:
        if row.path is not None:
            continue
        name = row.tool.name
        alternatives = [req for reqs in TASK_TOOLS.values() for req in reqs if name in req.split("|")]
        if alternatives and all(satisfied(req, found) for req in alternatives):
            continue  # the other side of an a|b choice is there
        pin = f" {row.pinned}" if row.pinned else ""
        line = f"  {row.tool.name}{pin}: {install_hint(row.tool.name)}"
        (required if row.tool.name in needed else optional).append(line)
    return required, optional


def select(tools: Sequence[Tool], only: Sequence[str]) -> list[Tool]:
    """The tools named in ``only`` (every tool when empty); an unknown name is an error."""
    if not only:
        return list(tools)
    known = {tool.name: tool for tool in tools}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise UserError(f"unknown tool {', '.join(unknown)}: choose from {', '.join(sorted(known))}")
    return [known[name] for name in dict.fromkeys(only)]


def launcher_note(launcher: Path) -> str:
    """A line when the virtualenv's ``inv`` is Invoke's own launcher instead of this
    project's (uv installed Invoke after the project): bare ``inv``, typo suggestions and
    the Ctrl-C guard then do not apply."""
    try:
        text = launcher.read_text(errors="replace")[:4096]
    except OSError:
        return ""
    if "tasks.__main__" in text or "invoke" not in text:
        return ""
    return (
        f"note: {launcher} is Invoke's own `inv`, not this project's: "
        "run `uv sync --reinstall-package home-ops` to put the project's back"
    )


def report(c: Context, paths: Paths, only: Sequence[str] = ()) -> None:
    """Print the tools, operator files and runnable tasks, with the fix for every missing
    tool; raise when a required tool (or, for configure, an operator file) is missing.
    With ``only``, just those tools are checked."""
    pins = all_pins(paths.root)
    tools = probe_all(select(TOOLS, only), pins)
    print(
        table(
            ("tool", "status", "version", "pinned", "used for"),
            [(r.tool.name, r.status, r.version or "-", r.pinned or "-", r.tool.purpose) for r in tools],
        )
    )
    found = {r.tool.name for r in tools if r.path is not None}
    required, optional = fix_lines(tools, found)
    if required or optional:
        print("\nto install what is missing:")
        for line in required + [f"{line} (optional)" for line in optional]:
            print(line)
    if only:
        if required:
            raise UserError(f"\nmissing: {', '.join(line.split()[0].rstrip(':') for line in required)}")
        return
    print()
    drifted = [d.line() for d in drifts(paths.root)]
    if any(r.tool.name == "talhelper" and r.path for r in tools):
        drifted += talhelper_knows_talos(paths)
    for line in drifted:
        print(f"pins out of step: {line}")
    if drifted:
        print()
    files = operator_files(paths)
    file_rows = [(f.label, paths.rel(f.path), *f.describe(paths)) for f in files]
    print(table(("operator file", "path", "status", "note"), file_rows))
    print()
    # configure also needs the files `inv init` makes (the kubeconfig comes later).
    init_missing = [f.label for f in files[:3] if not f.path.exists()]
    task_rows = []
    for name in TASK_TOOLS:
        missing = missing_for(name, found)
        if name == MAIN_TASK and init_missing:
            missing += [f"{label} (inv init)" for label in init_missing]
        task_rows.append((name, "ready" if not missing else "needs " + ", ".join(missing)))
    print(table(("task", "can run"), task_rows))
    note = launcher_note(Path(sys.executable).parent / "inv")
    if note:
        print(f"\n{note}")
    problems = []
    main_missing = dict(task_rows)[MAIN_TASK]
    if main_missing != "ready":
        problems.append(f"`inv {MAIN_TASK}` cannot run: it {main_missing}")
    blocked = [name for name, state in task_rows if state != "ready" and name != MAIN_TASK]
    if blocked:
        problems.append(f"tools missing for {', '.join(blocked)}: install them as shown above")
    if problems:
        raise UserError("", *problems)
