"""What talosctl prints, in its real shapes, for the fakes of the ``talos.*`` tests.

Taken from talosctl's source at the pinned Talos version (cmd/talosctl and pkg/machinery):

- ``get RESOURCE --output json`` (output/json.go): per resource, the COSI resource marshalled
  to YAML, read back into a map, ``node`` added, written as JSON indented by four spaces with
  sorted keys; the objects follow each other (a stream, not an array). The YAML round trip
  turns a numeric id such as ExtensionStatus ``0`` into a number.
- specs: network.LinkStatusSpec, block.DiskSpec, hardware.SystemInformationSpec and the
  Image Factory's "schematic" extension (extensions.Layer), with their yaml field names;
- ``version`` (version.go + machinery/version): ``Client:``, the client's version, ``Server:``,
  then per node ``NODE:``, the version template and ``Enabled:``;
- ``etcd status`` (etcd.go): a tabwriter table, padding 3, NODE column when nodes are named;
- ``apply-config --dry-run``: the server's "Dry run summary" (machined's ApplyConfiguration)
  on stderr, the diff as pkg/machinery/config/configdiff writes it.

These were checked by marshalling real resources with the machinery module.
"""

from __future__ import annotations

import json
from typing import Any

CREATED = "2026-12-03T14:03:41Z"


def resource(node: str, namespace: str, kind: str, rid: str | int, spec: dict[str, Any]) -> str:
    item = {
        "metadata": {
            "created": CREATED,
            "id": rid,
            "namespace": namespace,
            "owner": None,
            "phase": "running",
            "type": kind,
            "updated": CREATED,
            "version": "undefined",
        },
        "node": node,
        "spec": spec,
    }
    return json.dumps(item, indent=4, sort_keys=True) + "\n"


def link(node: str, name: str, mac: str, *, carrier: bool, kind: str = "", speed: int = 1000) -> str:
    spec: dict[str, Any] = {
        "broadcastAddr": "ff:ff:ff:ff:ff:ff",
        "busPath": "0000:00:1f.6",
        "driver": "e1000e",
        "duplex": "Full",
        "flags": "UP,BROADCAST,RUNNING,MULTICAST,LOWER_UP" if carrier else "BROADCAST,MULTICAST",
        "hardwareAddr": mac,
        "index": 2,
        "kind": kind,
        "linkIndex": 0,
        "linkState": carrier,
        "mtu": 1500,
        "operationalState": "up" if carrier else "down",
        "permanentAddr": mac,
        "port": "TwistedPair",
        "queueDisc": "pfifo_fast",
        "slaveKind": "",
        "type": "ether",
    }
    if carrier:
        spec["speedMbit"] = speed
    return resource(node, "network", "LinkStatuses.net.talos.dev", name, spec)


def loopback(node: str) -> str:
    spec = {
        "broadcastAddr": "",
        "duplex": "Unknown",
        "flags": "UP,LOOPBACK,RUNNING,LOWER_UP",
        "hardwareAddr": "00:00:00:00:00:00",
        "index": 1,
        "kind": "",
        "linkIndex": 0,
        "linkState": True,
        "mtu": 65536,
        "operationalState": "unknown",
        "permanentAddr": "",
        "port": "Other",
        "queueDisc": "noqueue",
        "slaveKind": "",
        "type": "loopback",
    }
    return resource(node, "network", "LinkStatuses.net.talos.dev", "lo", spec)


def disk(
    node: str,
    name: str,
    size: int,
    pretty: str,
    *,
    model: str = "",
    serial: str = "",
    transport: str = "sata",
    cdrom: bool = False,
    readonly: bool = False,
    rotational: bool = False,
) -> str:
    spec: dict[str, Any] = {
        "cdrom": cdrom,
        "dev_path": f"/dev/{name}",
        "io_size": 2048 if cdrom else 512,
        "pretty_size": pretty,
        "readonly": readonly,
        "sector_size": 2048 if cdrom else 512,
        "size": size,
        "sub_system": "/sys/class/block",
        "transport": transport,
    }
    if model:
        spec["model"] = model
    if serial:
        spec["serial"] = serial
        spec["symlinks"] = [f"/dev/disk/by-id/ata-{model.replace(' ', '_')}_{serial}"]
    if rotational:
        spec["rotational"] = True
    return resource(node, "runtime", "Disks.block.talos.dev", name, spec)


def system_information(node: str) -> str:
    spec = {
        "manufacturer": "Intel(R) Client Systems",
        "productName": "NUC12WSHi5",
        "serialnumber": "G6WS12345678",
        "skuNumber": "RNUC12WSHI50000",
        "uuid": "8d7e4c2a-0000-0000-0000-48210b123456",
        "version": "M46422-303",
        "wakeUpType": "Power Switch",
    }
    return resource(node, "hardware", "SystemInformations.hardware.talos.dev", "systeminformation", spec)


def schematic_extension(node: str, schematic: str) -> str:
    spec = {
        "image": "0.sqsh",
        "metadata": {
            "author": "Image Factory (https://factory.talos.dev)",
            "compatibility": {"talos": {"version": ">= 1.0.0"}},
            "description": (
                "Virtual extension which specifies the schematic of the image built with schematic."
            ),
            "name": "schematic",
            "version": schematic,
        },
    }
    return resource(node, "runtime", "ExtensionStatuses.runtime.talos.dev", 0, spec)


