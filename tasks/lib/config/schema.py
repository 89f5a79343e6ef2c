"""The configuration model: every key of ``cluster.yaml`` and ``nodes.yaml``, declared once.

:class:`ClusterSettings` and :class:`NodeSettings` are frozen dataclasses; each field names
its type, its default, the :class:`Constraint` its value must meet and a help text. Validation
(:mod:`tasks.lib.config.checks`), the template context (:class:`ClusterConfig`) and the
reference tables of ``docs/configuration.md`` (:mod:`tasks.lib.config.reference`) are all
read from them, so a key is added, renamed or re-documented in one place.

The keys are the ones users of the Taskfile template already have, so an existing pair of
files works unchanged. This module only declares: reading the files is
:mod:`tasks.lib.config.document`, checking them :mod:`tasks.lib.config.checks`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from tasks.lib.config.blame import Origin, blame
from tasks.lib.config.constraints import (
    ASN,
    DNS_LABEL,
    FQDN,
    KERNEL_MODULE,
    MAC,
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
    IPv4Net,
    ListOf,
    Pattern,
    Token,
    is_set,
)
from tasks.lib.config.network import first_host
from tasks.lib.gitremote import GitUrl, KnownHosts, RepositoryAddress, known_hosts_for, parse_repository

# --------------------------------------------------------------------------- values


def to_template(value: Any) -> Any:
    """A typed value as templates see it: tuples become lists."""
    if isinstance(value, tuple):
        return [to_template(v) for v in value]
    return value


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


SCHEMATIC_ID = Pattern(
    SCHEMATIC, "a Talos Image Factory schematic id (64 lowercase hex)", "64 lowercase hex digits"
)
WEBHOOK_PROVIDERS = ("github", "gitlab", "gitea", "forgejo", "generic-hmac", "none")
#: The Flux Receiver type of each provider: Gitea and Forgejo sign and name their events
#: as GitHub does.
RECEIVER_TYPES = {"gitea": "github", "forgejo": "github"}
#: The webhook provider when ``repository_webhook`` is not set: the public hosts' own.
WEBHOOK_BY_HOST = {"github.com": "github", "gitlab.com": "gitlab", "codeberg.org": "forgejo"}
INGRESS_MODES = ("cloudflare-tunnel", "direct", "none")


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
    node_schematic_id: str | None = setting(
        SCHEMATIC_ID,
        "Talos Image Factory schematic of every node that sets no `schematic_id` of its own",
        None,
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
    cloudflare_gateway_addr: str | None = setting(
        Address(),
        "External Envoy gateway (the internet's way in); required unless `ingress_mode` is `none`",
        None,
        "none (required with an `ingress_mode` other than `none`)",
    )
    repository_name: str = setting(
        RepositoryAddress(),
        "Repository Flux syncs from: `owner/repo` on GitHub, or the clone URL on any git host",
    )
    repository_branch: str = setting(GitBranch(), "Branch Flux syncs from", "main")
    repository_visibility: str = setting(
        Choice(("public", "private")),
        "GitHub `owner/repo` only: `private` clones over ssh with the deploy key (a URL says so itself)",
        "public",
    )
    repository_known_hosts: tuple[str, ...] = setting(
        KnownHosts(),
        "Host keys of an `ssh://` repository's host (bundled for github.com, gitlab.com, codeberg.org)",
        (),
    )
    repository_webhook: str | None = setting(
        Choice(WEBHOOK_PROVIDERS),
        "Git host whose push webhook makes Flux pull at once (Gitea and Forgejo send GitHub's); "
        "`none`: Flux polls every hour",
        None,
        "by host: `github` (github.com), `gitlab` (gitlab.com), `forgejo` (codeberg.org), else `none`",
    )
    cloudflare_domain: str = setting(
        Pattern(FQDN, "a lowercase domain name such as example.com", "lowercase domain name"),
        "Domain of the cluster's host names (served through Cloudflare when `dns_provider` is `cloudflare`)",
    )
    dns_provider: str = setting(
        Choice(("cloudflare", "none")),
        "`cloudflare`: public DNS records and Let's Encrypt certificates; `none`: a LAN-only cluster "
        "with its own certificate authority",
        "cloudflare",
    )
    ingress_mode: str | None = setting(
        Choice(INGRESS_MODES),
        "How the internet reaches the external gateway: a Cloudflare tunnel, `direct` (you forward "
        "port 443) or `none` (no external gateway)",
        None,
        "`cloudflare-tunnel` with Cloudflare, else `none`",
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
    spegel_enabled: bool | None = setting(
        Boolean(), "Run Spegel, the in-cluster image mirror", None, "`true` with more than one node"
    )


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
    schematic_id: str | None = setting(
        SCHEMATIC_ID,
        "Talos Image Factory schematic",
        None,
        "`node_schematic_id` of cluster.yaml (one of them is required)",
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

#: The rules that tie keys together, for the reference documentation (checked by
#: :mod:`tasks.lib.config.checks`).
RULES = (
    "`node_cidr`, `cluster_pod_cidr` and `cluster_svc_cidr` must not overlap.",
    "No address may be used twice: the API VIP, each load balancer, every node, the BGP router "
    "(which may be the default gateway), the default gateway (also when it is not written: then "
    "it is the first host of `node_cidr`) and the service addresses Kubernetes takes (hosts 1 "
    "and 10 of `cluster_svc_cidr`).",
    "The API VIP, the default gateway and every node lie inside `node_cidr` (not its network or "
    "broadcast address), and so do the load balancer addresses unless BGP is on; none lies inside "
    "`cluster_pod_cidr` or `cluster_svc_cidr`; `node_cidr` must be big enough for all of them.",
    "`cluster_pod_cidr` must hold a /24 for every node; `cluster_svc_cidr` must be a /12 to a /28 "
    "(CoreDNS takes its 10th address).",
    "BGP: all three `cilium_bgp_*` keys or none.",
    "Node names and MAC addresses are unique; at least one node has `controller: true`; every node "
    "has a schematic (its own `schematic_id`, else `node_schematic_id`).",
    "`ingress_mode` `cloudflare-tunnel` or `direct` needs `dns_provider: cloudflare` and "
    "`cloudflare_gateway_addr`; a key a choice leaves unused is an error (`cloudflare_gateway_addr` "
    "with `ingress_mode: none`, a `cloudflare_token` with `dns_provider: none`).",
    "An `ssh://` `repository_name` needs its host's keys in `repository_known_hosts` (bundled for "
    "github.com, gitlab.com and codeberg.org); `repository_visibility` applies to GitHub's "
    "`owner/repo` form only.",
)

# --------------------------------------------------------------------------- the result

Model = TypeVar("Model", ClusterSettings, NodeSettings)


def build(model: type[Model], raw: dict[str, Any], **computed: Any) -> Model:
    """An instance of ``model`` from a validated mapping: set keys converted, defaults kept."""
    model_specs = specs(model)
    values = {key: model_specs[key].constraint.convert(value) for key, value in raw.items() if is_set(value)}
    return model(**{**values, **computed})


def cluster_settings(raw: dict[str, Any]) -> ClusterSettings:
    """The settings of a validated cluster.yaml, every default that depends on other keys
    resolved (the default gateway, the ingress mode, the webhook provider)."""
    settings = build(ClusterSettings, raw)
    return dataclasses.replace(
        settings,
        node_default_gateway=settings.node_default_gateway or str(default_gateway(settings.node_cidr)),
        ingress_mode=settings.ingress_mode or default_ingress(settings.dns_provider),
        repository_webhook=settings.repository_webhook or default_webhook(repository_of(settings)),
    )


def default_gateway(node_cidr: str) -> str:
    return str(first_host(IPv4Net(node_cidr)))


def default_ingress(dns_provider: str) -> str:
    return "cloudflare-tunnel" if dns_provider == "cloudflare" else "none"


def default_webhook(repository: GitUrl) -> str:
    return WEBHOOK_BY_HOST.get(repository.host, "none")


def repository_of(settings: ClusterSettings) -> GitUrl:
    """The URL Flux clones (``repository_name`` in URL form)."""
    return parse_repository(settings.repository_name, settings.repository_visibility == "private")


def node_settings(raw: dict[str, Any], cluster: ClusterSettings) -> NodeSettings:
    """One validated node, the cluster-wide schematic filled in when it sets none."""
    node = build(NodeSettings, raw)
    return dataclasses.replace(node, schematic_id=node.schematic_id or cluster.node_schematic_id)


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
        settings = self.settings
        webhook = settings.repository_webhook or "none"
        cloudflare = settings.dns_provider == "cloudflare"
        external = settings.ingress_mode not in (None, "none")
        spegel = settings.spegel_enabled
        return {
            "cilium_bgp_enabled": all(getattr(settings, key) is not None for key in BGP_KEYS),
            "spegel_enabled": len(self.nodes) > 1 if spegel is None else spegel,
            "controllers": [node for node in self.nodes if node["controller"]],
            "workers": [node for node in self.nodes if not node["controller"]],
            "repository_url": str(self.repository),
            "repository_ssh": self.repository.ssh,
            "repository_known_hosts": list(known_hosts_for(self.repository, settings.repository_known_hosts)),
            "webhook_enabled": webhook != "none",
            "webhook_name": f"{webhook}-webhook",
            "webhook_receiver_type": RECEIVER_TYPES.get(webhook, webhook),
            "cloudflare_enabled": cloudflare,
            "external_gateway_enabled": external,
            "cloudflare_tunnel_enabled": settings.ingress_mode == "cloudflare-tunnel",
            # external-dns publishes the external gateway's routes to Cloudflare.
            "cloudflare_dns_enabled": cloudflare and external,
            "cluster_issuer": "letsencrypt-production" if cloudflare else "internal-ca",
        }

    @cached_property
    def repository(self) -> GitUrl:
        """The URL Flux clones (``repository_name`` in URL form)."""
        return repository_of(self.settings)

    def template_data(self) -> dict[str, Any]:
        return {**self.cluster, "nodes": self.nodes, **self.derived}

    def blame(self, *rendered_lines: str) -> list[Origin]:
        """The config values found in some rendered lines, longest first: where to look
        when a rendered file does not parse. Names keys and positions, never values."""
        return blame(self.origins, rendered_lines)
