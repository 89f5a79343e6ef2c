"""Helpers for the contract tests against the real tools (``tests/test_tools_*.py``).

The real tools are the ones ``inv doctor --install`` built into ``.tools/bin`` (or any on
``PATH``). A test that needs one calls :func:`real_tool`: missing, it skips with the reason
``--install`` recorded (the Go module proxy refused the module: the tool cannot be had on
this machine), or, when ``CI`` is set and nothing explains the absence, it fails: CI runs
``inv doctor --install`` first, so a buildable tool that is missing is a broken build.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tasks.lib.tools import install
from tasks.lib.tools.runner import missing_tool_message, tools_dir

#: Captured before the tests' own environment isolation moves HOME_OPS_TOOLS_DIR away.
TOOLS_DIR = tools_dir()
SEARCH = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent), str(TOOLS_DIR)])


def real_tool(name: str) -> str:
    """The real ``name``; skip (with the recorded reason) or, in CI, fail when missing."""
    found = shutil.which(name, path=SEARCH)
    if found:
        return found
    entry = install.read_record(TOOLS_DIR).get(name) or {}
    if entry.get("state") == "refused":
        pytest.skip(f"{name} {entry.get('pin')} cannot be installed on this machine: {entry.get('detail')}")
    if os.environ.get("CI"):
        pytest.fail(f"{name} is missing in CI: `inv doctor --install` should have built it (see its output)")
    pytest.skip(missing_tool_message(name))


def run_tool(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
):
    """Run a real tool offline-safe: no kubeconfig, nothing on stdin."""
    full_env = {**os.environ, "KUBECONFIG": "/nonexistent/kubeconfig", "HELM_CACHE_HOME": "", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v != ""}
    return subprocess.run(
        argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


# Argument formats --------------------------------------------------------------------------
#: Flags (of the commands the tasks build) that take the next word as their value.
VALUE_FLAGS = {"--namespace", "-n", "--file", "-f", "--output", "-o", "--kubeconfig", "--context"}
USAGE = re.compile(r"^Usage:\s*$")


def positionals(
    argv: Sequence[str], takes_value: Callable[[str], bool] = VALUE_FLAGS.__contains__
) -> list[str]:
    """The words of ``argv`` that are not flags or flag values (``takes_value``: whether a
    flag word is followed by its value)."""
    words: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word.startswith("-") and word != "-":
            skip = takes_value(word)
        else:
            words.append(word)
    return words


def command_path(help_text: str, tool: str) -> list[str]:
    """The subcommand words of the first usage line (``flux reconcile kustomization [name]``
    gives ``[reconcile, kustomization]``)."""
    for line in usage_lines(help_text)[:1]:
        words = line.split()
        if words and Path(words[0]).name == tool:
            path = []
            for word in words[1:]:
                if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                    break
                path.append(word)
            return path
    return []


def subcommands(help_text: str) -> set[str]:
    """Names listed under "Available Commands:" (empty for a leaf command)."""
    names: set[str] = set()
    inside = False
    for line in help_text.splitlines():
        if re.match(r"^(Available Commands|Commands):", line) or re.match(r"^[A-Z][\w ]+ Commands:$", line):
            inside = True
            continue
        if inside and not line.strip():
            inside = False
        elif inside and line.startswith("  "):
            names.add(line.split()[0])
    return names


def argv_problem(executable: str, tool: str, argv: list[str]) -> str | None:
    """Run the real tool with ``argv`` plus ``--help``: its flag parser sees every flag (an
    unknown one exits non-zero), and its usage line names the command it resolved to, which
    must be the leading words of ``argv`` (a misspelt subcommand resolves to its parent)."""
    result = run_tool([executable, *argv, "--help"], timeout=60)
    text = result.stdout + result.stderr
    if result.returncode != 0:
        return f"{tool} {' '.join(argv)}: exit {result.returncode}: {' '.join(text.split())[:300]}"
    path = command_path(text, tool)
    words = positionals(argv)
    if words[: len(path)] != path:
        return f"{tool} {' '.join(argv)}: resolves to `{tool} {' '.join(path)}`"
    rest = words[len(path) :]
    children = subcommands(text)
    if rest and children and rest[0] not in children and not takes_arguments(text, tool, path):
        return f"{tool} {' '.join(argv)}: `{rest[0]}` is not a subcommand of `{tool} {' '.join(path)}`"
    return None


def usage_lines(help_text: str) -> list[str]:
    """The lines of the "Usage:" section."""
    lines = help_text.splitlines()
    for index, line in enumerate(lines):
        if USAGE.match(line):
            section = []
            for following in lines[index + 1 :]:
                if not following.strip():
                    break
                section.append(following)
            return section
    return []


def takes_arguments(help_text: str, tool: str, path: list[str]) -> bool:
    """Whether a usage line of the resolved command has a positional placeholder
    (``[name]``, ``NAME``, ``(TYPE ...)``) once flags and their values are left out."""
    prefix = " ".join([tool, *path])
    for line in usage_lines(help_text):
        stripped = line.strip()
        if not stripped.startswith(prefix + " "):
            continue
        tokens = stripped[len(prefix) :].split()
        skip = False
        for token in tokens:
            if skip:
                skip = False
            elif token.startswith("-") or token.startswith("[-"):
                skip = not token.endswith("]") and "=" not in token
            elif token not in {"[flags]", "[options]", "[command]"}:
                return True
    return False


# Talos's own validation ---------------------------------------------------------------------
#: The Go program that runs what `talosctl validate --mode metal --strict` runs, built against
#: pkg/machinery at the Talos version its go.mod requires (a test keeps it equal to talenv's).
TALOS_VALIDATE = Path(__file__).resolve().parent / "talosvalidate"


def build_talos_validator(out_dir: Path) -> str:
    """``go build`` the validation program into ``out_dir`` (Go's own module and build
    caches, outside the repository, make a second build take seconds). Without Go: skip,
    or fail in CI."""
    from tests.conftest import SESSION_ENV

    go = shutil.which("go", path=SESSION_ENV.get("PATH"))
    if go is None:
        if os.environ.get("CI"):
            pytest.fail("go is missing in CI: the Talos validation program cannot be built")
        pytest.skip("go is not installed: the Talos validation program cannot be built")
    binary = out_dir / "talosvalidate"
    env = {**SESSION_ENV, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    result = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=TALOS_VALIDATE,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        pytest.fail(f"building the Talos validation program failed:\n{result.stderr[-3000:]}")
    return str(binary)
