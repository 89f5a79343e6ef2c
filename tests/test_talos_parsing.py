"""The parsers behind talos.discover and the day-2 tasks, on talosctl's real output shapes and
on anything else (property tests): they return what the shapes say or raise one UserError,
never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.lib.errors import UserError
from tasks.lib.provision import day2, discover, facts
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


def test_server_version_is_the_servers_not_the_clients() -> None:
    assert day2.server_version(shapes.version(IP, "v1.13.0", client_tag="v1.13.8")) == "v1.13.0"
    assert day2.server_version("Client:\n\tTag:         v1.13.8\n") is None


def test_etcd_status_healthy_and_not() -> None:
    healthy = shapes.etcd_status(
        [
            ("10.0.0.1", "aa", "aa", False, ""),
            ("10.0.0.2", "bb", "aa", False, ""),
            ("10.0.0.3", "cc", "aa", False, ""),
        ]
    )
    assert day2.etcd_problems(healthy, 3) == []
    assert day2.etcd_problems(healthy, 4) == ["3 of 4 etcd members answered"]
    sick = shapes.etcd_status(
        [("10.0.0.1", "aa", "aa", False, "NOSPACE, CORRUPT"), ("10.0.0.2", "bb", "aa", True, "")]
    )
    assert day2.etcd_problems(sick, 2) == [
        "10.0.0.2: learner, not yet a voting member",
        "10.0.0.1: NOSPACE, CORRUPT",
    ]
    split = shapes.etcd_status([("10.0.0.1", "aa", "aa", False, ""), ("10.0.0.2", "bb", "bb", False, "")])
    assert day2.etcd_problems(split, 2) == ["the etcd members do not agree on a leader"]


def test_dry_run_summary() -> None:
    changed = day2.parse_dry_run(shapes.dry_run(reboot=True))
    assert changed.changed and changed.reboots
    assert changed.summary == "Applied configuration with a reboot (skipped in dry-run)."
    assert changed.diff.startswith("--- a\n+++ b\n@@ -55,7 +55,7 @@")
    unchanged = day2.parse_dry_run("WARNING: something\n" + shapes.dry_run(""))
    assert not unchanged.changed and not unchanged.reboots
    with pytest.raises(UserError):
        day2.parse_dry_run("error: rpc error")


NODES = [
    facts.TalosNode("k8s-0", ("10.0.0.10",), True, None),
    facts.TalosNode("k8s-1", ("10.0.0.11", "10.0.1.11"), False, None),
    facts.TalosNode("k8s-2", ("10.0.0.12",), True, None),
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ["k8s-0", "k8s-1", "k8s-2"]),
        ("k8s-1", ["k8s-1"]),
        ("10.0.1.11", ["k8s-1"]),
        (" 10.0.0.12 ", ["k8s-2"]),
    ],
)
def test_select_nodes_by_name_or_any_address(value: str, expected: list[str]) -> None:
    assert [n.hostname for n in day2.select_nodes(NODES, value, "talconfig.yaml")] == expected


def test_rolling_order_is_controllers_first() -> None:
    assert [n.hostname for n in day2.rolling_order(NODES)] == ["k8s-0", "k8s-2", "k8s-1"]


# properties ----------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
PARSERS = [discover.parse_links, discover.parse_disks, discover.parse_system, discover.parse_schematic]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_one_user_error(text: str) -> None:
    for parser in PARSERS:
        try:
            parser(text)
        except UserError as error:
            assert len(error.lines) == 1
    day2.server_version(text)
    day2.etcd_problems(text, 3)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["metadata", "spec", "node"]), json_values), max_size=4))
def test_any_json_stream_parses_or_is_one_user_error(items: list[dict[str, object]]) -> None:
    text = "".join(json.dumps(item, indent=4) + "\n" for item in items)
    for parser in PARSERS:
        try:
            parser(text)
        except UserError as error:
            assert len(error.lines) == 1


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=len(shapes.link(IP, "enp1s0", "00:00:5e:00:53:aa", carrier=True))))
def test_truncated_output_is_one_user_error(cut: int) -> None:
    text = shapes.link(IP, "enp1s0", "00:00:5e:00:53:aa", carrier=True)
    try:
        links = discover.parse_links(text[:cut])
    except UserError as error:
        assert len(error.lines) == 1
    else:
        assert links in ([], discover.parse_links(text))


def test_oversized_output_is_refused() -> None:
    with pytest.raises(UserError, match="larger than 4 MiB"):
        discover.parse_links(" " * (discover.MAX_OUTPUT + 1))


def test_a_nodes_document_of_discovered_entries_passes_the_schema(tmp_path) -> None:
    """What a cluster test writes after discovering its nodes: configure's own validation accepts it."""
    import shutil

    from tasks.lib.config.checks import load_config
    from tests.conftest import EXAMPLE_INPUTS

    found = discover.Discovered(
        address="192.168.1.20",
        links=tuple(discover.parse_links(shapes.link(IP, "eth0", "00:00:5e:00:53:20", carrier=True))),
        disks=tuple(
            discover.parse_disks(shapes.disk(IP, "vda", 21_474_836_480, "21 GB", transport="virtio"))
        ),
        system=discover.System(),
        schematic=None,
    )
    entries = [
        discover.node_entry(found, name="k8s-0", controller=True),
        discover.node_entry(
            discover.replace(found, address="192.168.1.21", links=tuple(discover.parse_links(
                shapes.link(IP, "eth0", "00:00:5e:00:53:21", carrier=True)))),
            name="k8s-1",
            controller=False,
        ),
    ]  # fmt: skip
    shutil.copy(EXAMPLE_INPUTS / "cluster.yaml", tmp_path / "cluster.yaml")
    (tmp_path / "nodes.yaml").write_text(discover.nodes_document(entries))
    loaded = load_config(tmp_path / "cluster.yaml", tmp_path / "nodes.yaml", tmp_path).nodes
    assert [(n["name"], n["disk"], n["schematic_id"]) for n in loaded] == [
        ("k8s-0", "/dev/vda", discover.VANILLA_SCHEMATIC),
        ("k8s-1", "/dev/vda", discover.VANILLA_SCHEMATIC),
    ]
