"""The pure parts of ``inv dev.cluster-test``: nothing here runs a command.

- which nodes there are and where (the options, checked: one line per problem);
- the VM network's addresses, as ``talosctl cluster create qemu`` hands them out (its
  source, cmd/talosctl/cmd/mgmt/cluster/create/clusterops/configmaker/internal/makers: the
  gateway is the network's first address, the nodes the ones after it, controllers first);
- the scratch repository's ``cluster.yaml`` for that network;
- the command lines that boot and destroy the VMs;
- whether what ``kubectl get ... --output=json`` lists is Ready, and why not.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML

from tasks.lib.errors import UserError

#: talosctl cluster create's own default network.
DEFAULT_CIDR = "10.5.0.0/24"
#: The name of the VM cluster (talosctl's ``--name``, its state folder).
DEFAULT_NAME = "home-ops-test"
#: The repository the cluster pulls from, on the test's git server, and its branch.
REPOSITORY = "home-ops.git"
BRANCH = "main"
#: The cluster's domain: under .test, reserved for testing (RFC 2606), so it is nobody's.
DOMAIN = "home-ops.test"
#: Memory of each VM (the reference template's e2e sizes: enough for Cilium, Flux and a few apps).
CONTROLPLANE_MEMORY = "4GiB"
WORKER_MEMORY = "3GiB"
#: talosctl's QEMU presets: boot the ISO and stay in maintenance mode (no config applied),
#: as a bare-metal machine booted from the Talos ISO does.
PRESETS = "iso,maintenance"
#: What the VMs need on a Debian/Ubuntu host (the reference template's runner setup).
QEMU_PACKAGES = ("qemu-system-x86", "qemu-utils", "ovmf")
#: The first node's offset in the network (talosctl: gatewayOffset 1, nodesOffset 2).
GATEWAY_OFFSET = 1
NODES_OFFSET = 2
#: Where cluster.yaml's own addresses go: high in the network, clear of the nodes and of
#: the VIP talosctl would use for itself (offset 50).
ADDRESS_OFFSETS = {
    "cluster_api_addr": 240,
    "cluster_dns_gateway_addr": 241,
    "cluster_gateway_addr": 242,
    "cloudflare_gateway_addr": 243,
}
#: The most nodes one test boots or takes.
MAX_NODES = 9
#: The largest network prefix that still has room for the addresses above.
MAX_PREFIX = 24

#: ``--workers`` when not given.
UNSET = -1
#: Node names, in order: k8s-0, k8s-1, ... (what ``inv talos.discover`` would choose).
NAME_PREFIX = "k8s-"


@dataclass(frozen=True)
class Plan:
    """The nodes of one cluster test and their network."""

    network: ipaddress.IPv4Network
    gateway: str
    controllers: tuple[str, ...]
    workers: tuple[str, ...]
    boot: bool  # the test boots the VMs itself (else someone else booted --nodes)
    name: str = DEFAULT_NAME

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.controllers + self.workers

    def node_name(self, address: str) -> str:
        return f"{NAME_PREFIX}{self.nodes.index(address)}"

    def is_controller(self, address: str) -> bool:
        return address in self.controllers

    def address(self, key: str) -> str:
        return str(self.network.network_address + ADDRESS_OFFSETS[key])

    def describe(self) -> str:
        counts = f"{plural(len(self.controllers), 'controller')} and {plural(len(self.workers), 'worker')}"
        how = "booted here as QEMU VMs" if self.boot else f"at {', '.join(self.nodes)}"
        return f"{counts} {how}, network {self.network} (gateway {self.gateway})"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def parse_network(cidr: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.IPv4Network(cidr.strip())
    except ValueError:
        raise UserError(f"--cidr {cidr!r} is not an IPv4 network such as {DEFAULT_CIDR}") from None
    if network.prefixlen > MAX_PREFIX:
        raise UserError(
            f"--cidr {network}: too small — the test needs a /{MAX_PREFIX} or larger "
            f"(its own addresses sit at .{min(ADDRESS_OFFSETS.values())} and up)"
        )
    return network


def parse_addresses(text: str) -> list[str]:
    """``--nodes``: comma-separated IPv4 addresses (empty items ignored, e.g. no workers)."""
    addresses = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            addresses.append(str(ipaddress.IPv4Address(item)))
        except ValueError:
            raise UserError(f"--nodes: {item!r} is not an IPv4 address such as 10.5.0.2") from None
    return addresses


def make_plan(
    *, controlplanes: int, workers: int, nodes: str, cidr: str, gateway: str, name: str = DEFAULT_NAME
) -> Plan:
    """Check the options and say where every node is. ``workers`` -1 means "not given": one
    worker when booting, every address after the controllers with ``--nodes``."""
    network = parse_network(cidr)
    gateway_address = gateway.strip() or str(network.network_address + GATEWAY_OFFSET)
    problems: list[str] = []
    try:
        if ipaddress.IPv4Address(gateway_address) not in network:
            problems.append(f"--gateway {gateway_address} is not in the network {network}")
    except ValueError:
        raise UserError(f"--gateway {gateway!r} is not an IPv4 address such as 10.5.0.1") from None
    if controlplanes < 1:
        problems.append(f"--controlplanes {controlplanes}: at least one controller is needed")
    given = parse_addresses(nodes)
    if given:
        worker_count = len(given) - controlplanes if workers == UNSET else workers
        if controlplanes + worker_count != len(given):
            problems.append(
                f"--nodes lists {len(given)} address(es), but --controlplanes {controlplanes} and "
                f"--workers {worker_count} make {controlplanes + worker_count}"
            )
        if len(set(given)) != len(given):
            problems.append("--nodes lists an address twice")
        reserved = {network.network_address + offset for offset in ADDRESS_OFFSETS.values()}
        for address in given:
            parsed = ipaddress.IPv4Address(address)
            if parsed not in network or parsed in (network.network_address, network.broadcast_address):
                problems.append(f"--nodes: {address} is not a host address of the network {network}")
            elif parsed in reserved or address == gateway_address:
                problems.append(f"--nodes: {address} is an address the test gives the cluster itself")
    else:
        worker_count = 1 if workers == UNSET else workers
    if worker_count < 0:
        problems.append(f"--workers {worker_count}: cannot be negative")
    if controlplanes + max(worker_count, 0) > MAX_NODES:
        problems.append(f"{controlplanes + worker_count} nodes: the test takes {MAX_NODES} at most")
    if problems:
        raise UserError(*problems)
    if not given:  # counted first: a huge --controlplanes is an error, never a huge list
        given = [str(network.network_address + NODES_OFFSET + i) for i in range(controlplanes + worker_count)]
    return Plan(
        network=network,
        gateway=gateway_address,
        controllers=tuple(given[:controlplanes]),
        workers=tuple(given[controlplanes:]),
        boot=not nodes.strip(),
        name=name,
    )


# --------------------------------------------------------------------------- the scratch repository


def repository_url(host: str, port: int | str) -> str:
    """Where the cluster pulls from: the test's git server, on the VM network's gateway."""
    return f"http://{host}:{port}/{REPOSITORY}"


def cluster_settings(plan: Plan, repository: str) -> dict[str, Any]:
    """``cluster.yaml`` for the VM network: the API VIP and the load balancers' addresses
    high in it, the repository on the test's git server, a domain under .test."""
    settings: dict[str, Any] = {
        "node_cidr": str(plan.network),
        "node_default_gateway": plan.gateway,
    }
    settings.update({key: plan.address(key) for key in ADDRESS_OFFSETS})
    settings.update(
        {
            "repository_name": repository,
            "repository_branch": BRANCH,
            "cloudflare_domain": DOMAIN,
        }
    )
    return settings


