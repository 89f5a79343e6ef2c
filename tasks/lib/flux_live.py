"""Flux on the live cluster: the calls that ``flux.*``, ``reconcile`` and ``dev.*`` share.

``dev.start`` points the cluster's Flux at a branch by patching the FluxInstance (the Flux
operator's sync settings) and ``dev.stop`` points it back: :func:`follow_branch` and
:func:`follow_default`. The HelmRelease that renders the FluxInstance would revert such a
patch, so it is suspended while a branch is followed; the ref Flux followed before is kept
in an annotation of the FluxInstance.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tasks.lib.errors import UserError
from tasks.lib.paths import paths_for
from tasks.lib.tools.runner import Command, is_dry, require, require_files, run, run_one

if TYPE_CHECKING:
    from invoke.context import Context

FLUX_NS = "flux-system"
FLUXINSTANCE = "fluxinstances.fluxcd.controlplane.io"
HELMRELEASE = "helmreleases.helm.toolkit.fluxcd.io"
#: Where dev.start keeps the ref Flux followed before (dev.stop puts it back).
ORIGINAL_REF = "home-ops.dev/original-ref"

Instance = dict[str, Any]


def reconcile_flux(c: Context) -> None:
    """Have Flux fetch the repository and apply the root Kustomization now."""
    run(
        c,
        ["flux", "--namespace", FLUX_NS, "reconcile", "kustomization", FLUX_NS, "--with-source"],
        stream=True,
    )


def needs_cluster(c: Context, *tools: str) -> None:
    """Stop unless ``tools`` are installed and there is a kubeconfig (under ``--dry`` only
    the tools are checked, as a warning)."""
    paths = paths_for(c)
    require(c, *tools)
    if not is_dry(c):
        require_files(
            (paths.kubeconfig, "point KUBECONFIG at the cluster or bootstrap it first"), paths=paths
        )


def kubectl_json(c: Context, *args: str) -> Any:
    """``kubectl ARGS -o json``, parsed (read-only: it runs under ``--dry`` too)."""
    outcome = run_one(Command(("kubectl", *args, "-o", "json")), paths=paths_for(c))
    if not outcome.ok:
        message = [outcome.problem] if outcome.limit else outcome.stderr.strip().splitlines()
        raise UserError(f"kubectl {' '.join(args)} failed", *(f"  {m}" for m in message[-3:]))
    return json.loads(outcome.stdout or "{}")


def find_instance(c: Context) -> Instance:
    """The cluster's FluxInstance (the Flux operator's sync settings)."""
    items = kubectl_json(c, "get", FLUXINSTANCE, "--all-namespaces").get("items") or []
    if not items:
        raise UserError("no FluxInstance found in the cluster: is the Flux operator installed?")
    instance: Instance = items[0]
    return instance


def sync_ref(instance: Instance) -> str:
    return str(((instance.get("spec") or {}).get("sync") or {}).get("ref") or "")


def managing_release(instance: Instance) -> tuple[str, str] | None:
    """The HelmRelease that renders the FluxInstance (it would revert a patched ref)."""
    labels = (instance.get("metadata") or {}).get("labels") or {}
    name = labels.get("helm.toolkit.fluxcd.io/name")
    namespace = labels.get("helm.toolkit.fluxcd.io/namespace") or FLUX_NS
    return (namespace, name) if name else None


def release_suspended(c: Context, release: tuple[str, str]) -> bool:
    body = kubectl_json(c, "--namespace", release[0], "get", HELMRELEASE, release[1])
    return bool((body.get("spec") or {}).get("suspend"))


def patch_instance(c: Context, instance: Instance, patch: dict[str, Any]) -> None:
    metadata = instance["metadata"]
    namespace = metadata.get("namespace", FLUX_NS)
    body = json.dumps(patch, separators=(",", ":"))
    run(
        c,
        [
            "kubectl",
            "--namespace",
            namespace,
            "patch",
            FLUXINSTANCE,
            metadata["name"],
            "--type",
            "merge",
            "--patch",
            body,
        ],
    )


def follow_branch(c: Context, branch: str) -> list[str]:
    """Point the cluster's Flux at ``refs/heads/BRANCH``: suspend the HelmRelease that
    manages the FluxInstance, patch its sync ref and remember the previous one. Returns
    one line per change (none when Flux already follows it)."""
    instance = find_instance(c)
    wanted = f"refs/heads/{branch}"
    current = sync_ref(instance)
    changed = []
    release = managing_release(instance)
    if release and not release_suspended(c, release):
        run(c, ["flux", "--namespace", release[0], "suspend", "helmrelease", release[1]])
        changed.append(f"suspended HelmRelease {release[0]}/{release[1]} (it would revert the sync ref)")
    if current != wanted:
        original = (instance["metadata"].get("annotations") or {}).get(ORIGINAL_REF) or current
        patch = {"metadata": {"annotations": {ORIGINAL_REF: original}}, "spec": {"sync": {"ref": wanted}}}
        patch_instance(c, instance, patch)
        changed.append(
            f"FluxInstance {instance['metadata']['name']}: sync ref {current or '(none)'} -> {wanted}"
        )
    return changed or [f"Flux already follows {wanted}: nothing to change"]


def follow_default(c: Context, default_branch: str) -> list[str]:
    """Undo :func:`follow_branch`: the sync ref it remembered (else ``default_branch``)
    back, the managing HelmRelease resumed. Returns one line per change."""
    instance = find_instance(c)
    annotations = instance["metadata"].get("annotations") or {}
    wanted = annotations.get(ORIGINAL_REF) or f"refs/heads/{default_branch}"
    current = sync_ref(instance)
    changed = []
    if current != wanted or ORIGINAL_REF in annotations:
        patch = {"metadata": {"annotations": {ORIGINAL_REF: None}}, "spec": {"sync": {"ref": wanted}}}
        patch_instance(c, instance, patch)
        changed.append(
            f"FluxInstance {instance['metadata']['name']}: sync ref {current or '(none)'} -> {wanted}"
        )
    release = managing_release(instance)
    if release and release_suspended(c, release):
        run(c, ["flux", "--namespace", release[0], "resume", "helmrelease", release[1]], stream=True)
        changed.append(f"resumed HelmRelease {release[0]}/{release[1]}")
    return changed or [f"Flux already follows {wanted}: nothing to change"]
