"""Read a node booted into Talos maintenance mode and write its ``nodes.yaml`` entry.

``talosctl get links|disks|systeminformation|extensions --insecure --nodes ADDR --output json``
prints one JSON object per resource (``{"node", "metadata", "spec"}``, indented, one after
the other: a stream, not an array). The pure functions here turn that output into the
entry ``nodes.yaml`` needs (name, address, MAC of the cabled link, install disk, schematic)
so nobody copies MAC addresses by hand; :func:`discover` runs the four reads through the
runner. Everything but :func:`discover` runs without Invoke or any tool (``inv
talos.discover`` and the cluster test both call it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from invoke.context import Context

from tasks.lib.errors import UserError
from tasks.lib.provision import facts
from tasks.lib.tools import runner

#: The schematic of the plain Talos image (no extensions): what a node that was not booted
#: from an Image Factory image runs.
VANILLA_SCHEMATIC = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
#: The resources read from the node, in order.
RESOURCES = ("links", "disks", "systeminformation", "extensions")
#: How long one read may take: a maintenance-mode node answers at once or not at all.
READ_TIMEOUT = 30.0
#: Output larger than this is not a node's resource list.
MAX_OUTPUT = 4 * 1024 * 1024
#: Talos needs at least this much disk to install (its documented minimum is 10 GB).
MIN_INSTALL_BYTES = 10 * 1000**3

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SCHEMATIC = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


# --------------------------------------------------------------------------- parsing


def resources(text: str, what: str) -> list[dict[str, Any]]:
    """The resource objects of one ``talosctl get ... --output json`` run (a stream of JSON
    objects). Anything else is a one-line :class:`UserError` naming ``what`` was read."""
    if len(text) > MAX_OUTPUT:
        raise UserError(f"talosctl get {what}: output larger than {MAX_OUTPUT // (1024 * 1024)} MiB")
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return found
        try:
            item, index = decoder.raw_decode(text, index)
        except json.JSONDecodeError as error:
            raise UserError(f"talosctl get {what}: not the JSON talosctl prints: {error.msg}") from None
        if not isinstance(item, dict) or not isinstance(item.get("spec"), dict):
            raise UserError(f"talosctl get {what}: an item without a spec: {str(item)[:80]}")
        found.append(item)


def _id(item: dict[str, Any]) -> str:
    metadata = item.get("metadata")
    return str(metadata.get("id", "")) if isinstance(metadata, dict) else ""


@dataclass(frozen=True)
class Link:
    """A network link: its name, MAC, whether a cable is in (carrier) and whether it is a
    physical Ethernet port (not a bond, VLAN, bridge or the loopback)."""

    name: str
    mac: str
    carrier: bool
    physical: bool
    speed_mbit: int = 0


def parse_links(text: str) -> list[Link]:
    links = []
    for item in resources(text, "links"):
        spec = item["spec"]
        mac = str(spec.get("permanentAddr") or spec.get("hardwareAddr") or "").lower()
        if not _MAC.match(mac) or mac == "00:00:00:00:00:00":
            mac = str(spec.get("hardwareAddr") or "").lower()
        physical = spec.get("type") == "ether" and not spec.get("kind") and bool(_MAC.match(mac))
        speed = spec.get("speedMbit")
        links.append(
            Link(
                name=_id(item),
                mac=mac,
                carrier=spec.get("linkState") is True and spec.get("operationalState") in ("up", "unknown"),
                physical=physical,
                speed_mbit=speed if isinstance(speed, int) and speed > 0 else 0,
            )
        )
    return links


@dataclass(frozen=True)
class Disk:
    """A block device as ``talosctl get disks`` shows it."""

    name: str
    dev_path: str
    size: int
    pretty_size: str
    model: str
    serial: str
    transport: str
    rotational: bool
    readonly: bool
    cdrom: bool

    @property
    def installable(self) -> bool:
        """A writable disk of at least Talos's minimum size that is not a CD or USB stick."""
        return (
            not self.readonly
            and not self.cdrom
            and self.size >= MIN_INSTALL_BYTES
            and self.transport != "usb"
            and self.dev_path.startswith("/dev/")
        )

    @property
    def selector(self) -> str:
        """What nodes.yaml's ``disk`` should say: the serial (stable across reboots and
        re-cabling), else the device path."""
        return self.serial if _SERIAL.match(self.serial) else self.dev_path

    def describe(self) -> str:
        parts = [self.dev_path, self.pretty_size or f"{self.size} bytes"]
        parts += [
            p for p in (self.transport, self.model, f"serial {self.serial}" if self.serial else "") if p
        ]
        return ", ".join(parts)


_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")


