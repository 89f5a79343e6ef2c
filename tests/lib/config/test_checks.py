"""Validating cluster.yaml and nodes.yaml: every constraint, valid and invalid, every problem at
once with its position; the typed model load_config returns."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from tasks.lib.config.checks import load_config
from tasks.lib.config.schema import CLUSTER_DEFAULTS
from tasks.lib.errors import UserError
from tests.conftest import EXAMPLE_INPUTS

VALID_CLUSTER: dict[str, Any] = {
    "node_cidr": "192.168.1.0/24",
    "cluster_api_addr": "192.168.1.145",
    "cluster_dns_gateway_addr": "192.168.1.146",
    "cluster_gateway_addr": "192.168.1.147",
    "cloudflare_gateway_addr": "192.168.1.148",
    "repository_name": "example/home-ops",
    "cloudflare_domain": "example.com",
}

SCHEMATIC = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"


def node(index: int = 0, **overrides: Any) -> dict[str, Any]:
    entry = {
        "name": f"k8s-{index}",
        "address": f"192.168.1.{10 + index}",
        "controller": True,
        "disk": "/dev/sda",
        "mac_addr": f"00:00:5e:00:53:{10 + index:02x}",
        "schematic_id": SCHEMATIC,
    }
    entry.update(overrides)
    return entry


def dump(data: Any) -> str:
    stream = io.StringIO()
    yaml = YAML()
    yaml.dump(data, stream)
    return stream.getvalue()


def write(
    tmp_path: Path, cluster: Any = None, nodes: Any = None, raw_cluster: str | None = None
) -> tuple[Path, Path]:
    cluster_path, nodes_path = tmp_path / "cluster.yaml", tmp_path / "nodes.yaml"
    cluster_path.write_text(raw_cluster if raw_cluster is not None else dump(cluster or VALID_CLUSTER))
    nodes_path.write_text(dump(nodes if nodes is not None else {"nodes": [node()]}))
    return cluster_path, nodes_path


def errors_of(
    tmp_path: Path, cluster: Any = None, nodes: Any = None, raw_cluster: str | None = None
) -> list[str]:
    paths = write(tmp_path, cluster, nodes, raw_cluster)
    with pytest.raises(UserError) as raised:
        load_config(*paths, root=tmp_path)
    return raised.value.lines


def with_cluster(**changes: Any) -> dict[str, Any]:
    data = {**VALID_CLUSTER, **changes}
    return {k: v for k, v in data.items() if v is not None}


LINE = re.compile(r"^(cluster|nodes)\.yaml(:\d+:\d+)?: [\w\[\].]*: .+")


def test_bundled_example_is_valid() -> None:
    config = load_config(EXAMPLE_INPUTS / "cluster.yaml", EXAMPLE_INPUTS / "nodes.yaml", EXAMPLE_INPUTS)
    assert config.cluster["node_cidr"] == "192.168.1.0/24"
    assert config.nodes[0]["name"] == "k8s-0"


def test_defaults_are_applied_in_one_place(tmp_path: Path) -> None:
    config = load_config(*write(tmp_path), root=tmp_path)
    assert config.cluster["node_default_gateway"] == "192.168.1.1"
    for key in (
        "cluster_pod_cidr",
        "cluster_svc_cidr",
        "node_dns_servers",
        "node_ntp_servers",
        "repository_branch",
    ):
        assert config.cluster[key] == CLUSTER_DEFAULTS[key]
    assert config.cluster["cilium_loadbalancer_mode"] == "dsr"
    assert config.nodes[0]["mtu"] == 1500
    assert config.nodes[0]["kernel_modules"] == []
    data = config.template_data()
    assert data["spegel_enabled"] is False
    assert data["cilium_bgp_enabled"] is False
    assert [n["name"] for n in data["controllers"]] == ["k8s-0"]


def test_derived_values(tmp_path: Path) -> None:
    cluster = with_cluster(
        cilium_bgp_router_addr="192.168.1.1", cilium_bgp_router_asn=64513, cilium_bgp_node_asn="64514"
    )
    nodes = {"nodes": [node(0), node(1, controller=False)]}
    config = load_config(*write(tmp_path, cluster, nodes), root=tmp_path)
    assert config.derived["spegel_enabled"] is True
    assert config.derived["cilium_bgp_enabled"] is True
    assert config.cluster["cilium_bgp_node_asn"] == 64514
    assert [n["name"] for n in config.derived["workers"]] == ["k8s-1"]


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"node_cidr": "192.168.1.5/24"}, "node_cidr", "host bits set — use 192.168.1.0/24"),
        ({"node_cidr": "192.168.1.0/33"}, "node_cidr", "invalid prefix length"),
        ({"node_cidr": "not-a-network"}, "node_cidr", "is not a CIDR"),
        ({"cluster_pod_cidr": "10.42.0.1/16"}, "cluster_pod_cidr", "use 10.42.0.0/16"),
        ({"cluster_pod_cidr": "192.168.0.0/16"}, "cluster_pod_cidr", "overlaps node_cidr"),
        ({"cluster_svc_cidr": "10.42.128.0/17"}, "cluster_svc_cidr", "overlaps cluster_pod_cidr"),
        ({"cluster_api_addr": "10.0.0.1"}, "cluster_api_addr", "outside node_cidr"),
        ({"cluster_api_addr": "192.168.1.300"}, "cluster_api_addr", "not an IPv4 address"),
        ({"cluster_gateway_addr": "10.9.9.9"}, "cluster_gateway_addr", "allowed only with BGP"),
        (
            {"cluster_gateway_addr": "192.168.1.145"},
            "cluster_gateway_addr",
            "already used by cluster_api_addr",
        ),
        ({"node_default_gateway": "192.168.1.145"}, "node_default_gateway", "already used"),
        ({"cluster_api_addr": "192.168.1.255"}, "cluster_api_addr", "broadcast"),
        ({"node_vlan_tag": 4095}, "node_vlan_tag", "from 1 to 4094"),
        ({"node_vlan_tag": 0}, "node_vlan_tag", "from 1 to 4094"),
        ({"node_dns_servers": ["1.1.1.1", "dns.example"]}, "node_dns_servers", "item 2"),
        ({"node_ntp_servers": "time.example.com"}, "node_ntp_servers", "must be a list"),
        (
            {"cluster_api_tls_sans": ["bad_host!"]},
            "cluster_api_tls_sans",
            "neither an IPv4 address nor a host",
        ),
        ({"repository_name": "just-a-name"}, "repository_name", "expected owner/repo (GitHub)"),
        ({"repository_visibility": "internal"}, "repository_visibility", "public, private"),
        ({"cloudflare_domain": "localhost"}, "cloudflare_domain", "domain name"),
        ({"cloudflare_domain": "Example.COM"}, "cloudflare_domain", "domain name"),
        ({"cilium_loadbalancer_mode": "ipvs"}, "cilium_loadbalancer_mode", "dsr, snat"),
        ({"cilium_bgp_router_addr": "192.168.1.1"}, "cilium_bgp_router_addr", "BGP needs all of"),
        (
            {"cilium_bgp_router_addr": "192.168.1.1", "cilium_bgp_router_asn": 0, "cilium_bgp_node_asn": 1},
            "cilium_bgp_router_asn",
            "from 1 to 4294967295",
        ),
        (
            {
                "cilium_bgp_router_addr": "192.168.1.1",
                "cilium_bgp_router_asn": 1,
                "cilium_bgp_node_asn": 4294967296,
            },
            "cilium_bgp_node_asn",
            "from 1 to 4294967295",
        ),
        ({"node_cidrr": "x"}, "node_cidrr", "unknown key — did you mean node_cidr?"),
        ({"cloudflare_domain": None}, "cloudflare_domain", "required key is missing"),
    ],
)
def test_cluster_constraints(tmp_path: Path, changes: dict[str, Any], key: str, message: str) -> None:
    lines = errors_of(tmp_path, with_cluster(**changes))
    matching = [line for line in lines if f": {key}: " in line and message in line]
    assert matching, lines
    assert all(LINE.match(line) for line in lines), lines


def test_gateways_may_lie_outside_node_cidr_with_bgp(tmp_path: Path) -> None:
    cluster = with_cluster(
        cluster_gateway_addr="10.99.0.1",
        cloudflare_gateway_addr="10.99.0.2",
        cluster_dns_gateway_addr="10.99.0.3",
        cilium_bgp_router_addr="192.168.1.1",
        cilium_bgp_router_asn=64513,
        cilium_bgp_node_asn=64514,
    )
    config = load_config(*write(tmp_path, cluster), root=tmp_path)
    assert config.derived["cilium_bgp_enabled"]


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"name": "K8S_0"}, "nodes[0].name", "DNS label"),
        ({"name": "controller"}, "nodes[0].name", "reserved"),
        ({"name": "global"}, "nodes[0].name", "reserved"),
        ({"address": "10.1.1.1"}, "nodes[0].address", "outside node_cidr"),
        ({"address": "192.168.1.145"}, "nodes[0].address", "already used by cluster_api_addr"),
        ({"mac_addr": "00:00:5E:00:53:10"}, "nodes[0].mac_addr", "use 00:00:5e:00:53:10"),
        ({"mac_addr": "00-00-5e-00-53-10"}, "nodes[0].mac_addr", "use 00:00:5e:00:53:10"),
        ({"schematic_id": "abc"}, "nodes[0].schematic_id", "64 lowercase hex"),
        ({"mtu": 1400}, "nodes[0].mtu", "from 1450 to 9000"),
        ({"mtu": 9001}, "nodes[0].mtu", "from 1450 to 9000"),
        ({"controller": "yes"}, "nodes[0].controller", "true or false"),
        ({"secureboot": 1}, "nodes[0].secureboot", "true or false"),
        ({"kernel_modules": "nvidia"}, "nodes[0].kernel_modules", "must be a list"),
        ({"disk": ""}, "nodes[0].disk", "required key is missing"),
        ({"adress": "192.168.1.20"}, "nodes[0].adress", "did you mean address?"),
        ({"controller": False}, "nodes", "at least one node must have controller: true"),
    ],
)
def test_node_constraints(tmp_path: Path, changes: dict[str, Any], key: str, message: str) -> None:
    lines = errors_of(tmp_path, nodes={"nodes": [node(**changes)]})
    assert any(f": {key}: " in line and message in line for line in lines), lines


def test_duplicate_names_and_macs(tmp_path: Path) -> None:
    nodes = {"nodes": [node(0), node(1, name="k8s-0", mac_addr="00:00:5e:00:53:0a")]}
    lines = errors_of(tmp_path, nodes=nodes)
    assert any("nodes[1].name: 'k8s-0' is already used by nodes[0]" in line for line in lines), lines
    assert any("nodes[1].mac_addr:" in line and "already used by nodes[0]" in line for line in lines), lines


def test_positions_point_at_the_offending_value(tmp_path: Path) -> None:
    raw = "node_cidr: 192.168.1.0/24\ncluster_api_addr: 10.0.0.1\n"
    lines = errors_of(tmp_path, raw_cluster=raw)
    assert "cluster.yaml:2:19: cluster_api_addr: 10.0.0.1 is outside node_cidr 192.168.1.0/24" in lines


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    cluster = with_cluster(node_cidr="192.168.1.1/24", node_vlan_tag=9999, bogus=1)
    nodes = {"nodes": [node(mtu=1), node(1, schematic_id="x")]}
    lines = errors_of(tmp_path, cluster, nodes)
    keys = {line.split(": ")[1] for line in lines}
    assert {"node_cidr", "node_vlan_tag", "bogus", "nodes[0].mtu", "nodes[1].schematic_id"} <= keys


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "file is empty"),
        ("# only a comment\n", "file is empty"),
        ("- a\n- b\n", "expected a mapping of settings, found a list"),
        ("node_cidr: [unclosed\n", "invalid YAML"),
        ("a: 1\n---\nb: 2\n", "exactly one"),
        ("key: value\n  bad indent: x\n", "invalid YAML"),
    ],
)
def test_malformed_files_get_one_line(tmp_path: Path, raw: str, expected: str) -> None:
    lines = errors_of(tmp_path, raw_cluster=raw)
    assert len(lines) == 1
    assert lines[0].startswith("cluster.yaml")
    assert expected in lines[0]


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UserError) as raised:
        load_config(tmp_path / "cluster.yaml", tmp_path / "nodes.yaml", root=tmp_path)
    assert raised.value.lines == [
        "cluster.yaml not found — run `inv init` or copy it from the bundled example",
        "nodes.yaml not found — run `inv init` or copy it from the bundled example",
    ]


def test_nodes_file_shape(tmp_path: Path) -> None:
    assert any("must be a non-empty list" in line for line in errors_of(tmp_path, nodes={"nodes": []}))
    assert any("expected a mapping" in line for line in errors_of(tmp_path, nodes={"nodes": ["k8s-0"]}))
    assert any("nodes: required key is missing" in line for line in errors_of(tmp_path, nodes={"node": []}))


# --------------------------------------------------------------------------- property tests

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.text(max_size=20),
    st.sampled_from(["192.168.1.0/24", "10.0.0.1", "example.com", "/dev/sda", "dsr", SCHEMATIC]),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=st.dictionaries(st.sampled_from([*sorted(CLUSTER_DEFAULTS), "node_cidr", "x"]), yaml_values))
def test_random_cluster_values_never_crash(tmp_path: Path, overrides: dict[str, Any]) -> None:
    try:
        load_config(*write(tmp_path, {**VALID_CLUSTER, **overrides}), root=tmp_path)
    except UserError as error:
        assert error.lines and all(line.strip() for line in error.lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry=st.dictionaries(st.sampled_from([*node().keys(), "mtu", "kernel_modules", "zzz"]), yaml_values))
def test_random_nodes_never_crash(tmp_path: Path, entry: dict[str, Any]) -> None:
    try:
        load_config(*write(tmp_path, nodes={"nodes": [entry]}), root=tmp_path)
    except UserError as error:
        assert error.lines


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("ab:- \n[]{}'\"#&*!|>%@`,?0.1/\t")), max_size=60))
def test_random_yaml_text_never_crashes(tmp_path: Path, text: str) -> None:
    try:
        load_config(*write(tmp_path, raw_cluster=text), root=tmp_path)
    except UserError as error:
        assert error.lines


# --------------------------------------------------------------------------- the model and its docs


def test_the_model_is_frozen(tmp_path: Path) -> None:
    config = load_config(*write(tmp_path), root=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.settings.node_cidr = "10.0.0.0/8"  # type: ignore[misc]
    assert config.settings.node_dns_servers == ("1.1.1.1", "1.0.0.1")
    assert config.node_settings[0].mtu == 1500
