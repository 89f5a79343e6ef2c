"""What ``inv bootstrap.*`` does: take bare Talos nodes to a running Flux cluster.

Plaintext secrets exist only in memory: they travel from ``talhelper gensecret`` or
``sops --decrypt`` to the next command through its stdin, never through a file, and are
never printed.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.lib import swap
from tasks.lib.config.checks import load_config
from tasks.lib.errors import UserError
from tasks.lib.paths import Paths
from tasks.lib.provision import facts, ready, talos_ops
from tasks.lib.provision.steps import (
    BOOTSTRAP_TALOS,
    CONFIGURE,
    INIT,
    generated,
    known_nodes,
    node_label,
    preflight,
    run_generated,
    talos_files,
)
from tasks.lib.secrets import sopsfile
from tasks.lib.tools import runner

if TYPE_CHECKING:
    from invoke.context import Context

    from tasks.lib.config.schema import ClusterConfig

#: How ``kubectl`` applies: server-side, owning the fields it sets even when something
#: else (Flux, later) set them before.
SERVER_SIDE = ["--server-side", "--force-conflicts", "--field-manager=home-ops"]
#: How long ``helmfile sync`` of the bootstrap releases may take (helm waits for each).
SYNC_DEADLINE = 3600.0
#: talosctl's answer when etcd was bootstrapped before: a re-run is not an error.
ALREADY_BOOTSTRAPPED = ("AlreadyExists", "etcd data directory is not empty")


# --------------------------------------------------------------------------- bootstrap.talos


def talsecret_argvs(paths: Paths) -> tuple[list[str], list[str]]:
    """``talhelper gensecret`` and the sops command that encrypts its output (run from the
    root, so the ``talos/*.sops.yaml`` rule of .sops.yaml applies)."""
    return ["talhelper", "gensecret"], sopsfile.encrypt_argv(paths.rel(paths.talsecret))


def ensure_talsecret(c: Context, paths: Paths) -> bool:
    """Create ``talos/talsecret.sops.yaml`` unless it exists: ``talhelper gensecret`` piped
    in memory into ``sops --encrypt``; only ciphertext is ever written. True if created."""
    label = paths.rel(paths.talsecret)
    if paths.talsecret.exists():
        print(f"{label} exists: keeping the cluster's secrets")
        return False
    gensecret, encrypt = talsecret_argvs(paths)
    if runner.is_dry(c):
        line = f"{runner.command_line(gensecret)} | {runner.command_line(encrypt)} > {label}"
        print(f"cd {shlex.quote(str(paths.root))} && {line}")
        return True
    print(f"generating the Talos secrets into {label} (encrypted)")
    ciphertext = runner.pipe(c, gensecret, encrypt, cwd=paths.root).stdout
    if not sopsfile.is_encrypted_text(ciphertext):
        raise UserError(f"sops did not return an encrypted document; {label} was not written")
    change = swap.Change(paths.talsecret, ciphertext.encode(), exclusive=True)
    swap.write_files(paths.root, [change], "bootstrap.talos", key_dirs=paths.key_dirs)
    return True


def retry_generated(
    c: Context,
    paths: Paths,
    args: list[str],
    *,
    waiting_for: str,
    deadline: float,
    interval: float,
    attempt_timeout: float,
    ok_if: Any = None,
) -> None:
    """``talhelper gencommand ARGS`` once, then each talosctl command it printed retried
    until it succeeds or ``deadline`` seconds pass."""
    nodes = known_nodes(paths)
    then = (
        f"retry each talosctl command it prints (no shell), waiting for {waiting_for} (up to {deadline:g}s)"
    )
    commands = generated(c, paths, args, then=then)
    for command in commands:
        runner.retry(
            c,
            command.argv,
            waiting_for=f"{waiting_for} on {node_label(nodes, command.node)}",
            deadline=deadline,
            interval=interval,
            attempt_timeout=attempt_timeout,
            cwd=paths.talos,
            ok_if=ok_if,
        )


def already_bootstrapped(result: runner.Outcome) -> bool:
    output = f"{result.stderr}\n{result.stdout}"
    return any(marker in output for marker in ALREADY_BOOTSTRAPPED)


def load_cluster(paths: Paths) -> ClusterConfig:
    return load_config(paths.cluster_config, paths.nodes_config, paths.root)


def bootstrap_talos(
    c: Context, paths: Paths, deadline: float, interval: float, attempt_timeout: float, yes: bool = False
) -> None:
    """``inv bootstrap.talos``: the Talos secrets (once), the node configs generated and
    applied, the etcd bootstrap and the kubeconfig retried until they succeed. Not while
    the example's values are in place, unless ``yes``."""
    preflight(c, paths, tools=["talhelper", "talosctl", "sops"], files=talos_files(paths))
    ready.refuse_examples(paths, load_cluster(paths), yes, runner.is_dry(c))
    ensure_talsecret(c, paths)
    talos_ops.generate_config(c, paths)
    nodes = known_nodes(paths)
    args = ["apply", facts.extra_flags("--insecure")]
    run_generated(c, paths, args, action="applying config (insecure, maintenance mode)", nodes=nodes)
    timing = {
        "deadline": float(deadline),
        "interval": float(interval),
        "attempt_timeout": float(attempt_timeout),
    }
    retry_generated(
        c, paths, ["bootstrap"], waiting_for="etcd to bootstrap", ok_if=already_bootstrapped, **timing
    )
    # talosctl writes <dir>/kubeconfig; the commands run in talos/, so the root is "..".
    root = os.path.relpath(paths.root, paths.talos)
    retry_generated(
        c,
        paths,
        ["kubeconfig", facts.extra_flags(root, "--force")],
        waiting_for="the kubeconfig",
        **timing,
    )
    if not runner.is_dry(c):
        print(f"done: {paths.rel(paths.root / 'kubeconfig')} is ready; next: inv bootstrap.apps")


# --------------------------------------------------------------------------- bootstrap.apps


def wait_for_nodes(c: Context, deadline: float, interval: float) -> None:
    """Return at once when every node is Ready; otherwise wait until every node has
    registered (Ready=False is expected until the CNI runs), or fail at ``deadline``."""
    argv = ["kubectl", "get", "nodes", "--output=json"]
    if not runner.is_dry(c):
        probe = runner.run(c, argv, check=False, timeout=30)
        statuses = facts.node_statuses(probe.stdout) if probe.ok else []
        if facts.nodes_ready(statuses):
            print(f"nodes: all {len(statuses)} Ready, not waiting")
            return
    last: list[facts.NodeStatus] = []

    def registered(result: runner.Outcome) -> bool:
        last[:] = facts.node_statuses(result.stdout)
        return facts.nodes_registered(last)

    try:
        runner.retry(
            c,
            argv,
            waiting_for="the nodes to register (Ready=False is expected until the CNI runs)",
            deadline=deadline,
            interval=interval,
            attempt_timeout=30,
            accept=registered,
        )
    except UserError as error:
        seen = ", ".join(f"{s.name} Ready={'Unknown' if s.ready is None else s.ready}" for s in last)
        raise UserError(*error.lines, f"  nodes seen: {seen or 'none'}") from None


def ensure_namespaces(c: Context, paths: Paths) -> list[str]:
    """Create the namespace of every ``kubernetes/apps/*`` directory that does not exist yet.
    Returns the ones created."""
    wanted = facts.app_namespaces(paths.kubernetes / "apps")
    argv = ["kubectl", "get", "namespaces", "--output=jsonpath={.items[*].metadata.name}"]
    existing = set(runner.run(c, argv).stdout.split())
    missing = [name for name in wanted if name not in existing]
    for name in missing:
        runner.run(c, ["kubectl", "create", "namespace", name])
        if not runner.is_dry(c):
            print(f"namespace {name}: created")
    if not missing:
        print(f"namespaces: all {len(wanted)} exist")
    return missing


def apply_secrets(c: Context, paths: Paths) -> list[str]:
    """Decrypt each bootstrap secret in memory and apply it server-side through stdin,
    skipping the ones ``kubectl diff`` shows are current. Returns the ones applied."""
    applied = []
    kubectl = ["kubectl", "--namespace", facts.SECRETS_NAMESPACE]
    for path in facts.bootstrap_secret_files(paths.root):
        label = paths.rel(path)
        decrypt = sopsfile.decrypt_argv(label)
        diff = runner.pipe(
            c, decrypt, [*kubectl, "diff", *SERVER_SIDE, "-f", "-"], cwd=paths.root, check=False
        )
        if runner.is_dry(c) or diff.returncode == 1:
            runner.pipe(c, decrypt, [*kubectl, "apply", *SERVER_SIDE, "-f", "-"], cwd=paths.root)
            if not runner.is_dry(c):
                print(f"secret {label}: applied")
            applied.append(label)
        elif diff.returncode == 0:
            print(f"secret {label}: current")
        else:
            raise runner.CommandFailed(f"kubectl diff of {label}", diff.returncode, runner.tail(diff.stderr))
    return applied


def apply_crds(c: Context, paths: Paths, helmfile: Path) -> bool:
    """Render the CRD helmfile, keep only its CustomResourceDefinition documents and apply
    them server-side through stdin unless ``kubectl diff`` shows they are current."""
    render = ["helmfile", "--file", paths.rel(helmfile), "template"]
    diff = ["kubectl", "diff", *SERVER_SIDE, "-f", "-"]
    apply = ["kubectl", "apply", *SERVER_SIDE, "-f", "-"]
    if runner.is_dry(c):
        runner.run(c, render, cwd=paths.root)
        print("# keep only its CustomResourceDefinition documents, then feed them through stdin to:")
        print(runner.command_line(diff))
        print(runner.command_line(apply))
        return True
    rendered = runner.run(c, render, cwd=paths.root).stdout
    crds = facts.select_kind(rendered)
    if not crds:
        raise UserError(f"`{runner.command_line(render)}` rendered no CustomResourceDefinition")
    stream = facts.join_documents(crds)
    result = runner.run(c, diff, stdin=stream, check=False)
    if result.returncode == 0:
        print(f"CRDs: all {len(crds)} current")
        return False
    if result.returncode != 1:
        raise runner.CommandFailed(runner.command_line(diff), result.returncode, runner.tail(result.stderr))
    runner.run(c, apply, stdin=stream)
    print(f"CRDs: {len(crds)} applied")
    return True


def sync_releases(c: Context, paths: Paths, helmfile: Path, force: bool) -> list[str]:
    """``helmfile sync`` the bootstrap releases, unless every one is already deployed at
    its pinned chart version with exactly the values helmfile would give it (a re-run then
    leaves the cluster, and helm's history, alone). Returns the releases synced."""
    releases = facts.helmfile_releases(helmfile, paths.rel(helmfile))
    listing = runner.run(c, ["helm", "list", "--all-namespaces", "--output", "json"])
    if runner.is_dry(c):
        pending = releases
    else:
        pending = facts.undeployed_releases(releases, listing.stdout)
        pending += [release for release in releases if release not in pending and values_changed(c, release)]
    if not pending and not force:
        print(f"releases: all {len(releases)} deployed at their pinned versions and values (--sync re-syncs)")
        return []
    runner.run(
        c,
        ["helmfile", "--file", paths.rel(helmfile), "sync", "--hide-notes"],
        cwd=paths.root,
        stream=True,
        timeout=SYNC_DEADLINE,
        what="installing the bootstrap releases",
    )
    return [str(release) for release in (releases if force else pending)]


def values_changed(c: Context, release: facts.Release) -> bool:
    """Whether a deployed release's values differ from what helmfile would apply now."""
    if release.values is None:
        print(f"release {release}: its values are only known when helmfile runs, will sync")
        return True
    result = runner.run(c, facts.helm_get_values_argv(release), check=False)
    if facts.values_current(release, result.stdout if result.ok else ""):
        return False
    print(f"release {release}: values changed, will sync")
    return True


def bootstrap_apps(
    c: Context, paths: Paths, deadline: float, interval: float, sync: bool, yes: bool = False
) -> list[str]:
    """``inv bootstrap.apps``: your commit on the remote Flux deploys (and not the example's
    values, unless ``yes``), then nodes, namespaces, bootstrap secrets, CRDs, releases.
    Returns what changed."""
    crds_file = paths.bootstrap / "helmfile.d" / "00-crds.yaml"
    apps_file = paths.bootstrap / "helmfile.d" / "01-apps.yaml"
    preflight(
        c,
        paths,
        tools=["kubectl", "sops", "helmfile", "helm"],
        files=[
            (paths.kubeconfig, BOOTSTRAP_TALOS),
            (paths.age_key, INIT),
            (crds_file, CONFIGURE),
            (apps_file, CONFIGURE),
            (paths.kubernetes / "apps", CONFIGURE),
        ],
    )
    if not facts.app_namespaces(paths.kubernetes / "apps"):
        raise UserError(f"{paths.rel(paths.kubernetes / 'apps')} has no namespace directories — {CONFIGURE}")
    config = load_cluster(paths)
    ready.refuse_examples(paths, config, yes, runner.is_dry(c))
    branch = str(config.cluster["repository_branch"])
    pushed = ready.check_pushed(paths.root, config.repository, branch, runner.is_dry(c))
    if not runner.is_dry(c):
        print(f"git: your commit is on {pushed}, which Flux deploys")
    wait_for_nodes(c, float(deadline), float(interval))
    changed = [f"namespace {name}" for name in ensure_namespaces(c, paths)]
    changed += [f"secret {label}" for label in apply_secrets(c, paths)]
    if apply_crds(c, paths, crds_file):
        changed.append("CRDs")
    changed += [f"release {name}" for name in sync_releases(c, paths, apps_file, bool(sync))]
    return changed
