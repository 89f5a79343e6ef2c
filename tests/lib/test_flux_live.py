"""dev.start / dev.stop on a live cluster's Flux, against scripted kubectl and flux answers."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tasks.lib import flux_live
from tasks.lib.errors import UserError
from tests.scripted import Reply, scripted

GET_INSTANCE = f"kubectl get {flux_live.FLUXINSTANCE} --all-namespaces -o json"
GET_RELEASE = f"kubectl --namespace flux-system get {flux_live.HELMRELEASE} flux-instance -o json"
PATCH = f"kubectl --namespace flux-system patch {flux_live.FLUXINSTANCE} flux --type merge --patch"


def patched(patch: dict[str, object]) -> str:
    return f"{PATCH} {shlex.quote(json.dumps(patch, separators=(',', ':')))}"


def instance(ref: str, annotations: dict[str, str] | None = None) -> Reply:
    metadata = {
        "name": "flux",
        "namespace": "flux-system",
        "labels": {"helm.toolkit.fluxcd.io/name": "flux-instance"},
        "annotations": annotations or {},
    }
    return Reply(json.dumps({"items": [{"metadata": metadata, "spec": {"sync": {"ref": ref}}}]}))


def release(suspended: bool) -> Reply:
    return Reply(json.dumps({"spec": {"suspend": suspended}}))


def test_follow_branch_suspends_the_release_and_remembers_the_ref(tmp_path: Path) -> None:
    patch = {
        "metadata": {"annotations": {flux_live.ORIGINAL_REF: "refs/heads/main"}},
        "spec": {"sync": {"ref": "refs/heads/dev"}},
    }
    c = scripted(
        tmp_path,
        {
            GET_INSTANCE: instance("refs/heads/main"),
            GET_RELEASE: release(False),
            "flux --namespace flux-system suspend helmrelease flux-instance": Reply(),
            patched(patch): Reply(),
        },
    )
    assert flux_live.follow_branch(c, "dev") == [
        "suspended HelmRelease flux-system/flux-instance (it would revert the sync ref)",
        "FluxInstance flux: sync ref refs/heads/main -> refs/heads/dev",
    ]


def test_following_the_branch_already_followed_changes_nothing(tmp_path: Path) -> None:
    c = scripted(tmp_path, {GET_INSTANCE: instance("refs/heads/dev"), GET_RELEASE: release(True)})
    assert flux_live.follow_branch(c, "dev") == ["Flux already follows refs/heads/dev: nothing to change"]


def test_follow_default_puts_the_remembered_ref_back_and_resumes(tmp_path: Path) -> None:
    patch = {
        "metadata": {"annotations": {flux_live.ORIGINAL_REF: None}},
        "spec": {"sync": {"ref": "refs/tags/v1"}},
    }
    c = scripted(
        tmp_path,
        {
            GET_INSTANCE: instance("refs/heads/dev", {flux_live.ORIGINAL_REF: "refs/tags/v1"}),
            patched(patch): Reply(),
            GET_RELEASE: release(True),
            "flux --namespace flux-system resume helmrelease flux-instance": Reply(),
        },
    )
    assert flux_live.follow_default(c, "main") == [
        "FluxInstance flux: sync ref refs/heads/dev -> refs/tags/v1",
        "resumed HelmRelease flux-system/flux-instance",
    ]


def test_kubectl_failures_and_a_missing_instance_are_one_user_error(tmp_path: Path) -> None:
    c = scripted(tmp_path, {GET_INSTANCE: [Reply(stderr="a\nb\nc\nforbidden", exited=1), Reply("{}")]})
    with pytest.raises(UserError) as error:
        flux_live.find_instance(c)
    assert error.value.lines == [
        f"kubectl get {flux_live.FLUXINSTANCE} --all-namespaces failed",
        "  b",
        "  c",
        "  forbidden",
    ]
    with pytest.raises(UserError, match="no FluxInstance found"):
        flux_live.find_instance(c)


def test_sync_ref_and_managing_release_of_sparse_objects() -> None:
    assert flux_live.sync_ref({}) == ""
    assert flux_live.managing_release({"metadata": {}}) is None
    labels = {"helm.toolkit.fluxcd.io/name": "fi", "helm.toolkit.fluxcd.io/namespace": "ops"}
    assert flux_live.managing_release({"metadata": {"labels": labels}}) == ("ops", "fi")
