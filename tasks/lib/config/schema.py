"""The configuration model: every key of ``cluster.yaml`` and ``nodes.yaml``, declared once.

:class:`ClusterSettings` and :class:`NodeSettings` are frozen dataclasses; each field names
its type, its default, the :class:`Constraint` its value must meet and a help text. Validation
(:func:`validate`), the template context (:class:`ClusterConfig`) and the reference tables of
``docs/configuration.md`` (:mod:`tasks.lib.config.reference`) are all read from them, so a
key is added, renamed or re-documented in one place.

The keys are the ones users of the Taskfile template already have, so an existing pair of
files works unchanged. Validation collects *every* problem and reports each on one line as
``FILE:LINE:COLUMN: key: message`` (positions come from ruamel.yaml), with a suggested fix
where one is obvious. Nothing a user typed reaches a template unchecked: patterns match the
whole value, free-form strings are held to what they may be, derived addresses are checked
before rendering, and the input itself is bounded (file size, alias expansion, string length).

Pure Python: nothing here runs a command, so it is tested without Invoke or any tool.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from tasks.lib.boundary import inside
from tasks.lib.config.constraints import (
    ASN,
    DNS_LABEL,
    FQDN,
    KERNEL_MODULE,
    MAC,
    MAX_STRING,
    REPOSITORY,
    SCHEMATIC,
    Address,
    Boolean,
    Choice,
    Cidr,
    Constraint,
    Disk,
    GitBranch,
    Host,
    IntRange,
    IPv4Addr,
    IPv4Net,
    ListOf,
    Pattern,
    Token,
    is_set,
    parse_address,
    shown,
)
from tasks.lib.errors import UserError
from tasks.lib.problems import ConfigProblem

# --------------------------------------------------------------------------- input limits

#: A cluster.yaml or nodes.yaml is a few KB; anything this big is the wrong file (or an attack).
MAX_FILE_BYTES = 256 * 1024
#: Values a document may hold once YAML aliases are expanded (stops "billion laughs").
MAX_VALUES = 10_000
#: Nesting depth of a document (the config is at most three levels deep).
MAX_DEPTH = 32
# --------------------------------------------------------------------------- values


def to_template(value: Any) -> Any:
    """A typed value as templates see it: tuples become lists."""
    if isinstance(value, tuple):
        return [to_template(v) for v in value]
    return value


def too_long(value: Any) -> str | None:
    strings = (
        [value]
        if isinstance(value, str)
        else [v for v in value if isinstance(v, str)]
        if isinstance(value, list)
        else []
    )
    longest = max((len(s) for s in strings), default=0)
    if longest > MAX_STRING:
        return f"a value of {longest} characters — at most {MAX_STRING}"
    return None


def check_value(spec: Spec, value: Any) -> str | None:
    return too_long(value) or spec.constraint(value)


# --------------------------------------------------------------------------- the model

REQUIRED: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Spec:
    """What the reference documentation and the validator know of one key."""

    constraint: Constraint
    help: str
    default_doc: str | None  # how the docs show the default; None: "required"


def setting(
    constraint: Constraint, help: str, default: Any = REQUIRED, default_doc: str | None = None
) -> Any:
    """A field of the model: ``default`` omitted means the key is required."""
    if default is REQUIRED:
        return field(metadata={"spec": Spec(constraint, help, None)})
    shown_default = default_doc or ("none" if default is None else f"`{yaml_text(default)}`")
    return field(default=default, metadata={"spec": Spec(constraint, help, shown_default)})


def yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return f"[{', '.join(yaml_text(v) for v in value)}]"
    return str(value)


@dataclass(frozen=True, kw_only=True)
class ClusterSettings:
    """``cluster.yaml``: the network, the addresses, the repository and the domain."""

    node_cidr: str = setting(Cidr(), "Network the nodes live on")
    node_default_gateway: str | None = setting(
        Address(), "Default route of the nodes", None, "first host of `node_cidr`"
    )
    node_dns_servers: tuple[str, ...] = setting(
        ListOf(Address(), 8), "DNS servers of the nodes", ("1.1.1.1", "1.0.0.1")
    )
    node_ntp_servers: tuple[str, ...] = setting(
        ListOf(Host(), 8), "NTP servers of the nodes", ("162.159.200.1", "162.159.200.123")
    )
    node_vlan_tag: int | None = setting(
        IntRange(1, 4094), "VLAN of the node network (untagged if unset)", None
    )
    cluster_api_addr: str = setting(Address(), "Floating VIP of the Kubernetes API, inside `node_cidr`")
    cluster_api_tls_sans: tuple[str, ...] = setting(
        ListOf(Host(), 32), "Extra names/addresses for the API server certificate", ()
    )
    cluster_pod_cidr: str = setting(Cidr(), "Pod network; each node takes a /24 of it", "10.42.0.0/16")
    cluster_svc_cidr: str = setting(
        Cidr(), "Service network (/12 to /28); CoreDNS takes its 10th address", "10.43.0.0/16"
    )
    cluster_dns_gateway_addr: str = setting(
        Address(), "k8s-gateway load balancer: resolves `cloudflare_domain` on the LAN"
    )
    cluster_gateway_addr: str = setting(Address(), "Internal Envoy gateway load balancer")
    cloudflare_gateway_addr: str = setting(Address(), "External Envoy gateway (behind the tunnel)")
    repository_name: str = setting(
        Pattern(REPOSITORY, "owner/repository, e.g. onedr0p/home-ops", "`owner/repo` on GitHub"),
        "GitHub repository Flux syncs from",
    )
    repository_branch: str = setting(GitBranch(), "Branch Flux syncs from", "main")
    repository_visibility: str = setting(
        Choice(("public", "private")), "`private` makes Flux use the deploy key", "public"
    )
    cloudflare_domain: str = setting(
        Pattern(FQDN, "a lowercase domain name such as example.com", "lowercase domain name"),
        "Domain served through Cloudflare",
    )
    cloudflare_token: str | None = setting(
        Token(),
        "Legacy: belongs in `cluster.sops.yaml`; accepted here only while git ignores this file",
        None,
    )
    cilium_loadbalancer_mode: str = setting(
        Choice(("dsr", "snat")), "How Cilium forwards load-balanced traffic", "dsr"
    )
    cilium_bgp_router_addr: str | None = setting(
        Address(), "BGP peer (your router); all three BGP keys or none", None
    )
    cilium_bgp_router_asn: int | None = setting(ASN, "The router's AS number", None)
    cilium_bgp_node_asn: int | None = setting(ASN, "The nodes' AS number", None)


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    """One entry of ``nodes.yaml``'s ``nodes`` list: a machine."""

    name: str = setting(
        Pattern(DNS_LABEL, "a DNS label (lowercase letters, digits and '-', at most 63)", "DNS label"),
        "Host name; unique, not `global`, `controller` or `worker`",
    )
    address: str = setting(Address(), "Static address, inside `node_cidr`, unique")
    controller: bool = setting(Boolean(), "Whether it runs the control plane (at least one must)")
    disk: str = setting(Disk(), "Install disk")
    mac_addr: str = setting(
        Pattern(
            MAC, "a lowercase colon-separated MAC such as aa:bb:cc:dd:ee:ff", "lowercase `aa:bb:cc:dd:ee:ff`"
        ),
        "MAC of the network interface to configure; unique",
    )
    schematic_id: str = setting(
        Pattern(
            SCHEMATIC, "a Talos Image Factory schematic id (64 lowercase hex)", "64 lowercase hex digits"
        ),
        "Talos Image Factory schematic",
    )
    mtu: int = setting(IntRange(1450, 9000), "MTU of the interface", 1500)
    secureboot: bool = setting(Boolean(), "Install the SecureBoot image", False)
    encrypt_disk: bool = setting(Boolean(), "Encrypt the system disk with the TPM", False)
    kernel_modules: tuple[str, ...] = setting(
        ListOf(
            Pattern(KERNEL_MODULE, "a kernel module name (letters, digits, '_' and '-')", "module name"), 32
        ),
        "Extra kernel modules to load",
        (),
    )


