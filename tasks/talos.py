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

from tasks.lib.paths import paths_for
from tasks.lib.taskdef import task
from tasks.lib.tools.runner import is_dry, run

#: ``talosctl apply-config --mode`` values, as the help says them (a test keeps this in
#: line with ``facts.APPLY_MODES``, which the task checks against).
MODES_HELP = "auto, interactive, no-reboot, reboot, staged, try"

# --------------------------------------------------------------------------- tasks


@task
def generate_config(c: Context) -> None:
    """Render the Talos machine configs (`talhelper genconfig` in talos/)."""
    from tasks.lib.provision import steps

    paths = paths_for(c)
    steps.preflight(
        c, paths, tools=["talhelper"], files=[*steps.talos_files(paths), (paths.talsecret, steps.TALSECRET)]
    )
    run(c, ["talhelper", "genconfig"], cwd=paths.talos, stream=True)


@task(
    help={
        "ip": "address of the node (one of nodes.yaml)",
        "mode": f"talosctl apply mode: {MODES_HELP} (default auto)",
    }
)
def apply_node(c: Context, ip: str = "", mode: str = "auto") -> None:
    """Apply the node's generated Talos config (checks that the node answers first)."""
    from tasks.lib.provision import facts, steps

    paths = paths_for(c)
    mode = steps.check_mode(mode)
    address = steps.node_address(paths, ip)
    steps.preflight(
        c,
        paths,
        tools=["talhelper", "talosctl"],
        files=[(paths.talconfig, steps.CONFIGURE), steps.talosconfig(paths)],
    )
    steps.probe_node(c, paths, address)
    args = ["apply", "--node", address, facts.extra_flags(f"--mode={mode}")]
    steps.run_generated(
        c, paths, args, action=f"applying config (mode {mode})", nodes=steps.known_nodes(paths)
    )


@task(help={"ip": "address of the node to upgrade (one of nodes.yaml)"})
def upgrade_node(c: Context, ip: str = "") -> None:
    """Upgrade Talos on one node to talenv.yaml's talosVersion (checks the node answers first).

    The installer image is the node's talosImageURL in talconfig.yaml; talosctl gives up
    after 10 minutes."""
    from tasks.lib.provision import facts, steps

    paths = paths_for(c)
    address = steps.node_address(paths, ip)
    steps.preflight(
        c,
        paths,
        tools=["talhelper", "talosctl"],
        files=[(paths.talconfig, steps.CONFIGURE), (paths.talenv, steps.CONFIGURE), steps.talosconfig(paths)],
    )
    image = steps.node_image(paths, address)
    steps.probe_node(c, paths, address)
    print(f"upgrading {address} to {image}")
    flags = facts.extra_flags(f"--image={image}", f"--timeout={steps.UPGRADE_TIMEOUT}")
    args = ["upgrade", "--node", address, flags]
    steps.run_generated(c, paths, args, action="upgrading Talos", nodes=steps.known_nodes(paths))


@task
def upgrade_k8s(c: Context) -> None:
    """Upgrade Kubernetes to talenv.yaml's kubernetesVersion."""
    from tasks.lib.provision import facts, steps

    paths = paths_for(c)
    steps.preflight(
        c,
        paths,
        tools=["talhelper", "talosctl"],
        files=[(paths.talconfig, steps.CONFIGURE), (paths.talenv, steps.CONFIGURE), steps.talosconfig(paths)],
    )
    version = facts.talenv_value(paths.talenv, "kubernetesVersion", paths.rel(paths.talenv))
    print(f"upgrading Kubernetes to {version}")
    args = ["upgrade-k8s", facts.extra_flags(f"--to={version}")]
    steps.run_generated(c, paths, args, action="upgrading Kubernetes", nodes=steps.known_nodes(paths))


@task(
    help={
        "yes": "do not ask for confirmation (needed when there is no terminal)",
        "wipe-disk": "wipe the whole system disk, not only the STATE and EPHEMERAL partitions",
    }
)
def reset(c: Context, yes: bool = False, wipe_disk: bool = False) -> None:
    """DESTROY the cluster: reset every node back to maintenance mode (asks first)."""
    from tasks.lib.provision import facts, steps

    paths = paths_for(c)
    steps.preflight(
        c,
        paths,
        tools=["talhelper", "talosctl"],
        files=[(paths.talconfig, steps.CONFIGURE), steps.talosconfig(paths)],
    )
    nodes = facts.talconfig_nodes(paths.talconfig, paths.rel(paths.talconfig))
    names = ", ".join(node.describe() for node in nodes)
    if not (yes or is_dry(c)):
        wiped = "whole system disk" if wipe_disk else "STATE and EPHEMERAL partitions"
        steps.confirm(
            f"This DESTROYS the cluster: {names} will be reset to maintenance mode "
            f"(their {wiped} wiped, no drain)."
        )
    args = ["reset", facts.extra_flags(*steps.reset_flags(wipe_disk))]
    steps.run_generated(c, paths, args, action="resetting", nodes=nodes)


ns = Collection("talos")
for _task in (generate_config, apply_node, upgrade_node, upgrade_k8s, reset):
    ns.add_task(_task)
