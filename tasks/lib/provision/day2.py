"""Pure logic behind the day-2 ``talos.*`` tasks: which nodes a ``--node`` names, in what
order a rolling change visits them, and reading what talosctl prints (the server version,
``etcd status``, an ``apply-config --dry-run`` summary). Nothing here runs a command.

The shapes parsed here are talosctl's own (cmd/talosctl in the Talos source): ``version``
prints ``Server:`` then per node ``NODE:`` and the ``Tag:`` line of the version template;
``etcd status`` is a tabwriter table (padding 3) whose last column lists the member's errors;
``apply-config --dry-run`` writes the server's "Dry run summary" (mode, then ``Config diff:``
and the diff or ``No changes.``) to stderr.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.lib.errors import UserError
from tasks.lib.provision import facts

# --------------------------------------------------------------------------- choosing nodes


def select_nodes(nodes: Sequence[facts.TalosNode], node: str, label: str) -> list[facts.TalosNode]:
    """The nodes ``--node`` names: every node when empty, else the one whose name or one of
    whose addresses it is. An unknown value lists the nodes there are."""
    if not node:
        return list(nodes)
    wanted = node.strip()
    address = facts.ipv4(wanted)
    for candidate in nodes:
        if candidate.hostname == wanted or (address is not None and address in candidate.addresses):
            return [candidate]
    known = ", ".join(n.describe() for n in nodes) or "none"
    raise UserError(
        f"--node {wanted!r} is neither the name nor an address of a node in {label} (nodes: {known})"
    )


def rolling_order(nodes: Sequence[facts.TalosNode]) -> list[facts.TalosNode]:
    """Controllers first (etcd keeps quorum while one at a time is away), then workers;
    each group in the order the file lists them."""
    return [n for n in nodes if n.controller] + [n for n in nodes if not n.controller]


def primary(node: facts.TalosNode) -> str:
    """The address talosctl reaches the node on: its first one."""
    return node.addresses[0]


# --------------------------------------------------------------------------- talosctl output

_TAG = re.compile(r"^\s*Tag:\s*(\S+)\s*$")


def server_version(text: str) -> str | None:
    """The node's Talos version from ``talosctl version --nodes ADDR``: the ``Tag:`` line
    after ``Server:`` (the one before it is the client's)."""
    _, found, server = text.partition("Server:")
    if not found:
        return None
    for line in server.splitlines():
        match = _TAG.match(line)
        if match:
            return match.group(1)
    return None


@dataclass(frozen=True)
class EtcdMember:
    """One row of ``talosctl etcd status``."""

    node: str
    member: str
    leader: str
    learner: bool
    errors: str


_COLUMNS = re.compile(r"\s{2,}")


def etcd_members(text: str) -> list[EtcdMember]:
    """The rows of ``talosctl etcd status`` (with or without the NODE column)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or "MEMBER" not in lines[0]:
        return []
    header = _COLUMNS.split(lines[0].strip())
    members = []
    for line in lines[1:]:
        cells = _COLUMNS.split(line.strip())
        row = dict(zip(header, cells, strict=False))
        members.append(
            EtcdMember(
                node=row.get("NODE", ""),
                member=row.get("MEMBER", ""),
                leader=row.get("LEADER", ""),
                learner=row.get("LEARNER", "false") == "true",
                errors=row.get("ERRORS", "") if len(cells) == len(header) else "",
            )
        )
    return members


def etcd_problems(text: str, expected: int) -> list[str]:
    """Why etcd is not healthy yet (empty when it is): every expected member answered, none
    is a learner or reports errors, and all follow the same leader."""
    members = etcd_members(text)
    problems = []
    if len(members) < expected:
        problems.append(f"{len(members)} of {expected} etcd members answered")
    leaders = {m.leader for m in members}
    if members and (len(leaders) != 1 or "" in leaders or "0000000000000000" in leaders):
        problems.append("the etcd members do not agree on a leader")
    problems += [f"{m.node or m.member}: learner, not yet a voting member" for m in members if m.learner]
    problems += [f"{m.node or m.member}: {m.errors}" for m in members if m.errors]
    return problems


@dataclass(frozen=True)
class DryRun:
    """What ``talosctl apply-config --dry-run`` says a node would do."""

    summary: str  # e.g. "Applied configuration without a reboot (skipped in dry-run)."
    diff: str  # the config diff, "" when there is none

    @property
    def changed(self) -> bool:
        return bool(self.diff)

    @property
    def reboots(self) -> bool:
        return "with a reboot" in self.summary


def parse_dry_run(text: str) -> DryRun:
    """Read the dry-run summary (talosctl prints it on stderr, after any warnings)."""
    _, found, rest = text.partition("Dry run summary:")
    if not found:
        raise UserError("talosctl apply-config --dry-run printed no dry-run summary", *_indented(text))
    summary, _, diff = rest.strip().partition("Config diff:")
    diff = diff.strip("\n")
    if diff.strip() == "No changes.":
        diff = ""
    return DryRun(summary.strip().splitlines()[0] if summary.strip() else "", diff)


def _indented(text: str) -> list[str]:
    return [f"  {line}" for line in text.strip().splitlines()[-20:] if line.strip()]