def parse_disks(text: str) -> list[Disk]:
    disks = []
    for item in resources(text, "disks"):
        spec = item["spec"]
        size = spec.get("size")
        disks.append(
            Disk(
                name=_id(item),
                dev_path=str(spec.get("dev_path") or ""),
                size=size if isinstance(size, int) else 0,
                pretty_size=str(spec.get("pretty_size") or ""),
                model=str(spec.get("model") or "").strip(),
                serial=str(spec.get("serial") or "").strip(),
                transport=str(spec.get("transport") or ""),
                rotational=spec.get("rotational") is True,
                readonly=spec.get("readonly") is True,
                cdrom=spec.get("cdrom") is True,
            )
        )
    return disks


@dataclass(frozen=True)
class System:
    """SMBIOS system information: enough to tell machines apart in a comment."""

    manufacturer: str = ""
    product: str = ""
    serial: str = ""
    uuid: str = ""

    def describe(self) -> str:
        words = " ".join(p for p in (self.manufacturer, self.product) if p)
        return ", ".join(p for p in (words, f"serial {self.serial}" if self.serial else "") if p)


def parse_system(text: str) -> System:
    items = resources(text, "systeminformation")
    if not items:
        return System()
    spec = items[0]["spec"]
    return System(
        manufacturer=str(spec.get("manufacturer") or "").strip(),
        product=str(spec.get("productName") or "").strip(),
        serial=str(spec.get("serialnumber") or "").strip(),
        uuid=str(spec.get("uuid") or "").strip(),
    )


def parse_schematic(text: str) -> str | None:
    """The Image Factory schematic the node booted (the ``schematic`` extension's version),
    or None when it runs an image the factory did not build."""
    for item in resources(text, "extensions"):
        metadata = item["spec"].get("metadata")
        if isinstance(metadata, dict) and metadata.get("name") == "schematic":
            version = str(metadata.get("version") or "")
            if _SCHEMATIC.match(version):
                return version
    return None


# --------------------------------------------------------------------------- choosing


@dataclass(frozen=True)
class Discovered:
    """What a maintenance-mode node told us."""

    address: str
    links: tuple[Link, ...]
    disks: tuple[Disk, ...]
    system: System
    schematic: str | None


@dataclass(frozen=True)
class NodeEntry:
    """A ``nodes.yaml`` entry and the notes that go with it (alternatives, guesses)."""

    values: dict[str, Any]
    notes: tuple[str, ...] = field(default=())

    def yaml(self) -> str:
        """The entry as a list item to paste under ``nodes:``, notes as comments above it."""
        lines = [f"# {note}" for note in self.notes]
        for index, (key, value) in enumerate(self.values.items()):
            prefix = "- " if index == 0 else "  "
            lines.append(f"{prefix}{key}: {_scalar(value)}")
        return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z0-9/._:-]+", text) and not text.isdigit() else json.dumps(text)


def choose_link(links: Sequence[Link]) -> tuple[Link, list[str]]:
    """The physical link with a cable in, and notes when that is not clear-cut."""
    physical = [link for link in links if link.physical]
    if not physical:
        raise UserError("the node shows no physical network link (talosctl get links found none)")
    cabled = [link for link in physical if link.carrier]
    if not cabled:
        names = ", ".join(f"{link.name} ({link.mac})" for link in physical)
        raise UserError(f"no network link has a cable in (carrier): {names} — plug one in and try again")
    chosen = max(cabled, key=lambda link: link.speed_mbit)  # several cabled: the fastest, first
    notes = []
    others = [link for link in cabled if link is not chosen]
    if others:
        listed = ", ".join(f"{link.name} {link.mac}" for link in others)
        notes.append(f"also cabled: {listed} — mac_addr is {chosen.name}; change it if another is right")
    return chosen, notes


def choose_disk(disks: Sequence[Disk]) -> tuple[Disk, list[str]]:
    """The install disk: of the installable ones, solid-state before spinning, NVMe before
    the rest, then the smallest (the big ones are usually for data); notes list the others."""
    candidates = [disk for disk in disks if disk.installable]
    if not candidates:
        seen = "; ".join(disk.describe() for disk in disks) or "none"
        raise UserError(f"no disk can take Talos (writable, not USB or CD, at least 10 GB): {seen}")
    order = sorted(candidates, key=lambda d: (d.rotational, d.transport != "nvme", d.size, d.dev_path))
    chosen = order[0]
    notes = [f"install disk: {chosen.describe()}"]
    notes += [f"  other disk: {disk.describe()}" for disk in order[1:]]
    if not _SERIAL.match(chosen.serial):
        notes.append("  the disk reports no serial: disk is its device path, which may change between boots")
    return chosen, notes


