"""``inv doctor --install``: build the pinned tools from their Go modules into ``.tools/bin``.

Every tool of ``pins.TOOLS`` with a Go module is built at exactly the version ``.mise.toml``
pins (Renovate moves the pin, the next ``--install`` follows). A tool already found at its
pin is left alone, so a second run only asks each tool its version. A module whose
``go.mod`` has ``replace`` directives cannot be ``go install``-ed by version: it is built
inside its downloaded module instead, which honours them. Builds land in a staging
directory and are moved into place whole, so a killed build leaves the old binary.

When the Go module proxy refuses a module version (it does for some projects), that is
recorded in ``.tools/bin/.install.json`` with the proxy's answer; later runs say so without
asking again for a day, and the contract tests use the record to tell "cannot be had here"
from "broken".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.lib.tools.doctor import versions
from tasks.lib.tools.pins import TOOLS, GoBuild, Tool, all_pins, compare
from tasks.lib.tools.runner import GB, find_tool, is_dry, run, tools_dir

if TYPE_CHECKING:
    from invoke.context import Context

RECORD = ".install.json"
#: How long a refusal by the module proxy is believed before asking again.
REFUSAL_TTL = 24 * 3600
#: The proxy's ways of saying "not this module version".
REFUSED = re.compile(r"403 Forbidden|404 Not Found|410 Gone|not available|unknown revision|invalid version")
#: A proxy request in Go's error output: ``reading https://HOST/MODULE/@v/VERSION.info``.
PROXY_URL = re.compile(r"reading \S+?://[^/\s]+/(\S+?)/@v/(\S+?)\.(?:info|mod|zip)")
GO_ENV = {"CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOWORK": "off"}
GO_DEFAULT = "/usr/local/go/bin/go"
#: A cold build of a big module (talosctl) downloads and compiles for many minutes, and
#: Go's compiler and linker need more than the runner's default memory limit.
GO_DEADLINE = 3600.0
GO_MEMORY = 8 * GB
STUB = "# Not bundled: generated from downloads by the tool's own release build.\n"


@dataclass(frozen=True)
class Outcome:
    """What ``--install`` did for one tool."""

    tool: str
    pin: str
    state: str  # present | installed | would-install (--dry) | refused | failed | no-go | not-go
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state in {"present", "installed"}

    def line(self) -> str:
        took = f" in {self.seconds:.0f}s" if self.state in {"installed", "failed"} else ""
        label = {
            "present": "ok",
            "installed": f"installed{took}",
            "would-install": "would be built",
            "refused": "cannot install",
            "failed": f"build failed{took}",
        }.get(self.state, self.state)
        return f"{self.tool} {self.pin}: {label}" + (f" — {self.detail}" if self.detail else "")


# Versions ----------------------------------------------------------------------------------
def at_pin(version: str | None, pin: str) -> bool:
    return compare(version, pin) == "ok"


# The record of refusals --------------------------------------------------------------------
def read_record(directory: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads((directory / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_record(directory: Path, record: dict[str, dict[str, object]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    staged = directory / f"{RECORD}.tmp"
    staged.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    staged.replace(directory / RECORD)


def recorded_refusal(directory: Path, tool: str, pin: str, now: float | None = None) -> str | None:
    """The proxy's recorded answer for ``tool`` at ``pin``, while it is fresh."""
    entry = read_record(directory).get(tool) or {}
    fresh = (now or time.time()) - float(entry.get("at", 0)) < REFUSAL_TTL  # type: ignore[arg-type]
    if entry.get("pin") == pin and entry.get("state") == "refused" and fresh:
        return str(entry.get("detail", ""))
    return None


