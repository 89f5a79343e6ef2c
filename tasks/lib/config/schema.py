"""Load and validate ``cluster.yaml`` and ``nodes.yaml``.

The keys are the ones users of the Taskfile template already have, so an existing pair of
files works unchanged. Validation collects *every* problem and reports each on one line as
``FILE:LINE:COLUMN: key: message`` (positions come from ruamel.yaml), with a suggested fix
where one is obvious. Defaults live in :data:`CLUSTER_DEFAULTS` / :data:`NODE_DEFAULTS` and
are applied by :func:`load_config` only, so templates always see a complete config.

Pure Python: nothing here runs a command, so it is tested without Invoke or any tool.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.lib.errors import Problem, UserError

IPv4Net = ipaddress.IPv4Network
IPv4Addr = ipaddress.IPv4Address

CLUSTER_DEFAULTS: dict[str, Any] = {
    "node_dns_servers": ["1.1.1.1", "1.0.0.1"],
    "node_ntp_servers": ["162.159.200.1", "162.159.200.123"],
    "node_default_gateway": None,  # first host of node_cidr, filled in by load_config
    "node_vlan_tag": None,
    "cluster_api_tls_sans": [],
    "cluster_pod_cidr": "10.42.0.0/16",
    "cluster_svc_cidr": "10.43.0.0/16",
    "repository_branch": "main",
    "repository_visibility": "public",
    "cilium_loadbalancer_mode": "dsr",
    "cilium_bgp_router_addr": None,
    "cilium_bgp_router_asn": None,
    "cilium_bgp_node_asn": None,
    "cloudflare_token": None,
}

NODE_DEFAULTS: dict[str, Any] = {
    "mtu": 1500,
    "secureboot": False,
    "encrypt_disk": False,
    "kernel_modules": [],
}

CLUSTER_REQUIRED = (
    "node_cidr",
    "cluster_api_addr",
    "cluster_dns_gateway_addr",
    "cluster_gateway_addr",
    "repository_name",
    "cloudflare_domain",
    "cloudflare_gateway_addr",
)
NODE_REQUIRED = ("name", "address", "controller", "disk", "mac_addr", "schematic_id")

CLUSTER_KEYS = frozenset(CLUSTER_REQUIRED) | CLUSTER_DEFAULTS.keys()
NODE_KEYS = frozenset(NODE_REQUIRED) | NODE_DEFAULTS.keys()

BGP_KEYS = ("cilium_bgp_router_addr", "cilium_bgp_router_asn", "cilium_bgp_node_asn")
#: Addresses that must lie inside node_cidr unless BGP announces them.
GATEWAY_KEYS = ("cluster_dns_gateway_addr", "cluster_gateway_addr", "cloudflare_gateway_addr")
RESERVED_NODE_NAMES = frozenset({"global", "controller", "worker"})

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
FQDN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
SCHEMATIC = re.compile(r"^[0-9a-f]{64}$")
REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
DISK_PATH = re.compile(r"^/dev/\S+$")
ASN_RANGE = (1, 4_294_967_295)


# --------------------------------------------------------------------------- loading YAML


@dataclass
class Document:
    """A parsed YAML file that remembers where each key and item came from."""

    path: Path
    label: str  # how messages name the file
    data: Any

    def problem(self, node: Any, key: str | int | None, name: str, message: str) -> Problem:
        line, column = position(node, key)
        return Problem(self.label, line, column, name, message)


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


def key_position(node: Any, key: str) -> tuple[int | None, int | None]:
    try:
        line, column = node.lc.key(key)
    except (KeyError, AttributeError, TypeError):
        return None, None
    return one_based(line, column)


def one_based(line: int | None, column: int | None) -> tuple[int | None, int | None]:
    if line is None or column is None:
        return None, None
    return line + 1, column + 1


def read_yaml(path: Path, label: str) -> Document:
    """Parse one YAML file; any problem becomes a one-line :class:`UserError`."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if not path.exists():
        raise UserError(f"{label}: file not found — run `inv init` or copy it from the bundled example")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{label}: cannot read: {error}") from None
    yaml = YAML(typ="rt")
    try:
        documents = list(yaml.load_all(text))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        reason = (error.problem or error.context or "invalid YAML").strip()
        raise UserError(f"{where}: invalid YAML: {reason}") from None
    except (YAMLError, ValueError, TypeError, RecursionError) as error:
        raise UserError(
            f"{label}: invalid YAML: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from None
    documents = [doc for doc in documents if doc is not None]
    if not documents:
        raise UserError(f"{label}: file is empty — expected a mapping of settings")
    if len(documents) > 1:
        raise UserError(f"{label}: holds {len(documents)} YAML documents — expected exactly one")
    return Document(path, label, documents[0])


# --------------------------------------------------------------------------- the result


@dataclass
class ClusterConfig:
    """The validated configuration, defaults applied: what templates see."""

    cluster: dict[str, Any]
    nodes: list[dict[str, Any]]
    derived: dict[str, Any] = field(default_factory=dict)

    def template_data(self) -> dict[str, Any]:
        return {**self.cluster, "nodes": self.nodes, **self.derived}


# --------------------------------------------------------------------------- field checks

Check = Callable[[Any], str | None]  # returns an error message, or None when valid


def plain(value: Any) -> Any:
    """ruamel's scalar subclasses (ScalarFloat, CommentedSeq, ...) as plain Python."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def parse_address(value: Any) -> IPv4Addr | None:
    if not isinstance(value, str) or isinstance(value, bool):
        return None
    try:
        return IPv4Addr(value)
    except ValueError:
        return None


def check_address(value: Any) -> str | None:
    if parse_address(value) is None:
        return f"{value!r} is not an IPv4 address"
    return None


def check_cidr(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{value!r} is not a CIDR such as 192.168.1.0/24"
    try:
        IPv4Net(value)
    except ipaddress.NetmaskValueError:
        return f"{value!r} has an invalid prefix length"
    except ValueError:
        try:
            canonical = IPv4Net(value, strict=False)
        except ValueError:
            return f"{value!r} is not a CIDR such as 192.168.1.0/24"
        return f"{value!r} has host bits set — use {canonical}"
    if "/" not in value:
        return f"{value!r} has no prefix length — use e.g. {value}/24"
    return None


def check_host(value: Any) -> str | None:
    if parse_address(value) is not None:
        return None
    if isinstance(value, str) and HOSTNAME.match(value):
        return None
    return f"{value!r} is neither an IPv4 address nor a host name"


def check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{value!r} must be true or false"


def check_int_range(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        number = as_int(value)
        if number is None or not low <= number <= high:
            return f"{value!r} must be a whole number from {low} to {high}"
        return None

    return check


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def check_choice(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return f"{value!r} must be one of {', '.join(choices)}"

    return check


def check_regex(pattern: re.Pattern[str], description: str, lower_hint: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, str) and pattern.match(value):
            return None
        hint = ""
        if lower_hint and isinstance(value, str) and pattern.match(value.lower().replace("-", ":")):
            hint = f" — use {value.lower().replace('-', ':')}"
        return f"{value!r} must be {description}{hint}"

    return check


def check_list_of(item: Check) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"{value!r} must be a list"
        for index, element in enumerate(value):
            if (message := item(element)) is not None:
                return f"item {index + 1}: {message}"
        return None

    return check


def check_nonempty_str(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else f"{value!r} must be a non-empty string"


check_asn = check_int_range(*ASN_RANGE)

CLUSTER_CHECKS: dict[str, Check] = {
    "node_cidr": check_cidr,
    "node_dns_servers": check_list_of(check_address),
    "node_ntp_servers": check_list_of(check_host),
    "node_default_gateway": check_address,
    "node_vlan_tag": check_int_range(1, 4094),
    "cluster_api_addr": check_address,
    "cluster_api_tls_sans": check_list_of(check_host),
    "cluster_pod_cidr": check_cidr,
    "cluster_svc_cidr": check_cidr,
    "cluster_dns_gateway_addr": check_address,
    "cluster_gateway_addr": check_address,
    "repository_name": check_regex(REPOSITORY, "owner/repository, e.g. onedr0p/home-ops"),
    "repository_branch": check_nonempty_str,
    "repository_visibility": check_choice("public", "private"),
    "cloudflare_domain": check_regex(FQDN, "a lowercase domain name such as example.com"),
    "cloudflare_token": check_nonempty_str,
    "cloudflare_gateway_addr": check_address,
    "cilium_loadbalancer_mode": check_choice("dsr", "snat"),
    "cilium_bgp_router_addr": check_address,
    "cilium_bgp_router_asn": check_asn,
    "cilium_bgp_node_asn": check_asn,
}

NODE_CHECKS: dict[str, Check] = {
    "name": check_regex(DNS_LABEL, "a DNS label (lowercase letters, digits and '-', at most 63)"),
    "address": check_address,
    "controller": check_bool,
    "disk": check_nonempty_str,
    "mac_addr": check_regex(MAC, "a lowercase colon-separated MAC such as aa:bb:cc:dd:ee:ff", True),
    "schematic_id": check_regex(SCHEMATIC, "a Talos Image Factory schematic id (64 lowercase hex)"),
    "mtu": check_int_range(1450, 9000),
    "secureboot": check_bool,
    "encrypt_disk": check_bool,
    "kernel_modules": check_list_of(check_nonempty_str),
}


def unknown_key_message(key: Any, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
    hint = f" — did you mean {close[0]}?" if close else ""
    return f"unknown key{hint}"


def is_set(value: Any) -> bool:
    return value is not None and value != ""


def check_mapping(
    doc: Document,
    node: Any,
    checks: dict[str, Check],
    required: tuple[str, ...],
    known: frozenset[str],
    prefix: str = "",
) -> Iterator[Problem]:
    """Unknown keys, missing required keys and per-field checks of one mapping."""
    for key in node:
        name = f"{prefix}{key}"
        if key not in known:
            line, column = key_position(node, key)
            yield Problem(doc.label, line, column, name, unknown_key_message(key, known))
        elif is_set(node[key]) and (message := checks[key](node[key])) is not None:
            yield doc.problem(node, key, name, message)
    for key in required:
        if not is_set(node.get(key)):
            yield doc.problem(node, None, f"{prefix}{key}", "required key is missing")


# --------------------------------------------------------------------------- cross-field checks


@dataclass
class Located:
    """A value with the document position it came from, for cross-field messages."""

    value: Any
    doc: Document
    node: Any
    key: str | int
    name: str

    def problem(self, message: str) -> Problem:
        return self.doc.problem(self.node, self.key, self.name, message)


def cross_checks(cluster: Document, nodes: Document, node_list: list[Any]) -> Iterator[Problem]:
    c = cluster.data
    net = lambda key: IPv4Net(c[key]) if is_set(c.get(key)) and check_cidr(c[key]) is None else None  # noqa: E731
    node_cidr = net("node_cidr")
    networks = {key: net(key) for key in ("node_cidr", "cluster_pod_cidr", "cluster_svc_cidr")}
    for key in ("cluster_pod_cidr", "cluster_svc_cidr"):
        if key not in c or not is_set(c[key]):
            networks[key] = IPv4Net(CLUSTER_DEFAULTS[key])
    keys = list(networks)
    for i, first in enumerate(keys):
        for second in keys[i + 1 :]:
            a, b = networks[first], networks[second]
            if a is None or b is None or not a.overlaps(b):
                continue
            at, other, mine, theirs = (second, first, b, a) if second in c else (first, second, a, b)
            yield cluster.problem(c, at if at in c else None, at, f"{mine} overlaps {other} ({theirs})")

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
            elif item.value in node_cidr and item.value in (
                node_cidr.network_address,
                node_cidr.broadcast_address,
            ):
                yield item.problem(f"{item.value} is the network or broadcast address of {node_cidr}")

    seen: dict[IPv4Addr, Located] = {}
    for item in addresses:
        if item.value in seen:
            yield item.problem(f"{item.value} is already used by {seen[item.value].name}")
        else:
            seen[item.value] = item

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
                    f"{value!r} is already used by {first_use[value]}",
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


# --------------------------------------------------------------------------- entry point


def node_entries(doc: Document) -> Iterator[Problem]:
    data = doc.data
    if not isinstance(data, dict):
        yield doc.problem(data, None, "", f"expected a mapping with a 'nodes' list, found a {kind(data)}")
        return
    for key in data:
        if key != "nodes":
            line, column = key_position(data, key)
            yield Problem(doc.label, line, column, str(key), unknown_key_message(key, frozenset({"nodes"})))
    if "nodes" not in data:
        yield doc.problem(data, None, "nodes", "required key is missing")
        return
    node_list = data["nodes"]
    if not isinstance(node_list, list) or not node_list:
        yield doc.problem(data, "nodes", "nodes", "must be a non-empty list of nodes")
        return
    for index, entry in enumerate(node_list):
        if not isinstance(entry, dict):
            yield doc.problem(
                node_list, index, f"nodes[{index}]", f"expected a mapping, found a {kind(entry)}"
            )
            continue
        yield from check_mapping(doc, entry, NODE_CHECKS, NODE_REQUIRED, NODE_KEYS, f"nodes[{index}].")


def kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    if value is None:
        return "nothing"
    return type(value).__name__ if not isinstance(value, str) else "string"


def validate(cluster: Document, nodes: Document) -> list[Problem]:
    """Every problem in the pair of files, in file order."""
    problems: list[Problem] = []
    if isinstance(cluster.data, dict):
        problems += check_mapping(cluster, cluster.data, CLUSTER_CHECKS, CLUSTER_REQUIRED, CLUSTER_KEYS)
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
    ):
        problems += cross_checks(cluster, nodes, nodes.data["nodes"])
    return sorted(set(problems), key=lambda p: (p.file, p.line or 0, p.column or 0, p.key, p.message))


def normalise_cluster(raw: dict[str, Any]) -> dict[str, Any]:
    cluster = {**CLUSTER_DEFAULTS, **{k: v for k, v in plain(raw).items() if is_set(v)}}
    for key in ("node_vlan_tag", "cilium_bgp_router_asn", "cilium_bgp_node_asn"):
        if cluster[key] is not None:
            cluster[key] = as_int(cluster[key])
    if cluster["node_default_gateway"] is None:
        cluster["node_default_gateway"] = str(next(IPv4Net(cluster["node_cidr"]).hosts()))
    return cluster


def normalise_node(raw: dict[str, Any]) -> dict[str, Any]:
    node = {**NODE_DEFAULTS, **{k: v for k, v in plain(raw).items() if is_set(v)}}
    node["mtu"] = as_int(node["mtu"])
    return node


def derive(cluster: dict[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Values computed from the config, so templates never repeat the logic."""
    return {
        "cilium_bgp_enabled": all(cluster[key] is not None for key in BGP_KEYS),
        "spegel_enabled": len(nodes) > 1,
        "controllers": [node for node in nodes if node["controller"]],
        "workers": [node for node in nodes if not node["controller"]],
    }


def load_config(cluster_path: Path, nodes_path: Path, root: Path | None = None) -> ClusterConfig:
    """Read, validate and complete the configuration, or raise a :class:`UserError` listing
    every problem. Nothing is written."""
    label = lambda path: str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)  # noqa: E731
    errors: list[str] = []
    documents: list[Document] = []
    for path in (cluster_path, nodes_path):
        try:
            documents.append(read_yaml(path, label(path)))
        except UserError as error:
            errors += error.lines
    if errors:
        raise UserError(*errors)
    cluster, nodes = documents
    problems = validate(cluster, nodes)
    if problems:
        raise UserError(*problems)
    cluster_values = normalise_cluster(cluster.data)
    node_values = [normalise_node(entry) for entry in nodes.data["nodes"]]
    return ClusterConfig(cluster_values, node_values, derive(cluster_values, node_values))
