"""Steps shared by ``talos.*`` and ``bootstrap.*``: preconditions, talhelper's generated
talosctl commands, node names for messages, and the confirmation prompt."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from invoke.context import Context

from tasks.lib import swap
from tasks.lib.errors import UserError
from tasks.lib.paths import Paths
from tasks.lib.provision import facts
from tasks.lib.tools import runner
from tasks.lib.tools.failures import explain

CONFIGURE = "run `inv configure`"
INIT = "run `inv init`"
TALOSCONFIG = "run `inv bootstrap.talos` (or `inv talos.generate-config`)"
BOOTSTRAP_TALOS = "run `inv bootstrap.talos`"
#: Hints of files that a bootstrap step creates (kubeconfig, talosconfig, Talos secrets).
CREATED_BY_BOOTSTRAP = frozenset({BOOTSTRAP_TALOS, TALOSCONFIG})
TALSECRET = "run `inv bootstrap.talos`, which creates it"

#: How long ``talosctl upgrade`` may take before it gives up (talosctl's own --timeout).
UPGRADE_TIMEOUT = "10m"
#: How long one generated talosctl command may run (an upgrade waits up to UPGRADE_TIMEOUT).
TALOSCTL_DEADLINE = 1800.0
#: How long a node may take to answer the "is it up" probe, in seconds.
PROBE_TIMEOUT = 30.0

# --------------------------------------------------------------------------- preconditions


def preflight(c: Context, paths: Paths, *, tools: Sequence[str], files: Sequence[tuple[Path, str]]) -> None:
    """Stop before anything runs, listing every missing tool and file on its own line (and
    on a rendered tree an interrupted swap left part old, part new)."""
    lines: list[str] = []
    try:
        swap.require_settled(paths.root)
    except UserError as error:
        lines += error.lines
    try:
        runner.require(c, *tools)
    except UserError as error:
        lines += error.lines
    if runner.is_dry(c):
        # What an earlier bootstrap step creates need not exist yet: a dry run may show the
        # whole sequence (`inv --dry bootstrap.talos bootstrap.apps`) on a fresh checkout.
        later = [(path, hint) for path, hint in files if hint in CREATED_BY_BOOTSTRAP]
        for path, hint in later:
            if not path.exists():
                print(f"note: {paths.rel(path)} does not exist yet — {hint}", file=sys.stderr)
        files = [entry for entry in files if entry not in later]
    try:
        runner.require_files(*files, paths=paths)
    except UserError as error:
        lines += error.lines
    if lines:
        raise UserError(*lines)


def talos_files(paths: Paths) -> list[tuple[Path, str]]:
    """What every talhelper run needs: the rendered talconfig/talenv and the SOPS setup."""
    return [
        (paths.talconfig, CONFIGURE),
        (paths.talenv, CONFIGURE),
        (paths.sops_config, CONFIGURE),
        (paths.age_key, INIT),
    ]


def talosconfig(paths: Paths) -> tuple[Path, str]:
    return (paths.talosconfig, TALOSCONFIG)


def check_mode(mode: str) -> str:
    if mode not in facts.APPLY_MODES:
        raise UserError(f"--mode {mode!r} is not one of {', '.join(facts.APPLY_MODES)}")
    return mode


# --------------------------------------------------------------------------- generated commands


def node_label(nodes: Sequence[facts.TalosNode], address: str | None) -> str:
    """``k8s-0 (192.168.1.10)`` for an address talconfig.yaml knows, else the address."""
    if address is None:
        return "the cluster"
    node = facts.node_by_address(nodes, address)
    return f"{node.hostname} ({address})" if node else address


def generated(c: Context, paths: Paths, args: Sequence[str], *, then: str) -> list[facts.GeneratedCommand]:
    """Run ``talhelper gencommand ARGS`` in talos/ and parse the talosctl commands it prints.

    Under ``--dry`` the gencommand line is printed with a comment on what would follow
    (``then``), nothing runs, and the list is empty."""
    argv = ["talhelper", "gencommand", *args]
    if runner.is_dry(c):
        runner.run(c, argv, cwd=paths.talos)
        print(f"# then {then}")
        return []
    commands = facts.parse_gencommand(checked(c, argv, cwd=paths.talos).stdout)
    if not commands:
        raise UserError(f"`{runner.command_line(argv)}` printed no talosctl command")
    return commands


def run_generated(
    c: Context,
    paths: Paths,
    args: Sequence[str],
    *,
    action: str,
    nodes: Sequence[facts.TalosNode] = (),
) -> int:
    """``talhelper gencommand ARGS`` and then each talosctl command it printed, one after the
    other, output shown live. Returns how many commands ran."""
    commands = generated(c, paths, args, then=f"run each talosctl command it prints (no shell), {action}")
    for command in commands:
        print(f"{action}: {node_label(nodes, command.node)}")
        print(f"  {command.line}")
        checked(c, command.argv, cwd=paths.talos, stream=True, timeout=TALOSCTL_DEADLINE)
    return len(commands)


def checked(
    c: Context,
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    stream: bool = False,
    timeout: float | None = None,
) -> runner.Outcome:
    """Run ``argv``; when it fails, stop with every line of its reason (stdout and stderr,
    secrets masked) and the fix where the cause is known, not only its last line."""
    result = runner.run(c, argv, cwd=cwd, stream=stream, check=False, timeout=timeout)
    if result.failed:
        if result.limit:  # stopped by the runner (deadline, memory): its own one-line reason
            raise UserError(result.problem)
        line = runner.redact(runner.command_line(argv))
        headline = f"command failed (exit {result.returncode}): {line}"
        if stream:  # its output is on the screen already: only the fix goes below
            raise UserError(*explain(headline, shown=result.stdout + result.stderr))
        raise UserError(*explain(headline, result.stdout, result.stderr))
    return result


def probe_node(c: Context, paths: Paths, address: str) -> None:
    """Fail early, with a readable message, when the node does not answer the Talos API
    (before a command that would otherwise hang or half-run against it)."""
    argv = ["talosctl", "--nodes", address, "get", "machineconfig"]
    result = runner.run(c, argv, cwd=paths.talos, check=False, timeout=PROBE_TIMEOUT)
    if result.failed:
        detail = [result.problem] if result.limit else (result.stderr or result.stdout).strip().splitlines()
        raise UserError(
            f"node {address} does not answer on the Talos API (`{runner.command_line(argv)}` failed)",
            *(f"  {line}" for line in detail[-3:]),
        )


def known_nodes(paths: Paths) -> list[facts.TalosNode]:
    """talconfig.yaml's nodes, for naming them in messages (empty when unreadable)."""
    try:
        return facts.talconfig_nodes(paths.talconfig, paths.rel(paths.talconfig))
    except UserError:
        return []


def confirm(question: str, *, stdin: TextIO | None = None) -> None:
    """Ask on the terminal; anything but ``yes`` cancels. Without a terminal, refuse."""
    stream = stdin or sys.stdin
    if not (hasattr(stream, "isatty") and stream.isatty()):
        raise UserError(
            "refusing to continue without confirmation: there is no terminal to ask on",
            "pass --yes to confirm non-interactively",
        )
    print(question)
    try:
        answer = input("Type 'yes' to continue: ")
    except EOFError:
        answer = ""
    if answer.strip().lower() != "yes":
        raise UserError("cancelled: nothing was changed")