# Go ----------------------------------------------------------------------------------------
def go_reason(output: str) -> str:
    """One line out of Go's error output: the proxy's answer when it refused, else the
    first error Go printed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if "server response:" in line:
            answer = line.split("server response:", 1)[1].strip()
            before = lines[: index + 1]
            status = next((m.group(0) for ln in before if (m := REFUSED.search(ln))), "")
            what = next((f"{m.group(1)}@{m.group(2)}" for ln in before if (m := PROXY_URL.search(ln))), "it")
            return f"the Go module proxy refused {what} ({status}: {answer})" if status else answer
    errors = [ln for ln in lines if not ln.startswith("go: downloading")]
    return (errors[0] if errors else "go failed without a message")[:300]


def has_replace(go_mod: Path) -> bool:
    """Whether a go.mod carries ``replace`` directives (then ``go install pkg@v`` refuses)."""
    try:
        text = go_mod.read_text()
    except OSError:
        return False
    return re.search(r"^\s*replace\b", text, re.MULTILINE) is not None


def download(c: Context, go: GoBuild, pin: str, cwd: Path, exe: str = "go") -> tuple[dict[str, str], str]:
    """``go mod download -json MODULE@VERSION``: (its JSON, Go's error output or "")."""
    result = run(c, download_argv(go, pin, exe), check=False, env=GO_ENV, cwd=cwd, timeout=GO_DEADLINE)
    try:
        info = json.loads(result.stdout) if result.stdout.strip() else {}
    except ValueError:
        info = {}
    error = str(info.get("Error") or "") or (result.stderr if result.failed else "")
    return info, error


def download_argv(go: GoBuild, pin: str, exe: str = "go") -> list[str]:
    return [exe, "mod", "download", "-json", f"{go.module}@{go.module_version(pin)}"]


def build_argv(go: GoBuild, pin: str, output: Path, exe: str = "go") -> list[str]:
    """``go build`` inside the module: honours its ``replace`` directives."""
    flags = ["-ldflags", go.ldflags(pin)] if go.version_var else []
    return [exe, "build", *flags, "-o", str(output), f"./{go.package}" if go.package else "."]


def install_argv(go: GoBuild, pin: str, exe: str = "go") -> list[str]:
    flags = ["-ldflags", go.ldflags(pin)] if go.version_var else []
    return [exe, "install", *flags, f"{go.package_path()}@{go.module_version(pin)}"]


def module_copy(source: Path, destination: Path, stubs: tuple[str, ...]) -> Path:
    """A writable copy of a downloaded module with the files its release build generates
    replaced by stubs (the module cache is read-only and must stay pristine)."""
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(source, destination)
    for path in destination.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    for stub in stubs:
        (destination / stub).parent.mkdir(parents=True, exist_ok=True)
        (destination / stub).write_text(STUB)
    return destination


def failed(tool: Tool, pin: str, output: str, started: float) -> Outcome:
    """A failed download or build: ``refused`` when the proxy would not serve a module."""
    reason = go_reason(output)
    state = "refused" if REFUSED.search(reason) else "failed"
    return Outcome(tool.name, pin, state, reason, time.monotonic() - started)


def build(c: Context, tool: Tool, pin: str, directory: Path, exe: str = "go") -> Outcome:
    """Build ``tool`` at ``pin`` into ``directory`` (staged, then moved into place)."""
    go = tool.go
    assert go is not None
    started = time.monotonic()
    if is_dry(c):  # show the commands; touch nothing
        run(c, download_argv(go, pin, exe))
        run(c, install_argv(go, pin, exe), env={**GO_ENV, "GOBIN": str(directory)})
        return Outcome(
            tool.name,
            pin,
            "would-install",
            "with the commands above (modules with replace directives are built with "
            "`go build` inside the downloaded module)",
        )
    staging = directory / f".staging-{tool.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        info, error = download(c, go, pin, staging, exe)
        if error:
            return failed(tool, pin, error, started)
        binary = staging / tool.name
        module_dir = Path(info["Dir"])
        if go.stubs or has_replace(Path(info.get("GoMod", ""))):
            where = module_copy(module_dir, staging / "src", go.stubs) if go.stubs else module_dir
            argv = build_argv(go, pin, binary, exe)
            result = run(c, argv, check=False, env=GO_ENV, cwd=where, timeout=GO_DEADLINE, memory=GO_MEMORY)
            if result.failed:
                return failed(tool, pin, result.problem if result.limit else result.stderr, started)
        else:
            env = {**GO_ENV, "GOBIN": str(staging)}
            argv = install_argv(go, pin, exe)
            result = run(c, argv, check=False, env=env, timeout=GO_DEADLINE, memory=GO_MEMORY)
            if result.failed:
                return failed(tool, pin, result.problem if result.limit else result.stderr, started)
        if not binary.exists():  # `go install` names it after the package: take what it made
            binary = next(p for p in staging.iterdir() if p.is_file())
        binary.replace(directory / tool.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - started
    (reported,) = versions([(tool, str(directory / tool.name))])
    if not at_pin(reported, pin):
        return Outcome(tool.name, pin, "failed", f"built, but it reports version {reported or '?'}", seconds)
    return Outcome(tool.name, pin, "installed", go.note, seconds)


# The whole run -----------------------------------------------------------------------------
def present(wanted: list[tuple[Tool, str]], directory: Path) -> dict[str, Outcome]:
    """The tools already at their pin: the one that will run (first on the search path), or
    the one in ``directory`` (then a different one earlier on PATH is named). All asked at once."""
    found = {tool.name: find_tool(tool.name) for tool, _ in wanted}
    local = {tool.name: directory / tool.name for tool, _ in wanted}
    pairs = [(tool, str(found[tool.name])) for tool, _ in wanted if found[tool.name]]
    pairs += [(tool, str(local[tool.name])) for tool, _ in wanted if local[tool.name].is_file()]
    reported = dict(zip(((t.name, exe) for t, exe in pairs), versions(pairs), strict=True))
    result: dict[str, Outcome] = {}
    for tool, pin in wanted:
        where = found[tool.name]
        if where and at_pin(reported.get((tool.name, where)), pin):
            result[tool.name] = Outcome(tool.name, pin, "present")
        elif at_pin(reported.get((tool.name, str(local[tool.name]))), pin):
            note = f"{where} comes first on PATH and is not at the pin: remove it or put {directory} first"
            result[tool.name] = Outcome(tool.name, pin, "present", note if where else "")
    return result


def find_go() -> str:
    """``go`` on PATH, else where Go's official installer puts it (often not on PATH in
    non-login shells, e.g. CI)."""
    found = shutil.which("go") or (GO_DEFAULT if os.access(GO_DEFAULT, os.X_OK) else "")
    return found


def install_tools(
    c: Context,
    root: Path,
    *,
    go: str | None = None,
    say: Callable[[str], None] = print,
    only: Sequence[str] = (),
) -> list[Outcome]:
    """Install every Go-built tool that is missing or not at its pin; one line per tool."""
    directory = tools_dir()
    pins = all_pins(root)
    go = go if go is not None else find_go()
    wanted = [
        (tool, pins[tool.mise_key])
        for tool in TOOLS
        if tool.go and tool.mise_key in pins and (not only or tool.name in only)
    ]
    say(f"installing the tools pinned in .mise.toml into {directory} ({len(wanted)} Go-built tools)")
    outcomes: list[Outcome] = []
    todo: list[tuple[Tool, str]] = []
    already = present(wanted, directory)
    for tool, pin in wanted:
        outcome = already.get(tool.name)
        if outcome is None and (refusal := recorded_refusal(directory, tool.name, pin)):
            outcome = Outcome(tool.name, pin, "refused", f"{refusal} (recorded; retried after a day)")
        if outcome is None:
            todo.append((tool, pin))
        else:
            outcomes.append(outcome)
            say(outcome.line())
    if todo and not go:
        names = " ".join(f"{t.name}@{p}" for t, p in todo)
        say(f"Go is not installed, so nothing is built: run `mise install` (installs {names})")
        return [*outcomes, *(Outcome(t.name, p, "no-go") for t, p in todo)]
    if not is_dry(c):
        directory.mkdir(parents=True, exist_ok=True)
    record = read_record(directory)
    for index, (tool, pin) in enumerate(todo, 1):
        assert tool.go is not None
        say(f"[{index}/{len(todo)}] {tool.name} {pin}: building {tool.go.package_path()} (cold: minutes) ...")
        outcome = build(c, tool, pin, directory, "go" if shutil.which("go") == go else go)
        say(outcome.line())
        outcomes.append(outcome)
        record[tool.name] = {"pin": pin, "state": outcome.state, "detail": outcome.detail, "at": time.time()}
    if todo and not is_dry(c):
        write_record(directory, record)
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    """One closing line: what is at its pin, what could not be installed."""
    ok = sum(o.ok for o in outcomes)
    planned = [o.tool for o in outcomes if o.state == "would-install"]
    bad = [o.tool for o in outcomes if not o.ok and o.state != "would-install"]
    line = f"tools: {ok} at their pin"
    line += f"; would build: {', '.join(planned)}" if planned else ""
    return line + (f"; not installed: {', '.join(bad)}" if bad else "")