def specs(model: type) -> dict[str, Spec]:
    """Every key of ``model`` with its spec, in declaration order."""
    return {f.name: f.metadata["spec"] for f in dataclasses.fields(model) if "spec" in f.metadata}


def defaults(model: type) -> dict[str, Any]:
    """The default of every optional key, as templates see it (lists, not tuples)."""
    return {
        f.name: to_template(f.default)
        for f in dataclasses.fields(model)
        if "spec" in f.metadata and f.default is not dataclasses.MISSING
    }


def required(model: type) -> tuple[str, ...]:
    return tuple(
        f.name for f in dataclasses.fields(model) if "spec" in f.metadata and f.default is dataclasses.MISSING
    )


CLUSTER_SPECS = specs(ClusterSettings)
NODE_SPECS = specs(NodeSettings)
CLUSTER_DEFAULTS = defaults(ClusterSettings)
NODE_DEFAULTS = defaults(NodeSettings)
CLUSTER_REQUIRED = required(ClusterSettings)
NODE_REQUIRED = required(NodeSettings)
CLUSTER_KEYS = frozenset(CLUSTER_SPECS)
NODE_KEYS = frozenset(NODE_SPECS)

BGP_KEYS = ("cilium_bgp_router_addr", "cilium_bgp_router_asn", "cilium_bgp_node_asn")
#: Addresses that must lie inside node_cidr unless BGP announces them.
GATEWAY_KEYS = ("cluster_dns_gateway_addr", "cluster_gateway_addr", "cloudflare_gateway_addr")
RESERVED_NODE_NAMES = frozenset({"global", "controller", "worker"})
#: Addresses taken from a network by the templates (``| nthhost(N)``) or by Kubernetes:
#: (key, host index, who takes it). tests/test_config.py checks the templates against it.
RESERVED_HOSTS: tuple[tuple[str, int, str], ...] = (
    ("cluster_svc_cidr", 1, "the kubernetes API service"),
    ("cluster_svc_cidr", 10, "CoreDNS"),
)
#: Kubernetes refuses a larger IPv4 service network.
MAX_SVC_PREFIX_BITS = 20
#: Each node's pod range (kube-controller-manager's --node-cidr-mask-size, Cilium's
#: "kubernetes" IPAM).
NODE_POD_PREFIX = 24

