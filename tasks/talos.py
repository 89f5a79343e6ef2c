"""``inv talos.*``: find new nodes, generate and check their configs, and run the cluster's
Talos nodes day to day: apply, diff, upgrade (rolling), reset.

``--node`` takes a node's name or any of its addresses (``--node k8s-0`` or ``--node
192.168.1.10``); without it a task visits every node, one at a time. Every task checks its
preconditions (tools, files, nodes) before running anything, and a task that changes a node
shows what it will do and asks first unless ``--yes``. Where talhelper prints talosctl
commands (``talhelper gencommand``), each is run as an argument list, never through a shell.
Under ``inv --dry`` the tasks print every command they would run and run none of them.
"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context

from tasks.lib.paths import paths_for
from tasks.lib.taskdef import task

NODE_HELP = "a node's name or address (default: every node, one at a time)"
YES_HELP = "do not ask for confirmation (needed when there is no terminal)"
#: ``talosctl apply-config --mode`` values, as the help says them (a test keeps this in
#: line with ``facts.APPLY_MODES``, which the task checks against).
MODES_HELP = "auto, no-reboot, reboot, staged, try"


@task
def generate_config(c: Context) -> None:
    """Render the Talos machine configs (`talhelper genconfig`) and check each with `talosctl validate`."""
    from tasks.lib.provision import talos_ops
    from tasks.lib.provision.steps import TALSECRET, preflight, talos_files

    paths = paths_for(c)
    preflight(c, paths, tools=["talhelper"], files=[*talos_files(paths), (paths.talsecret, TALSECRET)])
    talos_ops.generate_config(c, paths)


@task(
    help={
        "ip": "the address the node got in maintenance mode (its console shows it)",
        "name": "its name in nodes.yaml (default: the first free k8s-N)",
        "address": "the static address it is to have (default: --ip)",
        "worker": "make it a worker (default: a controller)",
    }
)
def discover(c: Context, ip: str = "", name: str = "", address: str = "", worker: bool = False) -> None:
    """Read a node in maintenance mode and print its nodes.yaml entry (MAC, disk, schematic)."""
    from tasks.lib.provision import talos_ops
    from tasks.lib.provision.steps import preflight

    paths = paths_for(c)
    preflight(c, paths, tools=["talosctl"], files=[])
    talos_ops.discover(c, paths, ip=ip, name=name, address=address, controller=not worker)


@task
def nodes(c: Context) -> None:
    """List every node: name, address, role, Talos version and whether Kubernetes sees it Ready."""
    from tasks.lib.provision import talos_ops
    from tasks.lib.provision.steps import CONFIGURE, preflight

    paths = paths_for(c)
    preflight(
        c, paths, tools=["talosctl"], files=[(paths.talconfig, CONFIGURE), talos_ops.talosconfig(paths)]
    )
    talos_ops.list_nodes(c, paths)


@task(help={"node": NODE_HELP})
def diff(c: Context, node: str = "") -> None:
    """Show what applying the generated config would change on each node (`apply-config --dry-run`)."""
    from tasks.lib.provision import talos_ops

    paths = paths_for(c)
    talos_ops.apply_preflight(c, paths)
    talos_ops.diff(c, paths, node=node)


@task(
    help={
        "node": NODE_HELP,
        "mode": f"talosctl apply mode: {MODES_HELP} (default auto)",
        "yes": YES_HELP,
    }
)
def apply(c: Context, node: str = "", mode: str = "auto", yes: bool = False) -> None:
    """Apply the generated configs, one node at a time: show each node's diff, ask, apply."""
    from tasks.lib.provision import talos_ops

    paths = paths_for(c)
    talos_ops.apply_preflight(c, paths)
    talos_ops.apply(c, paths, node=node, mode=mode, yes=yes)


@task(
    help={
        "node": NODE_HELP,
        "yes": YES_HELP,
        "reinstall": "also upgrade a node already at that version (installs it again, a reboot)",
    }
)
def upgrade(c: Context, node: str = "", yes: bool = False, reinstall: bool = False) -> None:
    """Upgrade Talos to talenv.yaml's talosVersion, one node at a time (rolling, asks first).

    Controllers go first, then workers; a node already at that version is skipped unless
    --reinstall. After each node the task waits until it answers again at the new version
    and etcd is healthy, and stops at the first node that fails."""
    from tasks.lib.provision import talos_ops

    paths = paths_for(c)
    talos_ops.upgrade_preflight(c, paths)
    talos_ops.upgrade(c, paths, node=node, yes=yes, reinstall=reinstall)


@task
def upgrade_k8s(c: Context) -> None:
    """Upgrade Kubernetes to talenv.yaml's kubernetesVersion."""
    from tasks.lib.provision import talos_ops

    paths = paths_for(c)
    talos_ops.upgrade_preflight(c, paths)
    talos_ops.upgrade_k8s(c, paths)


@task(
    help={
        "node": "the node to reset: its name or address",
        "yes": YES_HELP,
        "wipe-disk": "wipe the whole system disk, not only the STATE and EPHEMERAL partitions",
    }
)
def reset_node(c: Context, node: str = "", yes: bool = False, wipe_disk: bool = False) -> None:
    """Reset one node back to maintenance mode: it leaves etcd and is drained first (asks first)."""
    from tasks.lib.provision import talos_ops

    paths = paths_for(c)
    talos_ops.apply_preflight(c, paths)
    talos_ops.reset_node(c, paths, node=node, yes=yes, wipe_disk=wipe_disk)


@task(
    help={
        "yes": YES_HELP,
        "wipe-disk": "wipe the whole system disk, not only the STATE and EPHEMERAL partitions",
    }
)
def reset(c: Context, yes: bool = False, wipe_disk: bool = False) -> None:
    """DESTROY the cluster: reset every node back to maintenance mode (asks first)."""
    from tasks.lib.provision import talos_ops

    paths = paths_for(c)
    talos_ops.apply_preflight(c, paths)
    talos_ops.reset_cluster(c, paths, yes=yes, wipe_disk=wipe_disk)


ns = Collection("talos")
for _task in (generate_config, discover, nodes, diff, apply, upgrade, upgrade_k8s, reset_node, reset):
    ns.add_task(_task)
