"""Network arithmetic of the configuration: host counts, derived addresses, the sizes to suggest.

Pure functions over :mod:`ipaddress` values, shared by the checks (is ``node_cidr`` big
enough, which addresses are taken) and the model (the default gateway when none is set).
"""

from __future__ import annotations

import math

from tasks.lib.config.constraints import IPv4Addr, IPv4Net

#: Addresses taken from a network by the templates (``| nthhost(N)``) or by Kubernetes:
#: (key, host index, who takes it). tests/test_config_hostile.py checks the templates against it.
RESERVED_HOSTS: tuple[tuple[str, int, str], ...] = (
    ("cluster_svc_cidr", 1, "the kubernetes API service"),
    ("cluster_svc_cidr", 10, "CoreDNS"),
)
#: Kubernetes refuses a larger IPv4 service network.
MAX_SVC_PREFIX_BITS = 20
#: Each node's pod range (kube-controller-manager's --node-cidr-mask-size, Cilium's
#: "kubernetes" IPAM).
NODE_POD_PREFIX = 24


def first_host(network: IPv4Net) -> IPv4Addr:
    """The first usable address of ``network``: the default gateway when none is written."""
    return next(iter(network.hosts()))


def usable_hosts(network: IPv4Net) -> int:
    """Addresses a host may take: all but the network and broadcast address (a /31 and a
    /32 have neither)."""
    return network.num_addresses - 2 if network.prefixlen <= 30 else network.num_addresses


def is_network_or_broadcast(address: IPv4Addr, network: IPv4Net) -> bool:
    return network.prefixlen <= 30 and address in (network.network_address, network.broadcast_address)


def prefix_for_hosts(count: int) -> int:
    """The longest prefix whose network holds ``count`` usable hosts (so also the host
    numbered ``count``, as ``nthhost`` counts)."""
    return 32 - math.ceil(math.log2(count + 2))


def pod_prefix_for(node_count: int) -> int:
    """The longest pod network prefix with a /:data:`NODE_POD_PREFIX` for each of ``node_count`` nodes."""
    return NODE_POD_PREFIX - math.ceil(math.log2(node_count))
