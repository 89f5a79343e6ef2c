"""Validating ``cluster.yaml`` and ``nodes.yaml`` against the model, and loading them.

:func:`validate` collects *every* problem of the pair of files and reports each as a
:class:`~tasks.lib.problems.ConfigProblem` (``FILE:LINE:COLUMN: key: message``, with a
suggested fix where one is obvious): unknown and missing keys, each value against its
:class:`~tasks.lib.config.constraints.Constraint`, then the rules that tie keys together
(:data:`~tasks.lib.config.schema.RULES`: networks, addresses, BGP, nodes).
:func:`load_config` reads, validates and completes the configuration.

Pure Python: nothing here runs a command, so it is tested without Invoke or any tool.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.lib.config.blame import origins
from tasks.lib.config.constraints import MAX_STRING, IPv4Addr, IPv4Net, is_set, parse_address, shown
from tasks.lib.config.document import Document, key_position, read_documents
from tasks.lib.config.network import (
    MAX_SVC_PREFIX_BITS,
    NODE_POD_PREFIX,
    RESERVED_HOSTS,
    first_host,
    is_network_or_broadcast,
    pod_prefix_for,
    prefix_for_hosts,
    usable_hosts,
)
from tasks.lib.config.schema import (
    BGP_KEYS,
    CLUSTER_DEFAULTS,
    CLUSTER_REQUIRED,
    CLUSTER_SPECS,
    GATEWAY_KEYS,
    NODE_REQUIRED,
    NODE_SPECS,
    RESERVED_NODE_NAMES,
    ClusterConfig,
    Spec,
    cluster_settings,
    default_ingress,
    node_settings,
)
from tasks.lib.errors import UserError
from tasks.lib.gitremote import is_short_form, known_hosts_problem, parse_repository
from tasks.lib.problems import ConfigProblem

#: More nodes than this is the wrong file (and would make the checks slow).
MAX_NODES = 256

# --------------------------------------------------------------------------- per-key checks


def too_long(value: Any, limit: int = MAX_STRING) -> str | None:
    strings = (
        [value]
        if isinstance(value, str)
        else [v for v in value if isinstance(v, str)]
        if isinstance(value, list)
        else []
    )
    longest = max((len(s) for s in strings), default=0)
    if longest > limit:
        return f"a value of {longest} characters — at most {limit}"
    return None


def check_value(spec: Spec, value: Any) -> str | None:
    return too_long(value, spec.constraint.max_length) or spec.constraint(value)


def unknown_key_message(key: Any, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(str(key)[:MAX_STRING], sorted(known), n=1, cutoff=0.6)
    hint = f" — did you mean {close[0]}?" if close else ""
    return f"unknown key{hint}"


def key_name(key: Any) -> str:
    text = str(key)
    return text if len(text) <= 60 else text[:57] + "…"


def check_mapping(
    doc: Document, node: Any, model_specs: dict[str, Spec], required_keys: Sequence[str], prefix: str = ""
) -> Iterator[ConfigProblem]:
    """Unknown keys, missing required keys and per-key checks of one mapping."""
    for key in node:
        name = f"{prefix}{key_name(key)}"
        if key not in model_specs:
            line, column = key_position(node, key)
            yield ConfigProblem(
                doc.label, line, column, name, unknown_key_message(key, frozenset(model_specs))
            )
        elif is_set(node[key]) and (message := check_value(model_specs[key], node[key])) is not None:
            yield doc.problem(node, key, name, message)
    for key in required_keys:
        if not is_set(node.get(key)):
            yield doc.problem(node, None, f"{prefix}{key}", "required key is missing")


# --------------------------------------------------------------------------- cross-key checks


@dataclass
class Located:
    """A value with the document position it came from, for cross-key messages."""

    value: Any
    doc: Document
    node: Any
    key: str | int
    name: str

    def problem(self, message: str) -> ConfigProblem:
        return self.doc.problem(self.node, self.key, self.name, message)


def setting_value(c: dict[str, Any], key: str) -> Any:
    """The typed value of ``key`` in cluster.yaml (its default when unset), or None when it
    is invalid (its own check reports that)."""
    value = c.get(key)
    if not is_set(value):
        return CLUSTER_DEFAULTS.get(key)
    spec = CLUSTER_SPECS[key]
    return spec.constraint.convert(value) if check_value(spec, value) is None else None


def valid_network(c: dict[str, Any], key: str) -> IPv4Net | None:
    value = setting_value(c, key)
    return None if value is None else IPv4Net(value)


def network_checks(cluster: Document, node_count: int) -> Iterator[ConfigProblem]:
    """Overlaps, and networks too small for what the templates and Kubernetes take."""
    c = cluster.data
    networks = {key: valid_network(c, key) for key in ("node_cidr", "cluster_pod_cidr", "cluster_svc_cidr")}
    keys = list(networks)
    for i, first in enumerate(keys):
        for second in keys[i + 1 :]:
            a, b = networks[first], networks[second]
            if a is None or b is None or not a.overlaps(b):
                continue
            at, other, mine, theirs = (second, first, b, a) if second in c else (first, second, a, b)
            yield cluster.problem(c, at if at in c else None, at, f"{mine} overlaps {other} ({theirs})")

    def where(key: str) -> str | None:
        return key if key in c else None

    svc = networks["cluster_svc_cidr"]
    if svc is not None:
        if svc.prefixlen < 32 - MAX_SVC_PREFIX_BITS:
            yield cluster.problem(
                c,
                where("cluster_svc_cidr"),
                "cluster_svc_cidr",
                f"{svc} is larger than Kubernetes allows — use a /{32 - MAX_SVC_PREFIX_BITS} or smaller",
            )
        for key, index, who in RESERVED_HOSTS:
            if key == "cluster_svc_cidr" and index >= svc.num_addresses:
                yield cluster.problem(
                    c,
                    where(key),
                    key,
                    f"{svc} has {svc.num_addresses} addresses, but {who} takes host {index} of it "
                    f"— use a /{prefix_for_hosts(index)} or larger",
                )
    pods = networks["cluster_pod_cidr"]
    if pods is not None and node_count:
        needed = pod_prefix_for(node_count)
        if pods.prefixlen > needed:
            yield cluster.problem(
                c,
                where("cluster_pod_cidr"),
                "cluster_pod_cidr",
                f"{pods} is too small: each node takes a /{NODE_POD_PREFIX} of it, so {node_count} "
                f"node{'s' * (node_count != 1)} need a /{needed} or larger",
            )


def node_cidr_capacity(cluster: Document, node_count: int, bgp: bool) -> Iterator[ConfigProblem]:
    c = cluster.data
    node_cidr = valid_network(c, "node_cidr")
    if node_cidr is None:
        return
    balanced = 0 if bgp else len([key for key in GATEWAY_KEYS if is_set(c.get(key))])
    needed = node_count + 2 + balanced
    if usable_hosts(node_cidr) >= needed:
        return
    what = "the API address, the default gateway" + (
        f" and {balanced} load balancer addresses" * bool(balanced)
    )
    yield cluster.problem(
        c,
        "node_cidr",
        "node_cidr",
        f"{node_cidr} has {usable_hosts(node_cidr)} host addresses, but {needed} are needed "
        f"({node_count} node{'s' * (node_count != 1)}, {what}) — use a /{prefix_for_hosts(needed)} or larger",
    )


def cross_checks(cluster: Document, nodes: Document, node_list: list[Any]) -> Iterator[ConfigProblem]:
    c = cluster.data
    entries = [e for e in node_list if isinstance(e, dict)]
    yield from network_checks(cluster, len(entries))

    bgp_set = [key for key in BGP_KEYS if is_set(c.get(key))]
    if bgp_set and len(bgp_set) != len(BGP_KEYS):
        missing = [key for key in BGP_KEYS if key not in bgp_set]
        yield cluster.problem(
            c,
            bgp_set[0],
            bgp_set[0],
            f"BGP needs all of {', '.join(BGP_KEYS)} — missing {', '.join(missing)}",
        )
    bgp = len(bgp_set) == len(BGP_KEYS)
    yield from node_cidr_capacity(cluster, len(entries), bgp)
    yield from address_checks(cluster, nodes, node_list, bgp)
    yield from node_checks(nodes, node_list, default_schematic=is_set(c.get("node_schematic_id")))
    yield from ingress_checks(cluster)
    yield from repository_checks(cluster)


def ingress_checks(cluster: Document) -> Iterator[ConfigProblem]:
    """Cloudflare, the ingress mode and the external gateway agree."""
    c = cluster.data
    dns = setting_value(c, "dns_provider")
    if dns is None:
        return  # invalid: its own check says so
    ingress = setting_value(c, "ingress_mode") if is_set(c.get("ingress_mode")) else default_ingress(dns)
    if ingress is None:
        return
    if ingress != "none" and dns != "cloudflare":
        yield cluster.problem(
            c,
            "ingress_mode",
            "ingress_mode",
            f"{ingress} needs dns_provider: cloudflare — use none for a cluster reached only from the LAN",
        )
    if ingress != "none" and not is_set(c.get("cloudflare_gateway_addr")):
        yield cluster.problem(
            c,
            None,
            "cloudflare_gateway_addr",
            f"required key is missing: the external gateway's address (ingress_mode is {ingress}) "
            "— or set ingress_mode: none",
        )
    if ingress == "none" and is_set(c.get("cloudflare_gateway_addr")):
        yield unused(cluster, "cloudflare_gateway_addr", "ingress_mode is none: there is no external gateway")
    if dns == "none" and is_set(c.get("cloudflare_token")):
        yield unused(cluster, "cloudflare_token", "dns_provider is none")


def unused(doc: Document, key: str, why: str) -> ConfigProblem:
    return doc.problem(doc.data, key, key, f"is not used ({why}) — remove it")


def repository_checks(cluster: Document) -> Iterator[ConfigProblem]:
    """The repository URL, its visibility and the ssh host keys agree."""
    c = cluster.data
    name = setting_value(c, "repository_name")
    visibility = setting_value(c, "repository_visibility")
    own = setting_value(c, "repository_known_hosts")
    if name is None or visibility is None or own is None:
        return
    url = parse_repository(name, visibility == "private")
    if not is_short_form(name) and is_set(c.get("repository_visibility")):
        if visibility == "private" and not url.ssh:
            yield cluster.problem(
                c,
                "repository_visibility",
                "repository_visibility",
                f"private needs the ssh:// URL of the repository: Flux clones {url.scheme} URLs without "
                "credentials (the deploy key is for ssh)",
            )
        elif visibility == "public" and url.ssh:
            yield cluster.problem(
                c,
                "repository_visibility",
                "repository_visibility",
                "public does not apply to an ssh:// URL (cloned with the deploy key) — remove it, "
                "or use the https:// URL",
            )
    if url.ssh:
        if (problem := known_hosts_problem(url, own)) is not None:
            key = "repository_known_hosts" if own else "repository_name"
            yield cluster.problem(c, key, key, problem)
    elif own:
        yield unused(cluster, "repository_known_hosts", f"Flux clones the repository over {url.scheme}")


def address_checks(
    cluster: Document, nodes: Document, node_list: list[Any], bgp: bool
) -> Iterator[ConfigProblem]:
    """Every address lies where it must and is used once, counting the addresses the
    configuration takes without naming them (the default gateway, the services' own)."""
    c = cluster.data
    node_cidr = valid_network(c, "node_cidr")
    addresses = written_addresses(cluster, nodes, node_list)
    if node_cidr is not None:
        for item in addresses:
            if item.key == "cilium_bgp_router_addr":
                continue  # the router may sit on any network the nodes reach
            may_be_outside = item.key in GATEWAY_KEYS and bgp
            if item.value not in node_cidr and not may_be_outside:
                hint = " (allowed only with BGP)" if item.key in GATEWAY_KEYS else ""
                yield item.problem(f"{item.value} is outside node_cidr {node_cidr}{hint}")
            elif item.value in node_cidr and is_network_or_broadcast(item.value, node_cidr):
                yield item.problem(f"{item.value} is the network or broadcast address of {node_cidr}")
    taken = derived_addresses(c, node_cidr)
    for key, what in (("cluster_pod_cidr", "the pods' addresses"), ("cluster_svc_cidr", "the services'")):
        network = valid_network(c, key)
        for item in addresses:
            inside = network is not None and item.value in network
            if inside and item.value not in taken and not (node_cidr and item.value in node_cidr):
                yield item.problem(f"{item.value} is inside {key} {network} ({what})")

    seen: dict[IPv4Addr, Located] = {}
    for item in addresses:
        if item.value in taken and not (item.key == "cilium_bgp_router_addr" and taken[item.value][1]):
            yield item.problem(f"{item.value} is {taken[item.value][0]}")
        elif item.value in seen and not router_on_gateway(item, seen[item.value]):
            yield item.problem(f"{item.value} is already used by {seen[item.value].name}")
        else:
            seen.setdefault(item.value, item)


def written_addresses(cluster: Document, nodes: Document, node_list: list[Any]) -> list[Located]:
    c = cluster.data
    addresses: list[Located] = []
    keys = ("cluster_api_addr", *GATEWAY_KEYS, "node_default_gateway", "cilium_bgp_router_addr")
    for key in keys:
        if is_set(c.get(key)) and (address := parse_address(c[key])) is not None:
            addresses.append(Located(address, cluster, c, key, key))
    for index, entry in enumerate(node_list):
        if isinstance(entry, dict) and (address := parse_address(entry.get("address"))) is not None:
            addresses.append(Located(address, nodes, entry, "address", f"nodes[{index}].address"))
    return addresses


def derived_addresses(c: dict[str, Any], node_cidr: IPv4Net | None) -> dict[IPv4Addr, tuple[str, bool]]:
    """Addresses taken without a key naming them: address -> (what takes it, whether it is
    the default gateway, where the BGP router may sit)."""
    taken: dict[IPv4Addr, tuple[str, bool]] = {}
    svc = valid_network(c, "cluster_svc_cidr")
    if svc is not None:
        for key, index, who in RESERVED_HOSTS:
            if key == "cluster_svc_cidr" and index < svc.num_addresses:
                taken[svc[index]] = (f"taken by {who}: host {index} of cluster_svc_cidr", False)
    if node_cidr is not None and not is_set(c.get("node_default_gateway")):
        gateway = first_host(node_cidr)
        taken[gateway] = (
            "the default gateway, the first host of node_cidr — use another address, or set "
            "node_default_gateway to your router's",
            True,
        )
    return taken


def router_on_gateway(item: Located, first: Located) -> bool:
    """The BGP router is usually the nodes' default gateway too."""
    return {item.key, first.key} == {"cilium_bgp_router_addr", "node_default_gateway"}


def node_checks(nodes: Document, node_list: list[Any], default_schematic: bool) -> Iterator[ConfigProblem]:
    for attribute in ("name", "mac_addr"):
        first_use: dict[str, str] = {}
        for index, entry in enumerate(node_list):
            if not isinstance(entry, dict) or not isinstance(entry.get(attribute), str):
                continue
            value = entry[attribute]
            if value in first_use:
                yield nodes.problem(
                    entry,
                    attribute,
                    f"nodes[{index}].{attribute}",
                    f"{shown(value)} is already used by {first_use[value]}",
                )
            else:
                first_use[value] = f"nodes[{index}]"

    for index, entry in enumerate(node_list):
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and entry["name"] in RESERVED_NODE_NAMES
        ):
            yield nodes.problem(
                entry,
                "name",
                f"nodes[{index}].name",
                f"{entry['name']!r} is reserved by talhelper — pick another name",
            )

    for index, entry in enumerate(node_list):
        if isinstance(entry, dict) and not default_schematic and not is_set(entry.get("schematic_id")):
            yield nodes.problem(
                entry,
                None,
                f"nodes[{index}].schematic_id",
                "required key is missing — set it here, or node_schematic_id in cluster.yaml for every node",
            )

    entries = [e for e in node_list if isinstance(e, dict)]
    if entries and not any(e.get("controller") is True for e in entries):
        yield nodes.problem(nodes.data, "nodes", "nodes", "at least one node must have controller: true")


