"""The pure parts of ``inv dev.cluster-test`` (tasks/lib/clustertest/plan.py): where the nodes
are, what is Ready and why not, and the edits it makes to the scratch copy."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.lib.clustertest import plan
from tasks.lib.errors import UserError
from tests.cluster_fake import listing, ready


def test_booted_nodes_follow_talosctls_numbering_controllers_first() -> None:
    found = plan.make_plan(controlplanes=3, workers=2, nodes="", cidr="10.5.0.0/24", gateway="")
    assert found.gateway == "10.5.0.1"
    assert found.controllers == ("10.5.0.2", "10.5.0.3", "10.5.0.4")
    assert found.workers == ("10.5.0.5", "10.5.0.6")
    assert found.boot and found.node_name("10.5.0.5") == "k8s-3"
    assert found.address("cluster_api_addr") == "10.5.0.240"


def test_given_nodes_are_controllers_first_and_the_rest_workers() -> None:
    found = plan.make_plan(
        controlplanes=1, workers=-1, nodes="10.5.0.7, 10.5.0.9,", cidr="10.5.0.0/24", gateway=""
    )
    assert (found.controllers, found.workers, found.boot) == (("10.5.0.7",), ("10.5.0.9",), False)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"nodes": "10.5.0.2,10.5.0.2", "controlplanes": 1}, "--nodes lists an address twice"),
        ({"nodes": "10.5.0.240", "controlplanes": 1}, "an address the test gives the cluster itself"),
        ({"nodes": "10.5.0.1", "controlplanes": 1}, "an address the test gives the cluster itself"),
        ({"nodes": "10.5.0.x"}, "'10.5.0.x' is not an IPv4 address"),
        ({"workers": -2}, "--workers -2: cannot be negative"),
        ({"controlplanes": 5, "workers": 5}, "10 nodes: the test takes 9 at most"),
        ({"controlplanes": 10**12}, "1000000000001 nodes: the test takes 9 at most"),
        ({"workers": 10**12, "nodes": "10.5.0.2"}, "--nodes lists 1 address(es)"),
        ({"cidr": "10.5.0.0/33"}, "is not an IPv4 network"),
        ({"cidr": "10.0.0.0/8", "nodes": "10.0.0.0,10.255.255.255", "workers": 1}, "not a host address"),
        ({"gateway": "nowhere"}, "--gateway 'nowhere' is not an IPv4 address"),
    ],
)
def test_bad_options_say_what_is_wrong(options: dict[str, Any], problem: str) -> None:
    arguments = {"controlplanes": 1, "workers": -1, "nodes": "", "cidr": "10.5.0.0/24", "gateway": ""}
    with pytest.raises(UserError) as refused:
        plan.make_plan(**{**arguments, **options})
    assert any(problem in line for line in refused.value.lines), refused.value.lines


def test_the_cluster_yaml_is_for_the_vm_network_and_the_test_server() -> None:
    found = plan.make_plan(controlplanes=1, workers=1, nodes="", cidr="192.168.50.0/24", gateway="")
    text = plan.cluster_document(plan.cluster_settings(found, plan.repository_url("192.168.50.1", 8080)))
    assert "node_cidr: 192.168.50.0/24\nnode_default_gateway: 192.168.50.1\n" in text
    assert "repository_name: http://192.168.50.1:8080/home-ops.git\n" in text
    assert "cloudflare_domain: home-ops.test\n" in text


# --------------------------------------------------------------------------- readiness


def test_ready_means_the_ready_condition_of_the_latest_generation() -> None:
    lagging = ready("HelmRelease", "default", "echo")
    lagging["metadata"]["generation"] = 3
    done_pod = {"kind": "Pod", "metadata": {"name": "job-x", "namespace": "kube-system"}}
    done_pod["status"] = {"phase": "Succeeded"}
    text = listing(
        ready("HelmRelease", "default", "ok"),
        ready("HelmRelease", "network", "broken", ok=False, message="install retries exhausted\nmore"),
        lagging,
        {"kind": "Pod", "metadata": {"name": "new", "namespace": "default"}, "status": {}},
        done_pod,
    )
    assert [str(p) for p in plan.not_ready(text)] == [
        "helmrelease network/broken: install retries exhausted",
        "helmrelease default/echo: Ready, but for generation 2 of 3",
        "pod default/new: no Ready condition yet",
    ]


def test_a_check_counts_what_it_lists() -> None:
    nodes = plan.health_checks(2, [])[0]
    assert nodes.problems(listing(ready("Node", None, "k8s-0"))) == ["1 nodes Ready, expected 2"]
    assert nodes.problems(listing(ready("Node", None, "k8s-0"), ready("Node", None, "k8s-1"))) == []
    (oci,) = [c for c in plan.health_checks(1, ["kube-system"]) if c.what == "OCIRepositories"]
    assert oci.problems(listing()) == [], "a repository without OCI sources is fine"
    (pods,) = [c for c in plan.health_checks(1, ["kube-system"]) if c.what == "pods in kube-system"]
    assert pods.problems("error: the server is not there") == ["0 pods in kube-system, expected at least 1"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_whatever_kubectl_prints_readiness_is_an_answer_never_an_error(value: Any) -> None:
    text = json.dumps({"items": value if isinstance(value, list) else [value]})
    for check in plan.health_checks(1, ["default"]):
        assert isinstance(check.problems(text), list)
    assert plan.secret_value(json.dumps(value)) is None or isinstance(
        plan.secret_value(json.dumps(value)), str
    )


def test_the_secret_value_is_decoded_and_anything_else_is_none() -> None:
    encoded = base64.b64encode(b"decrypted-by-flux").decode()
    assert plan.secret_value(json.dumps({"data": {"value": encoded}})) == "decrypted-by-flux"
    assert plan.secret_value(json.dumps({"data": {"value": "%%%"}})) is None
    assert plan.secret_value("Error from server (NotFound)") is None


# --------------------------------------------------------------------------- edits to the scratch copy


def test_a_resource_is_added_once_and_the_comments_stay() -> None:
    text = (
        "---\n# the apps\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - ./echo/ks.yaml\n"
    )
    once = plan.add_resource(text, "./secret.sops.yaml")
    assert once.startswith("---\n# the apps\n")
    assert once.endswith("  - ./echo/ks.yaml\n  - ./secret.sops.yaml\n")
    assert plan.add_resource(once, "./secret.sops.yaml") == once
    with pytest.raises(UserError):
        plan.add_resource("- a list\n", "./x.yaml")


def test_the_sops_secret_manifest_quotes_its_value() -> None:
    manifest = plan.secret_manifest("s", "default", 'a "quoted": value')
    assert 'value: "a \\"quoted\\": value"' in manifest