def version(node: str, server_tag: str, client_tag: str = "v1.13.8") -> str:
    block = (
        "\tTag:         {tag}\n\tSHA:         3de49322\n\tBuilt:       \n"
        "\tGo version:  go1.26.5\n\tOS/Arch:     {os}\n"
    )
    return (
        "Client:\n"
        + block.format(tag=client_tag, os="linux/amd64")
        + "Server:\n"
        + f"\tNODE:        {node}\n"
        + block.format(tag=server_tag, os="linux/amd64")
        + "\tEnabled:     RBAC\n"
    )


ETCD_HEADER = (
    "NODE", "MEMBER", "DB SIZE", "IN USE", "LEADER", "RAFT INDEX", "RAFT TERM",
    "RAFT APPLIED INDEX", "LEARNER", "PROTOCOL", "STORAGE", "ERRORS",
)  # fmt: skip


def etcd_status(rows: list[tuple[str, str, str, bool, str]]) -> str:
    """``talosctl etcd status --nodes A,B``: rows of (node, member id, leader id, learner, errors)."""
    table = [list(ETCD_HEADER)]
    for node, member, leader, learner, errors in rows:
        table.append(
            [node, member, "12 MB", "4.1 MB (34.20%)", leader, "4711", "3", "4711", str(learner).lower(),
             "3.6.0", "3.6.0", errors]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(ETCD_HEADER))]
    lines = []
    for row in table:  # tabwriter: each cell padded to its column's width + 3, the last not padded
        cells = [cell.ljust(widths[i] + 3) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + row[-1])
    return "\n".join(lines) + "\n"


DIFF = """--- a
+++ b
@@ -55,7 +55,7 @@
     sysctls:
         fs.inotify.max_user_instances: "8192"
         fs.inotify.max_user_watches: "1048576"
-        net.core.rmem_max: "7500000"
+        net.core.rmem_max: "8500000"
         net.core.wmem_max: "7500000"
         net.ipv4.neigh.default.gc_thresh1: "4096"
         net.ipv4.neigh.default.gc_thresh2: "8192"
"""


def dry_run(diff: str = DIFF, reboot: bool = False) -> str:
    """stderr of ``talosctl apply-config --dry-run``."""
    summary = "Applied configuration with a reboot" if reboot else "Applied configuration without a reboot"
    return f"Dry run summary:\n{summary} (skipped in dry-run).\nConfig diff:\n\n{diff or 'No changes.'}\n"


# --------------------------------------------------------------------------- a QEMU VM
#
# A node that `talosctl cluster create qemu --presets iso,maintenance` booted: a virtio NIC
# (pkg/provision/providers/qemu/launch.go: virtio-net-pci), a virtio-blk system disk without
# a serial (launch.go adds one only when the disk is given one) that the kernel reports as
# rotational, the ISO on a SATA CD drive, the squashfs on a loop device, SMBIOS from QEMU's
# q35 machine, and the Image Factory ISO's schematic extension (the plain image).

VANILLA = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"


def qemu_link(node: str, mac: str) -> str:
    spec: dict[str, Any] = {
        "broadcastAddr": "ff:ff:ff:ff:ff:ff",
        "busPath": "0000:00:02.0",
        "driver": "virtio_net",
        "duplex": "Unknown",
        "flags": "UP,BROADCAST,RUNNING,MULTICAST,LOWER_UP",
        "hardwareAddr": mac,
        "index": 2,
        "kind": "",
        "linkIndex": 0,
        "linkState": True,
        "mtu": 1500,
        "operationalState": "up",
        "permanentAddr": mac,
        "port": "Other",
        "queueDisc": "fq_codel",
        "slaveKind": "",
        "type": "ether",
    }
    return resource(node, "network", "LinkStatuses.net.talos.dev", "eth0", spec)


#: talosctl cluster create qemu's default disks (clusterops/options.go: "virtio:10GiB,virtio:6GiB").
QEMU_DISKS = (10 * 1024**3, 6 * 1024**3)


def qemu_node(node: str, mac: str) -> dict[str, str]:
    """The four ``talosctl get ... --insecure -o json`` outputs of a maintenance-mode VM
    with talosctl's default disks (the system disk, and a second one for user volumes)."""
    disks = (
        disk(node, "loop0", 74_448_896, "74 MB", transport="", readonly=True)
        + disk(
            node,
            "sr0",
            312_475_648,
            "312 MB",
            model="QEMU DVD-ROM",
            transport="ata",
            cdrom=True,
            readonly=True,
        )
        + "".join(
            disk(node, name, size, f"{size / 1000**3:.0f} GB", transport="virtio", rotational=True)
            for name, size in zip(("vda", "vdb"), QEMU_DISKS, strict=True)
        )
    )
    system = {
        "manufacturer": "QEMU",
        "productName": "Standard PC (Q35 + ICH9, 2009)",
        "uuid": "0f8e3a1c-5d2b-4e6f-9a7b-1c2d3e4f5a6b",
        "version": "pc-q35-8.2",
        "wakeUpType": "Power Switch",
    }
    return {
        "links": loopback(node) + qemu_link(node, mac),
        "disks": disks,
        "systeminformation": resource(
            node, "hardware", "SystemInformations.hardware.talos.dev", "systeminformation", system
        ),
        "extensions": schematic_extension(node, VANILLA),
    }