# --------------------------------------------------------------------------- validation


def node_entries(doc: Document) -> Iterator[ConfigProblem]:
    data = doc.data
    if not isinstance(data, dict):
        yield doc.problem(data, None, "", f"expected a mapping with a 'nodes' list, found a {kind(data)}")
        return
    for key in data:
        if key != "nodes":
            line, column = key_position(data, key)
            yield ConfigProblem(
                doc.label, line, column, key_name(key), unknown_key_message(key, frozenset({"nodes"}))
            )
    if "nodes" not in data:
        yield doc.problem(data, None, "nodes", "required key is missing")
        return
    node_list = data["nodes"]
    if not isinstance(node_list, list) or not node_list:
        yield doc.problem(data, "nodes", "nodes", "must be a non-empty list of nodes")
        return
    if len(node_list) > MAX_NODES:
        yield doc.problem(data, "nodes", "nodes", f"has {len(node_list)} nodes — at most {MAX_NODES}")
        return
    for index, entry in enumerate(node_list):
        if not isinstance(entry, dict):
            yield doc.problem(
                node_list, index, f"nodes[{index}]", f"expected a mapping, found a {kind(entry)}"
            )
            continue
        yield from check_mapping(doc, entry, NODE_SPECS, NODE_REQUIRED, f"nodes[{index}].")


def kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    if value is None:
        return "nothing"
    return type(value).__name__ if not isinstance(value, str) else "string"


def validate(cluster: Document, nodes: Document) -> list[ConfigProblem]:
    """Every problem in the pair of files, in file order."""
    problems: list[ConfigProblem] = []
    if isinstance(cluster.data, dict):
        problems += check_mapping(cluster, cluster.data, CLUSTER_SPECS, CLUSTER_REQUIRED)
    else:
        problems.append(
            cluster.problem(
                cluster.data, None, "", f"expected a mapping of settings, found a {kind(cluster.data)}"
            )
        )
    problems += node_entries(nodes)
    if (
        isinstance(cluster.data, dict)
        and isinstance(nodes.data, dict)
        and isinstance(nodes.data.get("nodes"), list)
        and len(nodes.data["nodes"]) <= MAX_NODES
    ):
        problems += cross_checks(cluster, nodes, nodes.data["nodes"])
    return sorted(set(problems), key=lambda p: (p.file, p.line or 0, p.column or 0, p.key, p.message))


# --------------------------------------------------------------------------- loading


def load_config(cluster_path: Path, nodes_path: Path, root: Path | None = None) -> ClusterConfig:
    """Read, validate and complete the configuration, or raise a :class:`UserError` listing
    every problem. Nothing is written."""

    def label(path: Path) -> str:
        return str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)

    files = ((path, label(path)) for path in (cluster_path, nodes_path))
    cluster, nodes = read_documents(files, within=root)
    problems = validate(cluster, nodes)
    if problems:
        raise UserError(*problems)
    settings = cluster_settings(cluster.data)
    return ClusterConfig(
        settings,
        tuple(node_settings(entry, settings) for entry in nodes.data["nodes"]),
        tuple(origins(cluster, nodes)),
    )