def cluster_document(settings: dict[str, Any]) -> str:
    lines = [
        "---",
        "# Written by `inv dev.cluster-test` for its VM network, in a scratch copy of the repository.",
    ]
    lines += [f"{key}: {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the VMs


def create_argv(
    plan: Plan, *, state: str, talosctl: str, talos_version: str, sudo: Sequence[str]
) -> list[str]:
    """``talosctl cluster create qemu`` booting every node in maintenance mode from the ISO
    (its flags: cmd/talosctl/cmd/mgmt/cluster/create/cmd_qemu.go and cmd.go)."""
    return [
        *sudo,
        talosctl,
        "cluster",
        "create",
        "qemu",
        "--name",
        plan.name,
        "--state",
        state,
        "--presets",
        PRESETS,
        "--controlplanes",
        str(len(plan.controllers)),
        "--workers",
        str(len(plan.workers)),
        "--cidr",
        str(plan.network),
        "--talos-version",
        talos_version,
        "--memory-controlplanes",
        CONTROLPLANE_MEMORY,
        "--memory-workers",
        WORKER_MEMORY,
        "--talosconfig-destination",
        f"{state}/talosconfig",
    ]


def destroy_argv(plan: Plan, *, state: str, talosctl: str, sudo: Sequence[str]) -> list[str]:
    """``talosctl cluster destroy`` (cmd/talosctl/cmd/mgmt/cluster/destroy.go): the VMs,
    their network and their state folder."""
    return [*sudo, talosctl, "cluster", "destroy", "--name", plan.name, "--state", state, "--force"]


# --------------------------------------------------------------------------- readiness


@dataclass(frozen=True)
class Pending:
    """An object that is not Ready (yet), and why."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


def items(text: str) -> list[dict[str, Any]]:
    """The ``items`` of ``kubectl get ... --output=json`` (none when it is not that)."""
    try:
        found = json.loads(text).get("items")
    except (ValueError, AttributeError):
        return []
    return [item for item in found or [] if isinstance(item, dict)]


def object_name(item: dict[str, Any]) -> str:
    metadata = item.get("metadata") or {}
    namespace = metadata.get("namespace")
    kind = str(item.get("kind") or "").lower()
    name = f"{namespace}/{metadata.get('name', '?')}" if namespace else str(metadata.get("name", "?"))
    return f"{kind} {name}" if kind else name


def ready_condition(item: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (item.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None)


def first_line(text: object, width: int = 160) -> str:
    line = next((row.strip() for row in str(text or "").splitlines() if row.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def pending(item: dict[str, Any]) -> Pending | None:
    """Why ``item`` is not Ready, or None when it is: its Ready condition is True and, for an
    object with a generation, about its latest one; a pod that ran to completion counts."""
    status = item.get("status") or {}
    if item.get("kind") == "Pod" and status.get("phase") == "Succeeded":
        return None
    condition = ready_condition(item)
    if condition is None:
        return Pending(object_name(item), "no Ready condition yet")
    if condition.get("status") != "True":
        reason = first_line(condition.get("message")) or str(condition.get("reason") or "not Ready")
        return Pending(object_name(item), reason)
    generation = (item.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        return Pending(object_name(item), f"Ready, but for generation {observed} of {generation}")
    return None


def not_ready(text: str) -> list[Pending]:
    return [found for item in items(text) if (found := pending(item)) is not None]


@dataclass(frozen=True)
class Check:
    """One assertion: every object ``kubectl get`` lists is Ready, and there are at least
    ``minimum`` of them (exactly ``exactly``, when set)."""

    what: str
    argv: tuple[str, ...]
    minimum: int = 1
    exactly: int | None = None

    def problems(self, text: str) -> list[str]:
        """Empty when the check passes, else what is wrong (count first, then each object)."""
        found = items(text)
        lines = []
        if self.exactly is not None and len(found) != self.exactly:
            lines.append(f"{len(found)} {self.what}, expected {self.exactly}")
        elif len(found) < self.minimum:
            lines.append(f"{len(found)} {self.what}, expected at least {self.minimum}")
        lines += [str(p) for p in not_ready(text)]
        return lines


FLUX_KINDS = (
    ("FluxInstance", "fluxinstances.fluxcd.controlplane.io"),
    ("GitRepositories", "gitrepositories.source.toolkit.fluxcd.io"),
    ("OCIRepositories", "ocirepositories.source.toolkit.fluxcd.io"),
    ("Kustomizations", "kustomizations.kustomize.toolkit.fluxcd.io"),
    ("HelmReleases", "helmreleases.helm.toolkit.fluxcd.io"),
)


def health_checks(node_count: int, system_namespaces: Sequence[str]) -> list[Check]:
    """What a healthy cluster shows, in the order it comes up: the nodes, the pods of the
    namespaces bootstrap.apps installs into, then every Flux object."""
    checks = [Check("nodes Ready", ("kubectl", "get", "nodes", "--output=json"), exactly=node_count)]
    for namespace in system_namespaces:
        argv = ("kubectl", "get", "pods", "--namespace", namespace, "--output=json")
        checks.append(Check(f"pods in {namespace}", argv))
    for what, resource in FLUX_KINDS:
        minimum = 0 if what == "OCIRepositories" else 1
        checks.append(Check(what, ("kubectl", "get", resource, "--all-namespaces", "--output=json"), minimum))
    return checks


# --------------------------------------------------------------------------- SOPS and day 2


def secret_manifest(name: str, namespace: str, value: str) -> str:
    """The Secret Flux must decrypt (its plaintext goes to sops through stdin only)."""
    return (
        f"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"type: Opaque\nstringData:\n  value: {json.dumps(value)}\n"
    )


def secret_value(text: str) -> str | None:
    """``data.value`` of ``kubectl get secret NAME --output=json``, decoded (None: no such value)."""
    try:
        encoded = (json.loads(text).get("data") or {}).get("value")
        return base64.b64decode(encoded, validate=True).decode() if isinstance(encoded, str) else None
    except (ValueError, AttributeError, binascii.Error, UnicodeDecodeError):
        return None


def _yaml() -> Any:
    yaml = YAML()  # round trip: comments and order stay
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def _dump(data: Any, text: str) -> str:
    out = io.StringIO()
    if text.startswith("---"):
        out.write("---\n")
    _yaml().dump(data, out)
    return out.getvalue()


def add_resource(kustomization: str, entry: str) -> str:
    """``kustomization.yaml`` with ``entry`` at the end of its ``resources`` (once)."""
    data = _yaml().load(kustomization)
    if not isinstance(data, dict):
        raise UserError("kustomization.yaml is not a mapping")
    resources = data.setdefault("resources", [])
    if entry not in resources:
        resources.append(entry)
    return _dump(data, kustomization)


def with_values(helmrelease: str, image: str) -> str:
    """``app.new``'s HelmRelease with the values of one app-template controller running
    ``image`` (``REPOSITORY:TAG``), as an operator sets them after scaffolding."""
    data = _yaml().load(helmrelease)
    repository, _, tag = image.rpartition(":")
    data["spec"]["values"] = {
        "controllers": {"main": {"containers": {"app": {"image": {"repository": repository, "tag": tag}}}}}
    }
    return _dump(data, helmrelease)


def echo_chart(ocirepository: str, helmrelease: str) -> tuple[str, str, str]:
    """The chart URL, its version and the image of the bundled echo app."""
    safe = YAML(typ="safe", pure=True)
    source = safe.load(ocirepository) or {}
    release = safe.load(helmrelease) or {}
    try:
        url = str(source["spec"]["url"])
        tag = str(source["spec"]["ref"]["tag"])
        controllers = release["spec"]["values"]["controllers"]
        container = next(iter(controllers.values()))["containers"]["app"]["image"]
        image = f"{container['repository']}:{container['tag']}"
    except (KeyError, TypeError, StopIteration, AttributeError):
        raise UserError("the echo app's OCIRepository or HelmRelease is not the bundled one") from None
    return url, tag, image
