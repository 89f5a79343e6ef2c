"""What a failed cluster test leaves behind: one folder with the cluster's state at the
moment it failed, and a summary of it.

The folder holds the nodes, every pod, every Flux object, the events (oldest first), the
tail of each node's kernel log, the git server's log and the output of every step that ran.
Each is read through the runner, side by side, each within :data:`READ_DEADLINE`; what cannot
be read (no cluster yet, a node that does not answer) is a line saying so in its file.
Nothing in it is a secret: Secrets are never read, and every registered secret is masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.lib.clustertest import plan
from tasks.lib.tools.runner import Command, Outcome, redact

#: How long one read may take.
READ_DEADLINE = 60.0
#: How many lines of each node's kernel log are kept, and of each step's output.
DMESG_LINES = 200
STEP_LINES = 2000
#: How many problems the summary names of each kind.
SHOWN = 8

FLUX_RESOURCES = ",".join(resource for _, resource in plan.FLUX_KINDS)


@dataclass(frozen=True)
class Read:
    """One thing read into the folder: its file and the command that prints it."""

    file: str
    argv: tuple[str, ...]
    tail: int = 0  # keep only the last lines (0: all)


def reads(nodes: Sequence[str]) -> list[Read]:
    found = [
        Read("nodes.txt", ("kubectl", "get", "nodes", "--output=wide")),
        Read("pods.txt", ("kubectl", "get", "pods", "--all-namespaces", "--output=wide")),
        Read("pods.json", ("kubectl", "get", "pods", "--all-namespaces", "--output=json")),
        Read("flux.txt", ("kubectl", "get", FLUX_RESOURCES, "--all-namespaces")),
        Read("flux.json", ("kubectl", "get", FLUX_RESOURCES, "--all-namespaces", "--output=json")),
        Read("events.txt", ("kubectl", "get", "events", "--all-namespaces", "--sort-by=.lastTimestamp")),
    ]
    found += [
        Read(f"dmesg-{node}.txt", ("talosctl", "dmesg", "--nodes", node), DMESG_LINES) for node in nodes
    ]
    return found


def commands(nodes: Sequence[str], cwd: Path) -> list[Command]:
    return [
        Command(read.argv, cwd=cwd, deadline=READ_DEADLINE, what=f"reading {read.file} for the diagnostics")
        for read in reads(nodes)
    ]


def last_lines(text: str, count: int) -> str:
    lines = text.splitlines()
    return "\n".join(lines[-count:]) + ("\n" if lines else "") if count else text


def content(read: Read, outcome: Outcome) -> str:
    """What goes into the file: the output, or why there is none."""
    if outcome.ok:
        return redact(last_lines(outcome.stdout, read.tail))
    why = outcome.problem if outcome.limit else (outcome.stderr or outcome.stdout).strip() or "no output"
    return f"# could not read it: `{redact(outcome.command.line)}`\n{redact(why)}\n"


def fresh_folder(folder: Path) -> Path:
    """``folder``, created; taken already (two runs in one second): ``folder-2``, ``-3``, ..."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, 1000):
        candidate = folder if number == 1 else folder.with_name(f"{folder.name}-{number}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{folder}: 999 diagnostics folders of that name")


def write(folder: Path, results: Sequence[tuple[Read, Outcome]], extra: dict[str, str]) -> list[str]:
    """Write every result (and ``extra``: file name -> text) into ``folder`` (made already by
    :func:`fresh_folder`); the names written."""
    written = []
    for read, outcome in results:
        (folder / read.file).write_text(content(read, outcome), encoding="utf-8")
        written.append(read.file)
    for name, text in extra.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redact(text), encoding="utf-8")
        written.append(name)
    return written


def summary(results: Sequence[tuple[Read, Outcome]]) -> list[str]:
    """A few lines on what was wrong: pods and Flux objects not Ready, the last warnings."""
    by_file = {read.file: outcome for read, outcome in results}
    lines = []
    for file, label in (("pods.json", "pods"), ("flux.json", "Flux objects")):
        outcome = by_file.get(file)
        if outcome is None or not outcome.ok:
            lines.append(f"{label}: could not be read (no cluster to ask yet?)")
            continue
        stuck = plan.not_ready(outcome.stdout)
        total = len(plan.items(outcome.stdout))
        lines.append(f"{label}: {total - len(stuck)} of {total} Ready")
        lines += [f"  {problem}" for problem in stuck[:SHOWN]]
        if len(stuck) > SHOWN:
            lines.append(f"  ... and {len(stuck) - SHOWN} more")
    events = by_file.get("events.txt")
    if events is not None and events.ok:
        warnings = [line for line in events.stdout.splitlines() if " Warning " in line]
        if warnings:
            lines.append("last warnings:")
            lines += [f"  {' '.join(line.split())[:200]}" for line in warnings[-5:]]
    return [redact(line) for line in lines]
