"""What the ``talos.*`` tasks do, through the runner: generate and validate the machine
configs, discover a node, list the nodes, and the day-2 changes (diff, apply, rolling
upgrade, reset), each visiting one node at a time and stopping at the first failure.

Node-changing steps show what they will do and ask first (``confirm``) unless ``yes``; under
``inv --dry`` every command is printed (talhelper's generated ones as a ``# then`` line, since
``talhelper gencommand`` itself does not run) and nothing runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from invoke.context import Context

from tasks.lib.config.checks import load_config
from tasks.lib.errors import UserError
from tasks.lib.paths import Paths
from tasks.lib.provision import day2, facts
from tasks.lib.provision import discover as discovery
from tasks.lib.provision.steps import (
    CONFIGURE,
    UPGRADE_TIMEOUT,
    check_mode,
    checked,
    confirm,
    generated,
    preflight,
    probe_node,
    run_generated,
    talosconfig,
)
from tasks.lib.tools import runner
from tasks.lib.tools.doctor import table
from tasks.lib.tools.failures import explain

__all__ = ["talosconfig"]

#: How long a node may take to answer at its new version after ``talosctl upgrade``, and
#: etcd to be healthy again after that (seconds).
BACK_DEADLINE = 15 * 60.0
ETCD_DEADLINE = 10 * 60.0
#: Seconds between two checks while waiting, and how long one check may take.
POLL_INTERVAL = 5.0
CHECK_TIMEOUT = 20.0


def apply_preflight(c: Context, paths: Paths) -> None:
    preflight(
        c, paths, tools=["talhelper", "talosctl"], files=[(paths.talconfig, CONFIGURE), talosconfig(paths)]
    )


def upgrade_preflight(c: Context, paths: Paths) -> None:
    preflight(
        c,
        paths,
        tools=["talhelper", "talosctl"],
        files=[(paths.talconfig, CONFIGURE), (paths.talenv, CONFIGURE), talosconfig(paths)],
    )


def cluster_nodes(paths: Paths) -> list[facts.TalosNode]:
    return facts.talconfig_nodes(paths.talconfig, paths.rel(paths.talconfig))


def chosen(paths: Paths, node: str) -> list[facts.TalosNode]:
    return day2.select_nodes(cluster_nodes(paths), node, paths.rel(paths.talconfig))


# --------------------------------------------------------------------------- generate-config


def machine_configs(paths: Paths) -> list[Path]:
    """The machine configs genconfig wrote (``clusterconfig/*.yaml``; talosconfig has no suffix)."""
    folder = paths.talos / "clusterconfig"
    return sorted(p for p in folder.glob("*.yaml") if p.is_file()) if folder.is_dir() else []


def expected_configs(paths: Paths) -> list[Path]:
    """What genconfig writes: ``clusterconfig/CLUSTERNAME-HOSTNAME.yaml`` per node."""
    name = str(
        facts.read_mapping(paths.talconfig, paths.rel(paths.talconfig)).get("clusterName") or "kubernetes"
    )
    return [paths.talos / "clusterconfig" / f"{name}-{node.hostname}.yaml" for node in cluster_nodes(paths)]


def generate_config(c: Context, paths: Paths) -> None:
    """``talhelper genconfig``, then ``talosctl validate --mode metal`` on every config it
    wrote when talosctl is installed (Talos's own check: the one a node runs on apply)."""
    checked(c, ["talhelper", "genconfig"], cwd=paths.talos, stream=True)
    if runner.find_tool("talosctl") is None and not runner.is_dry(c):
        print("note: the machine configs were NOT validated: talosctl is not installed", file=sys.stderr)
        return
    configs = expected_configs(paths) if runner.is_dry(c) else machine_configs(paths)
    problems: list[str] = []
    for config in configs:
        argv = ["talosctl", "validate", "--config", paths.rel(config), "--mode", "metal"]
        result = runner.run(c, argv, cwd=paths.root, check=False, timeout=60)
        if result.failed:
            problems += explain(
                f"{paths.rel(config)}: Talos rejects this machine config:", result.stdout, result.stderr
            )
    if problems:
        raise UserError(
            *problems,
            "fix the cluster.yaml/nodes.yaml value or the talos/patches file behind it, then `inv configure` "
            "and `inv talos.generate-config` again",
        )
    if not runner.is_dry(c):
        print(f"validated {len(configs)} machine config(s) with talosctl validate --mode metal")


# --------------------------------------------------------------------------- discover


def known_names(paths: Paths) -> list[str]:
    """The node names nodes.yaml has (none when it is missing or does not validate)."""
    if not paths.nodes_config.exists():
        return []
    try:
        return [
            str(n["name"]) for n in load_config(paths.cluster_config, paths.nodes_config, paths.root).nodes
        ]
    except UserError:
        return []


def discover(c: Context, paths: Paths, *, ip: str, name: str, address: str, controller: bool) -> None:
    entry = discovery.discover(
        c, ip, name=name, address=address, controller=controller, existing=known_names(paths)
    )
    if entry is None:  # --dry
        print("# then print the node's nodes.yaml entry")
        return
    print(f"# add this under `nodes:` in {paths.rel(paths.nodes_config)}, then run `inv configure`")
    print(entry.yaml(), end="")


# --------------------------------------------------------------------------- nodes


def talos_version(c: Context, paths: Paths, node: facts.TalosNode) -> str | None:
    argv = ["talosctl", "version", "--nodes", day2.primary(node)]
    result = runner.run(c, argv, cwd=paths.talos, check=False, timeout=CHECK_TIMEOUT)
    return None if result.failed else day2.server_version(result.stdout)


def kubernetes_ready(c: Context, paths: Paths) -> dict[str, bool | None]:
    """Node name -> Ready, from the cluster (empty when there is no kubeconfig or kubectl)."""
    if not paths.kubeconfig.exists() or runner.find_tool("kubectl") is None:
        return {}
    argv = ["kubectl", "get", "nodes", "--output=json"]
    result = runner.run(c, argv, check=False, timeout=CHECK_TIMEOUT)
    if result.failed:
        return {}
    return {status.name: status.ready for status in facts.node_statuses(result.stdout)}


def list_nodes(c: Context, paths: Paths) -> None:
    nodes = cluster_nodes(paths)
    versions = [talos_version(c, paths, node) for node in nodes]
    ready = kubernetes_ready(c, paths)
    if runner.is_dry(c):
        return
    rows = []
    for node, version in zip(nodes, versions, strict=True):
        state = {True: "yes", False: "no"}.get(ready.get(node.hostname), "-")  # type: ignore[arg-type]
        role = "controller" if node.controller else "worker"
        rows.append((node.hostname, ", ".join(node.addresses), role, version or "no answer", state))
    print(table(("node", "address", "role", "talos", "ready"), rows))


# --------------------------------------------------------------------------- diff / apply


def dry_run(c: Context, paths: Paths, node: facts.TalosNode, mode: str = "auto") -> day2.DryRun | None:
    """What applying the generated config would do to ``node`` (None under ``--dry``)."""
    args = ["apply", "--node", day2.primary(node), facts.extra_flags(f"--mode={mode}", "--dry-run")]
    commands = generated(
        c, paths, args, then=f"run the talosctl apply-config --dry-run it prints for {node.hostname}"
    )
    if not commands:
        return None
    (command,) = commands
    result = checked(c, command.argv, cwd=paths.talos)
    return day2.parse_dry_run(result.stderr + "\n" + result.stdout)


def show(node: facts.TalosNode, result: day2.DryRun) -> None:
    print(f"{node.describe()}: {result.summary if result.changed else 'no changes'}")
    if result.changed:
        print(result.diff)


def diff(c: Context, paths: Paths, *, node: str) -> None:
    for target in chosen(paths, node):
        result = dry_run(c, paths, target)
        if result is not None:
            show(target, result)


def apply(c: Context, paths: Paths, *, node: str, mode: str, yes: bool) -> None:
    """For each node (controllers first): check it answers, show its diff, ask, apply."""
    mode = check_mode(mode)
    targets = day2.rolling_order(chosen(paths, node))
    applied = 0
    for target in targets:
        probe_node(c, paths, day2.primary(target))
        result = dry_run(c, paths, target, mode)
        if result is not None:
            show(target, result)
            if not result.changed:
                continue
            if not yes:
                confirm(f"Apply this to {target.describe()} (mode {mode})?")
        args = ["apply", "--node", day2.primary(target), facts.extra_flags(f"--mode={mode}")]
        run_generated(c, paths, args, action=f"applying config (mode {mode})", nodes=targets)
        applied += 1
    if not runner.is_dry(c):
        print(f"applied to {applied} of {len(targets)} node(s); the others had no changes")


# --------------------------------------------------------------------------- upgrade


def upgrade(c: Context, paths: Paths, *, node: str, yes: bool, reinstall: bool = False) -> None:
    """Rolling Talos upgrade to talenv's talosVersion; stops at the first node that fails.
    ``reinstall`` upgrades a node that already runs that version too (the same installer,
    written again: it proves the upgrade path without changing the version)."""
    version = facts.talenv_value(paths.talenv, "talosVersion", paths.rel(paths.talenv))
    everyone = cluster_nodes(paths)
    targets = day2.rolling_order(day2.select_nodes(everyone, node, paths.rel(paths.talconfig)))
    images = {t.hostname: facts.installer_image(t, version, paths.rel(paths.talconfig)) for t in targets}
    if not (yes or runner.is_dry(c)):
        listed = "\n".join(f"  {t.describe()} -> {images[t.hostname]}" for t in targets)
        confirm(f"Upgrade Talos to {version}, one node at a time (each reboots):\n{listed}")
    controllers = [n for n in everyone if n.controller]
    for index, target in enumerate(targets):
        try:
            upgrade_one(c, paths, target, version, images[target.hostname], controllers, reinstall)
        except UserError as error:
            left = ", ".join(t.hostname for t in targets[index + 1 :]) or "none"
            raise UserError(*error.lines, f"stopped at {target.hostname}; not upgraded: {left}") from None


def upgrade_one(
    c: Context,
    paths: Paths,
    node: facts.TalosNode,
    version: str,
    image: str,
    controllers: Sequence[facts.TalosNode],
    reinstall: bool = False,
) -> None:
    """Upgrade one node unless it runs ``version`` already (and not ``reinstall``), then wait
    until it is back at ``version`` and etcd is healthy."""
    address = day2.primary(node)
    probe_node(c, paths, address)
    current = talos_version(c, paths, node)
    if current == version and not reinstall:
        print(f"{node.describe()}: already at {version}")
        return
    if current == version:
        print(f"{node.describe()}: at {version} already; installing it again (--reinstall)")
    print(f"upgrading {node.describe()}{f' from {current}' if current else ''} to {image}")
    args = ["upgrade", "--node", address, facts.extra_flags(f"--timeout={UPGRADE_TIMEOUT}")]
    run_generated(c, paths, args, action="upgrading Talos", nodes=[node])
    wait_for_version(c, paths, node, version)
    if controllers:
        wait_for_etcd(c, paths, controllers)


def wait_for_version(c: Context, paths: Paths, node: facts.TalosNode, version: str) -> None:
    runner.retry(
        c,
        ["talosctl", "version", "--nodes", day2.primary(node)],
        waiting_for=f"{node.hostname} to answer at {version}",
        deadline=BACK_DEADLINE,
        interval=POLL_INTERVAL,
        attempt_timeout=CHECK_TIMEOUT,
        cwd=paths.talos,
        accept=lambda result: day2.server_version(result.stdout) == version,
    )


def wait_for_etcd(c: Context, paths: Paths, controllers: Sequence[facts.TalosNode]) -> None:
    addresses = ",".join(day2.primary(n) for n in controllers)
    runner.retry(
        c,
        ["talosctl", "etcd", "status", "--nodes", addresses],
        waiting_for=f"etcd to be healthy on {len(controllers)} controller(s)",
        deadline=ETCD_DEADLINE,
        interval=POLL_INTERVAL,
        attempt_timeout=CHECK_TIMEOUT,
        cwd=paths.talos,
        accept=lambda result: not day2.etcd_problems(result.stdout, len(controllers)),
    )


def upgrade_k8s(c: Context, paths: Paths) -> None:
    version = facts.talenv_value(paths.talenv, "kubernetesVersion", paths.rel(paths.talenv))
    print(f"upgrading Kubernetes to {version}")
    args = ["upgrade-k8s", facts.extra_flags(f"--to={version}")]
    run_generated(c, paths, args, action="upgrading Kubernetes", nodes=cluster_nodes(paths))


# --------------------------------------------------------------------------- reset


def wipe_flags(wipe_disk: bool) -> list[str]:
    """Wipe only the STATE and EPHEMERAL partitions unless the whole disk is to go."""
    return [] if wipe_disk else ["--system-labels-to-wipe=STATE", "--system-labels-to-wipe=EPHEMERAL"]


def wiped(wipe_disk: bool) -> str:
    return "whole system disk" if wipe_disk else "STATE and EPHEMERAL partitions"


def reset_node(c: Context, paths: Paths, *, node: str, yes: bool, wipe_disk: bool) -> None:
    """Reset one node gracefully: drained, out of etcd, back in maintenance mode."""
    if not node:
        raise UserError(
            "--node is required: the name or address of the node to reset (all nodes: `inv talos.reset`)"
        )
    everyone = cluster_nodes(paths)
    (target,) = day2.select_nodes(everyone, node, paths.rel(paths.talconfig))
    if target.controller and sum(n.controller for n in everyone) == 1:
        raise UserError(
            f"{target.hostname} is the only controller: resetting it destroys the cluster"
            " — use `inv talos.reset`"
        )
    if not (yes or runner.is_dry(c)):
        confirm(
            f"Reset {target.describe()}: it is drained, leaves etcd, its {wiped(wipe_disk)} are wiped and it "
            "reboots into maintenance mode."
        )
    flags = ["--reboot", *wipe_flags(wipe_disk), "--graceful=true", "--wait=false"]
    args = ["reset", "--node", day2.primary(target), facts.extra_flags(*flags)]
    run_generated(c, paths, args, action="resetting", nodes=[target])
    if not runner.is_dry(c):
        print(
            f"{target.hostname} is resetting into maintenance mode: `inv bootstrap.talos` brings it back, "
            "or remove it from nodes.yaml and run `inv configure`"
        )


def reset_cluster(c: Context, paths: Paths, *, yes: bool, wipe_disk: bool) -> None:
    nodes = cluster_nodes(paths)
    names = ", ".join(node.describe() for node in nodes)
    if not (yes or runner.is_dry(c)):
        confirm(
            f"This DESTROYS the cluster: {names} will be reset to maintenance mode "
            f"(their {wiped(wipe_disk)} wiped, no drain)."
        )
    flags = ["--reboot", *wipe_flags(wipe_disk), "--graceful=false", "--wait=false"]
    run_generated(c, paths, ["reset", facts.extra_flags(*flags)], action="resetting", nodes=nodes)
