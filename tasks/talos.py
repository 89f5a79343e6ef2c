"""``inv talos.*``: generate node configs, apply them, upgrade Talos and Kubernetes, reset.

Every task checks its preconditions (tools, files, ``--ip``) before running anything.
Where talhelper prints talosctl commands (``talhelper gencommand``), each printed command
is run as an argument list, never through a shell, and announced with the node it is for.
Under ``inv --dry`` the tasks print the commands they would run and run none of them, not
even ``talhelper gencommand``.
"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context

from tasks.lib.errors import UserError
from tasks.lib.paths import Paths, paths_for
from tasks.lib.provision import facts
from tasks.lib.provision.steps import (
    CONFIGURE,
    TALSECRET,
    UPGRADE_TIMEOUT,
    check_mode,
    confirm,
    known_nodes,
    node_address,
    preflight,
    probe_node,
    run_generated,
    talos_files,
    talosconfig,
)
from tasks.lib.taskdef import task
from tasks.lib.tools import runner

# --------------------------------------------------------------------------- tasks


@task
def generate_config(c: Context) -> None:
    """Render the Talos machine configs (`talhelper genconfig` in talos/)."""
    paths = paths_for(c)
    preflight(c, paths, tools=["talhelper"], files=[*talos_files(paths), (paths.talsecret, TALSECRET)])
    runner.run(c, ["talhelper", "genconfig"], cwd=paths.talos, stream=True)


@task(
    help={
        "ip": "address of the node (one of nodes.yaml)",
        "mode": f"talosctl apply mode: {', '.join(facts.APPLY_MODES)} (default auto)",
    }
)
def apply_node(c: Context, ip: str = "", mode: str = "auto") -> None:
    """Apply the node's generated Talos config (checks that the node answers first)."""
    paths = paths_for(c)
    mode = check_mode(mode)
    address = node_address(paths, ip)
    preflight(
        c, paths, tools=["talhelper", "talosctl"], files=[(paths.talconfig, CONFIGURE), talosconfig(paths)]
    )
    probe_node(c, paths, address)
    args = ["apply", "--node", address, facts.extra_flags(f"--mode={mode}")]
    run_generated(c, paths, args, action=f"applying config (mode {mode})", nodes=known_nodes(paths))


@task(help={"ip": "address of the node to upgrade (one of nodes.yaml)"})
def upgrade_node(c: Context, ip: str = "") -> None:
    """Upgrade Talos on one node to talenv.yaml's talosVersion (checks the node answers first).

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
    probe_node(c, paths, address)
    print(f"upgrading {address} to {image}")
    args = [
        "upgrade",
        "--node",
        address,
        facts.extra_flags(f"--image={image}", f"--timeout={UPGRADE_TIMEOUT}"),
    ]
    run_generated(c, paths, args, action="upgrading Talos", nodes=known_nodes(paths))


def node_image(paths: Paths, address: str) -> str:
    """The installer image ``address`` upgrades to: talconfig's talosImageURL + talosVersion."""
    label = paths.rel(paths.talconfig)
    node = facts.node_by_address(facts.talconfig_nodes(paths.talconfig, label), address)
    if node is None:
        raise UserError(f"{label} has no node with ipAddress {address} — {CONFIGURE}")
    version = facts.talenv_value(paths.talenv, "talosVersion", paths.rel(paths.talenv))
    return facts.installer_image(node, version, label)


@task
def upgrade_k8s(c: Context) -> None:
    """Upgrade Kubernetes to talenv.yaml's kubernetesVersion."""
    paths = paths_for(c)
    preflight(
        c,
        paths,
        tools=["talhelper", "talosctl"],
        files=[(paths.talconfig, CONFIGURE), (paths.talenv, CONFIGURE), talosconfig(paths)],
    )
    version = facts.talenv_value(paths.talenv, "kubernetesVersion", paths.rel(paths.talenv))
    print(f"upgrading Kubernetes to {version}")
    args = ["upgrade-k8s", facts.extra_flags(f"--to={version}")]
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
def reset(c: Context, yes: bool = False, wipe_disk: bool = False) -> None:
    """DESTROY the cluster: reset every node back to maintenance mode (asks first)."""
    paths = paths_for(c)
    preflight(
        c, paths, tools=["talhelper", "talosctl"], files=[(paths.talconfig, CONFIGURE), talosconfig(paths)]
    )
    nodes = facts.talconfig_nodes(paths.talconfig, paths.rel(paths.talconfig))
    names = ", ".join(node.describe() for node in nodes)
    if not (yes or runner.is_dry(c)):
        wiped = "whole system disk" if wipe_disk else "STATE and EPHEMERAL partitions"
        confirm(
            f"This DESTROYS the cluster: {names} will be reset to maintenance mode "
            f"(their {wiped} wiped, no drain)."
        )
    run_generated(
        c, paths, ["reset", facts.extra_flags(*reset_flags(wipe_disk))], action="resetting", nodes=nodes
    )


ns = Collection("talos")
for _task in (generate_config, apply_node, upgrade_node, upgrade_k8s, reset):
    ns.add_task(_task)
