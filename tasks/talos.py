"""``inv talos.*``: generate node configs, apply them, upgrade Talos and Kubernetes, reset.

Every task checks its preconditions (tools, files, ``--ip``) before running anything.
Where talhelper prints talosctl commands (``talhelper gencommand``), each printed command
is run as an argument list, never through a shell, and announced with the node it is for.
Under ``inv --dry`` the tasks print the commands they would run and run none of them, not
even ``talhelper gencommand``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from invoke import task

from . import cluster, runner
from .errors import UserError, friendly
from .paths import Paths, paths_for

CONFIGURE = "run `inv configure`"
INIT = "run `inv init`"
TALOSCONFIG = "run `inv bootstrap.talos` (or `inv talos.generate-config`)"
BOOTSTRAP_TALOS = "run `inv bootstrap.talos`"
#: Hints of files that a bootstrap step creates (kubeconfig, talosconfig, Talos secrets).
CREATED_BY_BOOTSTRAP = frozenset({BOOTSTRAP_TALOS, TALOSCONFIG})
TALSECRET = "run `inv bootstrap.talos`, which creates it"

#: How long ``talosctl upgrade`` may take before it gives up (talosctl's own --timeout).
UPGRADE_TIMEOUT = "10m"
#: How long a node may take to answer the "is it up" probe, in seconds.
PROBE_TIMEOUT = 30.0

# --------------------------------------------------------------------------- preconditions


def preflight(c: Any, paths: Paths, *, tools: Sequence[str], files: Sequence[tuple[Path, str]]) -> None:
    """Stop before anything runs, listing every missing tool and file on its own line."""
    lines: list[str] = []
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


def node_address(paths: Paths, ip: str) -> str:
    """``ip`` checked against nodes.yaml (an IPv4 address of a configured node)."""
    from .config import load_config

    if ip and cluster.ipv4(ip) is not None:  # only a well-formed address needs the config read
        nodes = load_config(paths.cluster_config, paths.nodes_config, paths.root).nodes
    else:
        nodes = []
    return cluster.check_node_ip(ip, nodes, paths.rel(paths.nodes_config))


def check_mode(mode: str) -> str:
    if mode not in cluster.APPLY_MODES:
        raise UserError(f"--mode {mode!r} is not one of {', '.join(cluster.APPLY_MODES)}")
    return mode


# --------------------------------------------------------------------------- generated commands


def node_label(nodes: Sequence[cluster.TalosNode], address: str | None) -> str:
    """``k8s-0 (192.168.1.10)`` for an address talconfig.yaml knows, else the address."""
    if address is None:
        return "the cluster"
    node = cluster.node_by_address(nodes, address)
    return f"{node.hostname} ({address})" if node else address


def generated(c: Any, paths: Paths, args: Sequence[str], *, then: str) -> list[cluster.GeneratedCommand]:
    """Run ``talhelper gencommand ARGS`` in talos/ and parse the talosctl commands it prints.

    Under ``--dry`` the gencommand line is printed with a comment on what would follow
    (``then``), nothing runs, and the list is empty."""
    argv = ["talhelper", "gencommand", *args]
    if runner.is_dry(c):
        runner.run(c, argv, cwd=paths.talos)
        print(f"# then {then}")
        return []
    commands = cluster.parse_gencommand(runner.run(c, argv, cwd=paths.talos).stdout)
    if not commands:
        raise UserError(f"`{runner.command_line(argv)}` printed no talosctl command")
    return commands


def run_generated(
    c: Any,
    paths: Paths,
    args: Sequence[str],
    *,
    action: str,
    nodes: Sequence[cluster.TalosNode] = (),
) -> int:
    """``talhelper gencommand ARGS`` and then each talosctl command it printed, one after the
    other, output shown live. Returns how many commands ran."""
    commands = generated(c, paths, args, then=f"run each talosctl command it prints (no shell), {action}")
    for command in commands:
        print(f"{action}: {node_label(nodes, command.node)}")
        print(f"  {command.line}")
        runner.run(c, command.argv, cwd=paths.talos, stream=True)
    return len(commands)


def known_nodes(paths: Paths) -> list[cluster.TalosNode]:
    """talconfig.yaml's nodes, for naming them in messages (empty when unreadable)."""
    try:
        return cluster.talconfig_nodes(paths.talconfig, paths.rel(paths.talconfig))
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


# --------------------------------------------------------------------------- tasks


@task
@friendly
def generate_config(c):
    """Render the Talos machine configs (`talhelper genconfig` in talos/)."""
    paths = paths_for(c)
    preflight(c, paths, tools=["talhelper"], files=[*talos_files(paths), (paths.talsecret, TALSECRET)])
    runner.run(c, ["talhelper", "genconfig"], cwd=paths.talos, stream=True)