#: The rules that tie keys together, for the reference documentation (checked by
#: :func:`cross_checks`).
RULES = (
    "`node_cidr`, `cluster_pod_cidr` and `cluster_svc_cidr` must not overlap.",
    "No address may be used twice (API VIP, each gateway, the default gateway, every node).",
    "The API VIP, the default gateway and every node lie inside `node_cidr` (not its network or "
    "broadcast address), and so do the three load balancer addresses unless BGP is on; "
    "`node_cidr` must be big enough for all of them.",
    "`cluster_pod_cidr` must hold a /24 for every node; `cluster_svc_cidr` must be a /12 to a /28 "
    "(CoreDNS takes its 10th address).",
    "BGP: all three `cilium_bgp_*` keys or none.",
    "Node names and MAC addresses are unique; at least one node has `controller: true`.",
)

# --------------------------------------------------------------------------- loading YAML


@dataclass
class Document:
    """A parsed YAML file that remembers where each key and item came from."""

    path: Path
    label: str  # how messages name the file
    data: Any

    def problem(self, node: Any, key: str | int | None, name: str, message: str) -> ConfigProblem:
        line, column = position(node, key)
        return ConfigProblem(self.label, line, column, name, message)


def position(node: Any, key: str | int | None) -> tuple[int | None, int | None]:
    """1-based (line, column) of ``node[key]`` (its value when it has one, else the key)."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None, None
    try:
        if key is None:
            line, column = lc.line, lc.col
        elif isinstance(key, int):
            line, column = lc.item(key)
        elif key in node:
            line, column = lc.value(key)
        else:
            line, column = lc.line, lc.col
    except (KeyError, IndexError, TypeError, AttributeError):
        return None, None
    return one_based(line, column)


def key_position(node: Any, key: Any) -> tuple[int | None, int | None]:
    try:
        line, column = node.lc.key(key)
    except (KeyError, AttributeError, TypeError):
        return None, None
    return one_based(line, column)


def one_based(line: int | None, column: int | None) -> tuple[int | None, int | None]:
    if line is None or column is None:
        return None, None
    return line + 1, column + 1


def read_bounded(path: Path, label: str, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes. Opened without blocking
    and checked after opening, so a FIFO cannot hang us and a link to /dev/zero cannot
    fill memory; every refusal is a one-line :class:`UserError`."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UserError(
            f"{label}: file not found — run `inv init` or copy it from the bundled example"
        ) from None
    except OSError as error:
        raise UserError(f"{label}: cannot read: {error.strerror or error}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device?)"
            raise UserError(f"{label}: is {kind} — expected a YAML file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit and (chunk := os.read(fd, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise UserError(f"{label}: cannot read: {error.strerror or error}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise UserError(f"{label}: larger than {limit // 1024} KiB — is this the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{label}: not UTF-8 text (byte {error.start + 1})") from None


def read_yaml(path: Path, label: str) -> Document:
    """Parse one YAML file; any problem becomes a one-line :class:`UserError`."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    text = read_bounded(path, label)
    yaml = YAML(typ="rt")
    try:
        documents = list(yaml.load_all(text))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        reason = (error.problem or error.context or "invalid YAML").strip()
        raise UserError(f"{where}: invalid YAML: {shown_text(reason)}") from None
    except (YAMLError, ValueError, TypeError, RecursionError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{label}: invalid YAML: {shown_text(first)}") from None
    documents = [doc for doc in documents if doc is not None]
    if not documents:
        raise UserError(f"{label}: file is empty — expected a mapping of settings")
    if len(documents) > 1:
        raise UserError(f"{label}: holds {len(documents)} YAML documents — expected exactly one")
    if (reason := oversized(documents[0])) is not None:
        raise UserError(f"{label}: {reason}")
    return Document(path, label, documents[0])


def shown_text(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def oversized(data: Any) -> str | None:
    """Why ``data`` is too big to handle (counted as if aliases were expanded, without
    expanding them), or None. Iterative, so deep or self-referencing documents are safe."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return f"holds more than {MAX_VALUES} values (counting YAML aliases) — a config is far smaller"
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value)
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str) and len(value) > MAX_STRING * 8:
            return f"holds a string of {len(value)} characters — a config value is far shorter"
    return None


# --------------------------------------------------------------------------- per-key checks


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


def valid_network(c: dict[str, Any], key: str) -> IPv4Net | None:
    value = c.get(key) if is_set(c.get(key)) else CLUSTER_DEFAULTS.get(key)
    if value is None or check_value(CLUSTER_SPECS[key], value) is not None:
        return None
    return IPv4Net(value)


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
                size = 32 - math.ceil(math.log2(index + 2))
                yield cluster.problem(
                    c,
                    where(key),
                    key,
                    f"{svc} has {svc.num_addresses} addresses, but {who} takes host {index} of it "
                    f"— use a /{size} or larger",
                )
    pods = networks["cluster_pod_cidr"]
    if pods is not None and node_count:
        needed = NODE_POD_PREFIX - math.ceil(math.log2(node_count))
        if pods.prefixlen > needed:
            yield cluster.problem(
                c,
                where("cluster_pod_cidr"),
                "cluster_pod_cidr",
                f"{pods} is too small: each node takes a /{NODE_POD_PREFIX} of it, so {node_count} "
                f"node{'s' * (node_count != 1)} need a /{needed} or larger",
            )


def usable_hosts(network: IPv4Net) -> int:
    return network.num_addresses - 2 if network.prefixlen <= 30 else network.num_addresses


def node_cidr_capacity(cluster: Document, node_count: int, bgp: bool) -> Iterator[ConfigProblem]:
    c = cluster.data
    node_cidr = valid_network(c, "node_cidr")
    if node_cidr is None:
        return
    needed = node_count + 2 + (0 if bgp else len(GATEWAY_KEYS))
    if usable_hosts(node_cidr) >= needed:
        return
    what = "the API address, the default gateway" + ("" if bgp else " and 3 load balancer addresses")
    size = 32 - math.ceil(math.log2(needed + 2))
    yield cluster.problem(
        c,
        "node_cidr",
        "node_cidr",
        f"{node_cidr} has {usable_hosts(node_cidr)} host addresses, but {needed} are needed "
        f"({node_count} node{'s' * (node_count != 1)}, {what}) — use a /{size} or larger",
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
    yield from node_checks(nodes, node_list)


def address_checks(
    cluster: Document, nodes: Document, node_list: list[Any], bgp: bool
) -> Iterator[ConfigProblem]:
    c = cluster.data
    node_cidr = valid_network(c, "node_cidr")
    addresses: list[Located] = []
    for key in ("cluster_api_addr", *GATEWAY_KEYS, "node_default_gateway"):
        if is_set(c.get(key)) and parse_address(c[key]) is not None:
            addresses.append(Located(parse_address(c[key]), cluster, c, key, key))
    for index, entry in enumerate(node_list):
        if isinstance(entry, dict) and parse_address(entry.get("address")) is not None:
            addresses.append(
                Located(parse_address(entry["address"]), nodes, entry, "address", f"nodes[{index}].address")
            )

    if node_cidr is not None:
        for item in addresses:
            may_be_outside = item.key in GATEWAY_KEYS and bgp
            if item.value not in node_cidr and not may_be_outside:
                hint = " (allowed only with BGP)" if item.key in GATEWAY_KEYS else ""
                yield item.problem(f"{item.value} is outside node_cidr {node_cidr}{hint}")
            elif (
                item.value in node_cidr
                and node_cidr.prefixlen <= 30
                and item.value
                in (
                    node_cidr.network_address,
                    node_cidr.broadcast_address,
                )
            ):
                yield item.problem(f"{item.value} is the network or broadcast address of {node_cidr}")

    seen: dict[IPv4Addr, Located] = {}
    for item in addresses:
        if item.value in seen:
            yield item.problem(f"{item.value} is already used by {seen[item.value].name}")
        else:
            seen[item.value] = item


def node_checks(nodes: Document, node_list: list[Any]) -> Iterator[ConfigProblem]:
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

    entries = [e for e in node_list if isinstance(e, dict)]
    if entries and not any(e.get("controller") is True for e in entries):
        yield nodes.problem(nodes.data, "nodes", "nodes", "at least one node must have controller: true")


# --------------------------------------------------------------------------- validation


MAX_NODES = 256


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


# --------------------------------------------------------------------------- the result

Model = TypeVar("Model", ClusterSettings, NodeSettings)


def build(model: type[Model], raw: dict[str, Any], **computed: Any) -> Model:
    """An instance of ``model`` from a validated mapping: set keys converted, defaults kept."""
    model_specs = specs(model)
    values = {key: model_specs[key].constraint.convert(value) for key, value in raw.items() if is_set(value)}
    return model(**{**values, **computed})


def cluster_settings(raw: dict[str, Any]) -> ClusterSettings:
    gateway = raw.get("node_default_gateway")
    if not is_set(gateway):
        gateway = str(next(iter(IPv4Net(str(raw["node_cidr"])).hosts())))
    return build(ClusterSettings, {**raw, "node_default_gateway": gateway})


@dataclass(frozen=True)
class Origin:
    """Where a value the user typed sits: ``FILE:LINE:COL: key``."""

    file: str
    line: int | None
    column: int | None
    key: str
    text: str

    def __str__(self) -> str:
        return str(ConfigProblem(self.file, self.line, self.column, self.key, "")).removesuffix(": ")


def origins(cluster: Document, nodes: Document) -> Iterator[Origin]:
    """Every string-like scalar of the two (valid) documents, with its position."""

    def walk(doc: Document, node: dict[str, Any], prefix: str) -> Iterator[Origin]:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, list):
                for index, item in enumerate(value):
                    line, column = position(value, index)
                    yield Origin(doc.label, line, column, f"{name}[{index}]", str(item))
            elif is_set(value):
                line, column = position(node, key)
                yield Origin(doc.label, line, column, name, str(value))

    yield from walk(cluster, cluster.data, "")
    for index, entry in enumerate(nodes.data["nodes"]):
        yield from walk(nodes, entry, f"nodes[{index}].")


@dataclass(frozen=True)
class ClusterConfig:
    """The validated configuration, defaults applied. ``settings`` and ``node_settings`` are
    the typed model; ``cluster``, ``nodes`` and ``derived`` are what templates see."""

    settings: ClusterSettings
    node_settings: tuple[NodeSettings, ...]
    origins: tuple[Origin, ...] = ()

    @cached_property
    def cluster(self) -> dict[str, Any]:
        return {name: to_template(getattr(self.settings, name)) for name in CLUSTER_SPECS}

    @cached_property
    def nodes(self) -> list[dict[str, Any]]:
        return [
            {name: to_template(getattr(node, name)) for name in NODE_SPECS} for node in self.node_settings
        ]

    @cached_property
    def derived(self) -> dict[str, Any]:
        """Values computed from the config, so templates never repeat the logic."""
        return {
            "cilium_bgp_enabled": all(getattr(self.settings, key) is not None for key in BGP_KEYS),
            "spegel_enabled": len(self.nodes) > 1,
            "controllers": [node for node in self.nodes if node["controller"]],
            "workers": [node for node in self.nodes if not node["controller"]],
        }

    def template_data(self) -> dict[str, Any]:
        return {**self.cluster, "nodes": self.nodes, **self.derived}

    def blame(self, *rendered_lines: str) -> list[Origin]:
        """The config values found in some rendered lines, longest first: where to look
        when a rendered file does not parse. Names keys and positions, never values."""
        return blame(self.origins, rendered_lines)


def explain_rendered_error(config: ClusterConfig, text: str, line: int, first_line: int | None = None) -> str:
    """For a rendered file that does not parse: `` — from FILE:LINE:COL: key`` naming the
    config values on its lines ``first_line``..``line`` (1-based; the YAML error's context and
    problem marks), or on the line before when those hold none; '' when no value is found.
    Keys and positions only: a value (a secret, even) is never repeated."""
    lines = text.splitlines()
    start = max(1, min(first_line or line, line))
    found = blame(config.origins, lines[start - 1 : line]) or blame(
        config.origins, lines[max(0, start - 2) : start - 1]
    )
    return f" — from {', '.join(str(o) for o in found[:3])}" if found else ""


def blame(candidates: Sequence[Origin], rendered_lines: Sequence[str]) -> list[Origin]:
    text = "\n".join(rendered_lines)
    found = [o for o in candidates if len(o.text) >= 2 and o.text in text]
    found.sort(key=lambda o: -len(o.text))
    # A value inside a longer value that was found already adds nothing.
    return [o for i, o in enumerate(found) if not any(o.text in longer.text for longer in found[:i])]


def load_config(cluster_path: Path, nodes_path: Path, root: Path | None = None) -> ClusterConfig:
    """Read, validate and complete the configuration, or raise a :class:`UserError` listing
    every problem. Nothing is written."""

    def label(path: Path) -> str:
        return str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)

    errors: list[str] = []
    documents: list[Document] = []
    for path in (cluster_path, nodes_path):
        try:
            if root is not None:  # a symlink out (to /etc/shadow) would print its lines
                inside(root, path, label(path))
            documents.append(read_yaml(path, label(path)))
        except UserError as error:
            errors += error.lines
    if errors:
        raise UserError(*errors)
    cluster, nodes = documents
    problems = validate(cluster, nodes)
    if problems:
        raise UserError(*problems)
    return ClusterConfig(
        cluster_settings(cluster.data),
        tuple(build(NodeSettings, entry) for entry in nodes.data["nodes"]),
        tuple(origins(cluster, nodes)),
    )
