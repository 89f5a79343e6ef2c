"""talos.discover's parsers on talosctl's real output shapes, and the link and disk it
chooses. Any input at all: tests/test_talos_parsing.py."""

from __future__ import annotations

import pytest

from tasks.lib.errors import UserError
from tasks.lib.provision import discover
from tests import talos_shapes as shapes

IP = "192.168.1.50"


def test_links_from_the_real_shape() -> None:
    text = shapes.loopback(IP) + shapes.link(IP, "enp1s0", "00:00:5e:00:53:aa", carrier=False)
    text += shapes.link(IP, "enp2s0", "00:00:5e:00:53:bb", carrier=True, speed=2500)
    text += shapes.link(IP, "bond0", "00:00:5e:00:53:cc", carrier=True, kind="bond")
    links = discover.parse_links(text)
    assert [(link.name, link.physical, link.carrier) for link in links] == [
        ("lo", False, True),
        ("enp1s0", True, False),
        ("enp2s0", True, True),
        ("bond0", False, True),
    ]
    chosen, notes = discover.choose_link(links)
    assert (chosen.name, chosen.mac, notes) == ("enp2s0", "00:00:5e:00:53:bb", [])


def test_of_several_cabled_links_the_fastest_and_a_note() -> None:
    text = shapes.link(IP, "eno1", "00:00:5e:00:53:01", carrier=True, speed=1000)
    text += shapes.link(IP, "enp5s0", "00:00:5e:00:53:02", carrier=True, speed=10000)
    chosen, notes = discover.choose_link(discover.parse_links(text))
    assert chosen.name == "enp5s0"
    assert notes == [
        "also cabled: eno1 00:00:5e:00:53:01 — mac_addr is enp5s0; change it if another is right"
    ]


def test_disks_from_the_real_shape() -> None:
    text = shapes.disk(IP, "sda", 512_110_190_592, "512 GB", model="Samsung SSD 870", serial="S6PNNS0T123456")
    text += shapes.disk(IP, "sr0", 0, "0 B", model="QEMU DVD-ROM", cdrom=True, readonly=True)
    disks = discover.parse_disks(text)
    assert [(d.dev_path, d.installable, d.selector) for d in disks] == [
        ("/dev/sda", True, "S6PNNS0T123456"),
        ("/dev/sr0", False, "/dev/sr0"),
    ]


def test_a_disk_without_a_serial_is_its_path_and_says_so() -> None:
    chosen, notes = discover.choose_disk(
        discover.parse_disks(shapes.disk(IP, "vda", 21_474_836_480, "21 GB"))
    )
    assert chosen.selector == "/dev/vda"
    assert any("no serial" in note for note in notes)


def test_no_installable_disk_is_one_line() -> None:
    text = shapes.disk(IP, "sdb", 32_010_928_128, "32 GB", model="Cruzer", serial="4C530001", transport="usb")
    with pytest.raises(UserError) as raised:
        discover.choose_disk(discover.parse_disks(text))
    assert raised.value.lines == [
        "no disk can take Talos (writable, not USB or CD, at least 10 GB): "
        "/dev/sdb, 32 GB, usb, Cruzer, serial 4C530001"
    ]


def test_schematic_and_system_from_the_real_shapes() -> None:
    assert discover.parse_schematic(shapes.schematic_extension(IP, "d" * 64)) == "d" * 64
    assert discover.parse_schematic("") is None
    system = discover.parse_system(shapes.system_information(IP))
    assert system.describe() == "Intel(R) Client Systems NUC12WSHi5, serial G6WS12345678"