@task(
    help={
        "ip": "address of the node (one of nodes.yaml)",
        "mode": f"talosctl apply mode: {', '.join(cluster.APPLY_MODES)} (default auto)",
    }
)
@friendly
def apply_node(c, ip="", mode="auto"):
    """Apply the node's generated Talos config (checks that the node answers first)."""
    paths = paths_for(c)
    mode = check_mode(mode)
    address = node_address(paths, ip)
    preflight(
        c, paths, tools=["talhelper", "talosctl"], files=[(paths.talconfig, CONFIGURE), talosconfig(paths)]
    )
    probe(c, paths, address)
    args = ["apply", "--node", address, cluster.extra_flags(f"--mode={mode}")]
    run_generated(c, paths, args, action=f"applying config (mode {mode})", nodes=known_nodes(paths))


def probe(c: Any, paths: Paths, address: str) -> None:
    """Fail early, with a readable message, when the node does not answer the Talos API."""
    argv = ["talosctl", "--nodes", address, "get", "machineconfig"]
    result = runner.run(c, argv, cwd=paths.talos, check=False, timeout=PROBE_TIMEOUT)
    if result.failed:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise UserError(
            f"node {address} does not answer on the Talos API (`{runner.command_line(argv)}` failed)",
            *(f"  {line}" for line in detail[-3:]),
        )


@task(help={"ip": "address of the node to upgrade (one of nodes.yaml)"})
@friendly
def upgrade_node(c, ip=""):
    """Upgrade Talos on one node to talenv.yaml's talosVersion.

    The installer image is the node's talosImageURL in talconfig.yaml; talosctl gives up
    after 10 minutes."""
    paths = paths_for(c)
    address = node_address(paths, ip)
    preflight(
        c,
        paths,
        tools=["talhelper", "talosctl"],
        files=[(paths.talconfig, CONFIGURE), (paths.talenv, CONFIGURE), talosconfig(paths)],
    )
    image = node_image(paths, address)
    print(f"upgrading {address} to {image}")
    args = [
        "upgrade",
        "--node",
        address,
        cluster.extra_flags(f"--image={image}", f"--timeout={UPGRADE_TIMEOUT}"),
    ]
    run_generated(c, paths, args, action="upgrading Talos", nodes=known_nodes(paths))


def node_image(paths: Paths, address: str) -> str:
    """The installer image ``address`` upgrades to: talconfig's talosImageURL + talosVersion."""
    label = paths.rel(paths.talconfig)
    node = cluster.node_by_address(cluster.talconfig_nodes(paths.talconfig, label), address)
    if node is None:
        raise UserError(f"{label} has no node with ipAddress {address} — {CONFIGURE}")
    version = cluster.talenv_value(paths.talenv, "talosVersion", paths.rel(paths.talenv))
    return cluster.installer_image(node, version, label)


@task
@friendly
def upgrade_k8s(c):
    """Upgrade Kubernetes to talenv.yaml's kubernetesVersion."""
    paths = paths_for(c)
    preflight(
        c,
        paths,
        tools=["talhelper", "talosctl"],
        files=[(paths.talconfig, CONFIGURE), (paths.talenv, CONFIGURE), talosconfig(paths)],
    )
    version = cluster.talenv_value(paths.talenv, "kubernetesVersion", paths.rel(paths.talenv))
    print(f"upgrading Kubernetes to {version}")
    args = ["upgrade-k8s", cluster.extra_flags(f"--to={version}")]
    run_generated(c, paths, args, action="upgrading Kubernetes", nodes=known_nodes(paths))


def reset_flags(wipe_disk: bool) -> list[str]:
    """talosctl reset flags: reboot into maintenance mode at once, no drain; wipe only the
    STATE and EPHEMERAL partitions unless the whole disk is to go."""
    wipe = [] if wipe_disk else ["--system-labels-to-wipe=STATE", "--system-labels-to-wipe=EPHEMERAL"]
    return ["--reboot", *wipe, "--graceful=false", "--wait=false"]


@task(
    help={
        "yes": "do not ask for confirmation (needed when there is no terminal)",
        "wipe-disk": "wipe the whole system disk, not only the STATE and EPHEMERAL partitions",
    }
)
@friendly
def reset(c, yes=False, wipe_disk=False):
    """DESTROY the cluster: reset every node back to maintenance mode (asks first)."""
    paths = paths_for(c)
    preflight(
        c, paths, tools=["talhelper", "talosctl"], files=[(paths.talconfig, CONFIGURE), talosconfig(paths)]
    )
    nodes = cluster.talconfig_nodes(paths.talconfig, paths.rel(paths.talconfig))
    names = ", ".join(node.describe() for node in nodes)
    if not (yes or runner.is_dry(c)):
        wiped = "whole system disk" if wipe_disk else "STATE and EPHEMERAL partitions"
        confirm(
            f"This DESTROYS the cluster: {names} will be reset to maintenance mode "
            f"(their {wiped} wiped, no drain)."
        )
    run_generated(
        c, paths, ["reset", cluster.extra_flags(*reset_flags(wipe_disk))], action="resetting", nodes=nodes
    )