def node_entry(found: Discovered, *, name: str, controller: bool) -> NodeEntry:
    """The ``nodes.yaml`` entry for ``found`` (validated the way configure validates it)."""
    if not _NAME.match(name):
        raise UserError(f"--name {name!r} is not a DNS label (lowercase letters, digits and '-')")
    link, link_notes = choose_link(found.links)
    disk, disk_notes = choose_disk(found.disks)
    notes = [f"{name}: {found.system.describe() or 'a machine'}"]
    notes += link_notes + disk_notes
    schematic = found.schematic
    if schematic is None:
        schematic = VANILLA_SCHEMATIC
        notes.append("not booted from an Image Factory image: schematic_id is the plain Talos image")
    values: dict[str, Any] = {
        "name": name,
        "address": found.address,
        "controller": controller,
        "disk": disk.selector,
        "mac_addr": link.mac,
        "schematic_id": schematic,
    }
    return NodeEntry(values, tuple(notes))


def nodes_document(entries: Sequence[NodeEntry]) -> str:
    """A whole ``nodes.yaml`` holding ``entries`` (for a scratch repository set up from
    discovered nodes, e.g. a cluster test)."""
    items = "".join("\n".join(f"  {line}" for line in e.yaml().splitlines()) + "\n" for e in entries)
    return f"---\nnodes:\n{items}"


def next_name(existing: Sequence[str], prefix: str = "k8s-") -> str:
    """The first ``k8s-N`` not in ``existing``."""
    taken = set(existing)
    return next(f"{prefix}{n}" for n in range(len(taken) + 1) if f"{prefix}{n}" not in taken)


# --------------------------------------------------------------------------- running


def read_argv(address: str, resource: str) -> list[str]:
    """``talosctl get RESOURCE`` from a maintenance-mode node (no talosconfig needed)."""
    return ["talosctl", "get", resource, "--insecure", "--nodes", address, "--output", "json"]


def read_node(c: Context, address: str, cwd: Path | None = None) -> Discovered | None:
    """Read the node at ``address`` (under ``--dry`` print the reads and return None)."""
    outputs: dict[str, str] = {}
    for resource in RESOURCES:
        argv = read_argv(address, resource)
        result = runner.run(c, argv, cwd=cwd, check=False, timeout=READ_TIMEOUT)
        if runner.is_dry(c):
            continue
        if result.failed:
            raise UserError(*unreachable(address, argv, result.stderr or result.stdout))
        outputs[resource] = result.stdout
    if runner.is_dry(c):
        return None
    return Discovered(
        address=address,
        links=tuple(parse_links(outputs["links"])),
        disks=tuple(parse_disks(outputs["disks"])),
        system=parse_system(outputs["systeminformation"]),
        schematic=parse_schematic(outputs["extensions"]),
    )


def unreachable(address: str, argv: Sequence[str], output: str) -> Iterator[str]:
    """Why a read failed: every line talosctl said (redacted), and what to check."""
    yield f"cannot read node {address}: `{runner.command_line(argv)}` failed"
    yield from (f"  {line}" for line in runner.redact(output).strip().splitlines() if line.strip())
    yield (
        f"is {address} booted from the Talos ISO/PXE image and in maintenance mode (its console says so), "
        "and reachable on port 50000 from here?"
    )


def discover(
    c: Context,
    ip: str,
    *,
    name: str = "",
    address: str = "",
    controller: bool = True,
    existing: Sequence[str] = (),
) -> NodeEntry | None:
    """Read the node at ``ip`` and return its nodes.yaml entry (None under ``--dry``).

    ``address`` is the static address the node is to have (default: ``ip``, the one it got
    in maintenance mode); ``existing`` are the names already in nodes.yaml, which the default
    name avoids and ``name`` may not repeat."""
    reach = checked_ip(ip, "--ip", required=True)
    static = checked_ip(address, "--address") if address else reach
    chosen = name or next_name(existing)
    if chosen in existing:
        raise UserError(f"--name {chosen}: nodes.yaml already has a node of that name")
    if not _NAME.match(chosen):
        raise UserError(f"--name {chosen!r} is not a DNS label (lowercase letters, digits and '-')")
    found = read_node(c, reach)
    if found is None:
        return None
    return node_entry(replace(found, address=static), name=chosen, controller=controller)


def checked_ip(value: str, flag: str, *, required: bool = False) -> str:
    if not value and required:
        raise UserError(
            f"{flag} is required: the address of the node in maintenance mode, e.g. {flag} 192.168.1.50"
        )
    address = facts.ipv4(value)
    if address is None:
        raise UserError(f"{flag} {value!r} is not an IPv4 address such as 192.168.1.50")
    return address
