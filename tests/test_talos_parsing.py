"""The parsers behind talos.discover and the day-2 tasks, on talosctl's real output shapes and
on anything else (property tests): they return what the shapes say or raise one UserError,
never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.lib.errors import UserError
from tasks.lib.provision import day2, discover
from tests import talos_shapes as shapes

IP = "192.168.1.50"


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
