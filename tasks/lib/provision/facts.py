"""What the ``talos`` and ``bootstrap`` collections know about the cluster: facts read from
the generated files and from the tools' output.

Nothing here runs a command: reading ``talenv.yaml`` / ``talconfig.yaml``, working out a
node's installer image, turning ``talhelper gencommand`` output into argument lists,
picking CustomResourceDefinition documents out of a rendered multi-document stream and
reading node readiness from ``kubectl get nodes -o json`` are all plain functions, tested
without Invoke or any tool.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from tasks.lib.errors import UserError
from tasks.lib.files import read_text
from tasks.lib.fluxtree.values import merge_values
from tasks.lib.fluxtree.yamlio import split_documents

CRD_KIND = "CustomResourceDefinition"
#: Namespace the bootstrap secrets (deploy key, sops-age, cluster-secrets) go into unless
#: they name their own.
SECRETS_NAMESPACE = "flux-system"
#: ``talosctl apply-config --mode`` values.
APPLY_MODES = ("auto", "no-reboot", "reboot", "staged", "try")

# --------------------------------------------------------------------------- addresses


def ipv4(value: str) -> str | None:
    """``value`` as a canonical dotted IPv4 address, or None when it is not one."""
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except (ipaddress.AddressValueError, ValueError, AttributeError):
        return None


# --------------------------------------------------------------------------- talos files


def read_mapping(path: Path, label: str) -> dict[str, Any]:
    """Load a YAML mapping (the first document of ``path``) or raise a one-line UserError."""
    text = read_text(path, label, missing="run `inv configure`")
    try:
        data = next(iter(YAML(typ="safe", pure=True).load_all(text)), None)
    except YAMLError as error:
        first = str(error).strip().splitlines()
        raise UserError(f"{label}: invalid YAML: {first[0] if first else 'parse error'}") from None
    if not isinstance(data, dict):
        raise UserError(f"{label}: expected a mapping of settings")
    return data


def talenv_value(path: Path, key: str, label: str = "talos/talenv.yaml") -> str:
    """A version variable (``talosVersion``, ``kubernetesVersion``) from ``talenv.yaml``."""
    value = read_mapping(path, label).get(key)
    if value is None or not str(value).strip():
        raise UserError(f"{label}: {key} is not set — run `inv configure`")
    return str(value).strip()


@dataclass(frozen=True)
class TalosNode:
    """A node as ``talconfig.yaml`` describes it (what talhelper generates commands for)."""

    hostname: str
    addresses: tuple[str, ...]
    controller: bool
    image_url: str | None

    def describe(self) -> str:
        return f"{self.hostname} ({', '.join(self.addresses)})"


def talconfig_nodes(path: Path, label: str = "talos/talconfig.yaml") -> list[TalosNode]:
    """The ``nodes`` of ``talconfig.yaml``; ``ipAddress`` may list several, comma-separated."""
    entries = read_mapping(path, label).get("nodes")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{label}: no nodes defined — run `inv configure`")
    nodes = []
    for index, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not entry.get("hostname") or not entry.get("ipAddress"):
            raise UserError(f"{label}: nodes item {index}: needs hostname and ipAddress")
        addresses = tuple(part.strip() for part in str(entry["ipAddress"]).split(",") if part.strip())
        image = entry.get("talosImageURL")
        nodes.append(
            TalosNode(
                hostname=str(entry["hostname"]),
                addresses=addresses,
                controller=bool(entry.get("controlPlane", False)),
                image_url=str(image).strip() if image else None,
            )
        )
    return nodes


def node_by_address(nodes: Iterable[TalosNode], address: str) -> TalosNode | None:
    return next((node for node in nodes if address in node.addresses), None)


def installer_image(node: TalosNode, talos_version: str, label: str = "talos/talconfig.yaml") -> str:
    """``talosImageURL:talosVersion`` — the installer ``talosctl upgrade`` boots into. A tag
    already present on the URL is replaced by ``talos_version``."""
    if not node.image_url:
        raise UserError(f"{label}: node {node.hostname} has no talosImageURL — run `inv configure`")
    url = node.image_url
    last = url.rsplit("/", 1)[-1]
    if ":" in last:
        url = url[: len(url) - len(last)] + last.split(":", 1)[0]
    if "@" in url:
        url = url.split("@", 1)[0]
    return f"{url}:{talos_version}"


def extra_flags(*flags: str) -> str:
    """One ``--extra-flags=`` argument for ``talhelper gencommand``. talhelper parses the
    value as a comma-separated list and appends each item to the talosctl command it prints,
    so items may not contain commas, quotes or whitespace."""
    for flag in flags:
        if not flag or re.search(r"[,\s\"'\\]", flag):
            raise ValueError(f"cannot pass {flag!r} through talhelper --extra-flags")
    return "--extra-flags=" + ",".join(flags)


# --------------------------------------------------------------------------- gencommand


@dataclass(frozen=True)
class GeneratedCommand:
    """One talosctl command printed by ``talhelper gencommand`` and the node it targets."""

    argv: tuple[str, ...]
    node: str | None

    @property
    def line(self) -> str:
        return shlex.join(self.argv)


_SHELL_OPERATORS = set("|&<>()`")


def split_commands(text: str) -> list[str]:
    """Split shell text at unquoted ``;`` and newlines. Any other unquoted shell operator
    (pipes, redirections, ``&&``, subshells, command substitution) is refused: we run what
    talhelper prints as plain argument lists, never through a shell."""
    pieces: list[str] = []
    current: list[str] = []
    quote: str | None = None
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if char == "\\" and quote != "'":
            current.append(char)
            escaped = True
            continue
        if quote:
            if char == quote:
                quote = None
            current.append(char)
            continue
        if char in "'\"":
            quote = char
        elif char in ";\n":
            pieces.append("".join(current))
            current = []
            continue
        elif char in _SHELL_OPERATORS or char == "$":
            raise UserError(
                f"refusing to run generated command text with shell syntax {char!r}: {text.strip()}"
            )
        current.append(char)
    if quote or escaped:
        raise UserError(f"generated command text ends inside a quote: {text.strip()}")
    pieces.append("".join(current))
    return [piece for piece in pieces if piece.strip()]


def command_node(argv: Sequence[str]) -> str | None:
    """The ``--nodes`` / ``-n`` value of a talosctl argument list."""
    for index, arg in enumerate(argv):
        for flag in ("--nodes", "-n"):
            if arg.startswith(flag + "="):
                return arg[len(flag) + 1 :]
            if arg == flag and index + 1 < len(argv):
                return argv[index + 1]
    return None


def parse_gencommand(text: str) -> list[GeneratedCommand]:
    """The talosctl commands in ``talhelper gencommand`` output, as argument lists."""
    commands = []
    for piece in split_commands(text):
        argv = tuple(shlex.split(piece))
        if not argv:
            continue
        if Path(argv[0]).name != "talosctl":
            raise UserError(f"talhelper printed something other than a talosctl command: {piece.strip()}")
        commands.append(GeneratedCommand(argv, command_node(argv)))
    return commands


# --------------------------------------------------------------------------- CRD filtering

_TOP_KIND = re.compile(r"""^kind:[ \t]*(?P<q>["']?)(?P<kind>[A-Za-z0-9]+)(?P=q)[ \t]*(?:#.*)?$""")


def document_kind(document: str) -> str | None:
    """The top-level ``kind`` of one manifest. A ``kind:`` line at column 0 is the fast path
    (every rendered manifest has one); anything else is parsed properly."""
    for line in document.splitlines():
        match = _TOP_KIND.match(line)
        if match:
            return match["kind"]
    return _parsed_kind(document)


def _parsed_kind(document: str) -> str | None:
    try:
        data = YAML(typ="safe", pure=True).load(document)
    except YAMLError:
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def select_kind(text: str, kind: str = CRD_KIND) -> list[str]:
    """The documents of ``text`` whose top-level kind is ``kind``, original text, in order."""
    return [doc for doc in split_documents(text) if document_kind(doc) == kind]


def join_documents(documents: Sequence[str]) -> str:
    """A multi-document stream of ``documents`` (each ends with a newline)."""
    return "".join(f"---\n{doc if doc.endswith(chr(10)) else doc + chr(10)}" for doc in documents)


# --------------------------------------------------------------------------- nodes, namespaces


@dataclass(frozen=True)
class NodeStatus:
    """A Kubernetes node and its Ready condition: True, False, or None (Unknown/absent)."""

    name: str
    ready: bool | None


def node_statuses(text: str) -> list[NodeStatus]:
    """Parse ``kubectl get nodes --output=json``; unparsable output means no nodes."""
    try:
        items = json.loads(text).get("items") or []
    except (json.JSONDecodeError, AttributeError, TypeError):
        return []
    statuses = []
    for item in items:
        if not isinstance(item, dict):
            continue
        name = str((item.get("metadata") or {}).get("name", "?"))
        conditions = (item.get("status") or {}).get("conditions") or []
        ready = next(
            (c.get("status") for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None
        )
        statuses.append(NodeStatus(name, {"True": True, "False": False}.get(str(ready))))
    return statuses


def nodes_registered(statuses: Sequence[NodeStatus]) -> bool:
    """Every node reports Ready=True or Ready=False (False is normal before the CNI runs)."""
    return bool(statuses) and all(status.ready is not None for status in statuses)


def nodes_ready(statuses: Sequence[NodeStatus]) -> bool:
    return bool(statuses) and all(status.ready is True for status in statuses)


_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def app_namespaces(apps_dir: Path) -> list[str]:
    """One namespace per directory under ``kubernetes/apps``, sorted."""
    if not apps_dir.is_dir():
        return []
    return sorted(p.name for p in apps_dir.iterdir() if p.is_dir() and _DNS_LABEL.match(p.name))


def bootstrap_secret_files(root: Path) -> list[Path]:
    """The encrypted secrets applied before Flux starts (deploy key, sops-age,
    cluster-secrets): every ``bootstrap/*.sops.yaml``, sorted."""
    return sorted((root / "bootstrap").glob("*.sops.yaml"))


# --------------------------------------------------------------------------- helm releases


@dataclass(frozen=True)
class Release:
    """A release of a helmfile: where it goes, the chart version it pins and the values
    helmfile would give it (``None`` when they cannot be worked out without helmfile)."""

    name: str
    namespace: str
    version: str | None
    values: Any = field(default=None, compare=False, hash=False)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


#: Release keys that make helmfile compute values at sync time (templates, --set, secrets):
#: such a release is always synced, since its values cannot be known beforehand.
DYNAMIC_VALUE_KEYS = ("valuesTemplate", "set", "setString", "secrets", "postRenderer", "postRendererArgs")


def helmfile_releases(path: Path, label: str) -> list[Release]:
    """The releases a rendered helmfile declares (name, namespace, pinned version, values)."""
    data = read_mapping(path, label)
    entries = data.get("releases") or []
    if not isinstance(entries, list):
        raise UserError(f"{label}: releases must be a list — run `inv configure`")
    releases = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name"):
            version = entry.get("version")
            releases.append(
                Release(
                    str(entry["name"]),
                    str(entry.get("namespace") or "default"),
                    version and str(version),
                    release_values(entry, path.parent),
                )
            )
    return releases


def release_values(entry: dict[str, Any], base: Path) -> dict[str, Any] | None:
    """The user-supplied values helmfile passes to helm for one release: its ``values``
    list (files relative to the helmfile, or inline maps) merged in order as helm merges
    ``--values`` files. ``None`` when they depend on anything evaluated at sync time
    (a template, ``set``, secrets) or a file cannot be read: the caller must then sync."""
    if any(key in entry for key in DYNAMIC_VALUE_KEYS):
        return None
    merged: dict[str, Any] = {}
    for item in entry.get("values") or []:
        if isinstance(item, str):
            if "{{" in item or item.endswith(".gotmpl"):
                return None
            try:
                loaded = YAML(typ="safe", pure=True).load((base / item).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, YAMLError):
                return None
        else:
            loaded = item
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            return None
        merged = merge_values(merged, loaded)
    values: dict[str, Any] = as_json(merged)
    return values


def as_json(values: Any) -> Any:
    """``values`` as helm stores them: JSON types, string keys (YAML timestamps and other
    non-JSON scalars as strings, which at worst makes a comparison say "changed")."""
    return json.loads(json.dumps(values, default=str))


def values_current(release: Release, helm_get_values_json: str) -> bool:
    """Whether the release's user-supplied values in the cluster (``helm get values NAME
    --output json``: ``null`` when there are none) are exactly what helmfile would apply.
    Unknown desired values or unreadable output count as changed."""
    if release.values is None:
        return False
    try:
        deployed = json.loads(helm_get_values_json)
    except ValueError:
        return False
    return bool((deployed or {}) == release.values)


def helm_get_values_argv(release: Release) -> list[str]:
    """The user-supplied values of a deployed release (not ``--all``: chart defaults are not
    known offline, and comparing only what the user set also notices a removed override)."""
    return ["helm", "get", "values", release.name, "--namespace", release.namespace, "--output", "json"]


def undeployed_releases(releases: Sequence[Release], helm_list_json: str) -> list[Release]:
    """The releases that ``helm list --all-namespaces --output json`` does not show deployed
    at their pinned chart version (helm names a chart ``NAME-VERSION``)."""
    try:
        listed = json.loads(helm_list_json or "[]")
    except ValueError:
        listed = []
    deployed = {
        (str(item.get("namespace")), str(item.get("name"))): str(item.get("chart", ""))
        for item in listed
        if isinstance(item, dict) and item.get("status") == "deployed"
    }
    pending = []
    for release in releases:
        chart = deployed.get((release.namespace, release.name))
        if chart is None or (release.version and not chart.endswith(f"-{release.version}")):
            pending.append(release)
    return pending
