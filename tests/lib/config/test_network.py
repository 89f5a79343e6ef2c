"""Network arithmetic of the configuration (tasks/lib/config/network.py)."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from tasks.lib.config import network

net = ipaddress.IPv4Network


def test_first_host_is_the_address_after_the_network() -> None:
    assert str(network.first_host(net("192.168.1.0/24"))) == "192.168.1.1"
    assert str(network.first_host(net("10.0.0.0/31"))) == "10.0.0.0"


def test_usable_hosts_leave_out_network_and_broadcast_except_point_to_point() -> None:
    assert network.usable_hosts(net("192.168.1.0/24")) == 254
    assert network.usable_hosts(net("192.168.1.0/30")) == 2
    assert network.usable_hosts(net("192.168.1.0/31")) == 2
    assert network.usable_hosts(net("192.168.1.7/32")) == 1


def test_network_and_broadcast_addresses() -> None:
    subnet = net("192.168.1.0/24")
    assert network.is_network_or_broadcast(ipaddress.IPv4Address("192.168.1.0"), subnet)
    assert network.is_network_or_broadcast(ipaddress.IPv4Address("192.168.1.255"), subnet)
    assert not network.is_network_or_broadcast(ipaddress.IPv4Address("192.168.1.1"), subnet)
    assert not network.is_network_or_broadcast(ipaddress.IPv4Address("10.0.0.0"), net("10.0.0.0/31"))


@given(count=st.integers(1, 2**24))
def test_prefix_for_hosts_is_the_smallest_network_that_fits(count: int) -> None:
    prefix = network.prefix_for_hosts(count)
    assert network.usable_hosts(net(f"10.0.0.0/{prefix}")) >= count
    if prefix < 30:  # one bit longer no longer fits
        assert network.usable_hosts(net(f"10.0.0.0/{prefix + 1}")) < count


@given(nodes=st.integers(1, 256))
def test_pod_prefix_holds_a_node_range_for_every_node(nodes: int) -> None:
    prefix = network.pod_prefix_for(nodes)
    ranges = 2 ** (network.NODE_POD_PREFIX - prefix)
    assert ranges >= nodes > ranges // 2
