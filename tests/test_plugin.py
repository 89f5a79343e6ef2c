"""The makejinja plugin: its filters and the data it hands to the templates."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import Environment

from tasks.lib.config.render import activated
from tasks.lib.config.schema import ClusterConfig
from tasks.lib.config.template_context import RenderContext

PLUGIN = Path(__file__).resolve().parent.parent / "templates" / "scripts" / "plugin.py"
_spec = importlib.util.spec_from_file_location("home_ops_template_plugin", PLUGIN)
assert _spec is not None and _spec.loader is not None
plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)


def test_nthhost() -> None:
    assert plugin.nthhost("192.168.1.0/24", 1) == "192.168.1.1"
    assert plugin.nthhost("10.43.0.0/16", 10) == "10.43.0.10"
    assert plugin.nthhost("10.43.0.0/16", 256) == "10.43.1.0"
    assert plugin.nthhost("192.168.1.0/24", -2) == "192.168.1.254"


def test_nthhost_outside_the_network_fails() -> None:
    with pytest.raises(IndexError):
        plugin.nthhost("192.168.1.0/30", 4)


@given(
    network=st.builds(
        lambda address, prefix: ipaddress.ip_network(f"{address}/{prefix}", strict=False),
        st.ip_addresses(v=4),
        st.integers(min_value=8, max_value=30),
    ),
    data=st.data(),
)
def test_nthhost_stays_in_the_network(network: ipaddress.IPv4Network, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=network.num_addresses - 1))
    host = ipaddress.ip_address(plugin.nthhost(str(network), index))
    assert host in network
    assert int(host) - int(network.network_address) == index


def test_prefixlen() -> None:
    assert plugin.prefixlen("192.168.1.0/24") == 24
    assert plugin.prefixlen("10.0.0.0/8") == 8
    with pytest.raises(ValueError):
        plugin.prefixlen("192.168.1.1/24")  # host bits: the config validation rejects these


def test_is_device_path() -> None:
    assert plugin.is_device_path("/dev/sda")
    assert plugin.is_device_path("/dev/disk/by-id/nvme-Samsung_SSD")
    assert not plugin.is_device_path("S4EWNX0R123456")
    assert not plugin.is_device_path("sda")


def test_tojson_compact_is_a_valid_yaml_scalar_and_not_html_escaped() -> None:
    from ruamel.yaml import YAML

    value = 'it\'s <a> & "quoted"\\ é'
    encoded = plugin.tojson_compact(value)
    assert "\\u0027" not in encoded and "\\u003c" not in encoded
    assert YAML(typ="safe", pure=True).load(f"key: {encoded}\n") == {"key": value}
    document = {"AccountTag": "a", "TunnelSecret": "s", "TunnelID": "t"}
    assert plugin.tojson_compact(document) == '{"AccountTag":"a","TunnelSecret":"s","TunnelID":"t"}'
    assert json.loads(plugin.tojson_compact(document)) == document


def test_plugin_serves_the_active_context_and_registers_its_filters() -> None:
    data = {"node_cidr": "192.168.1.0/24", "nodes": []}
    context = RenderContext(ClusterConfig({"node_cidr": "192.168.1.0/24"}, []), data, (), ())
    env = Environment()
    with activated(context):
        instance = plugin.Plugin(env, {}, None)
    assert instance.data() is data
    assert env.bytecode_cache is not None  # compiled templates are reused across renders
    names = {f.__name__ for f in instance.filters()}
    assert names == {"nthhost", "prefixlen", "is_device_path", "tojson_compact", "yaml"}
    assert list(instance.functions()) == []


#: Any text that can be written as UTF-8 (lone surrogates cannot).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)


@given(value=TEXT)
def test_yaml_filter_never_adds_structure(value: str) -> None:
    """Whatever the value, as a mapping value (top level or nested), a list item or a flow
    item, one scalar comes back unchanged and the next key is still the next key."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    scalar = plugin.yaml(value)
    assert "\n" not in scalar
    assert yaml.load(f"key: {scalar}\nnext: 1\n") == {"key": value, "next": 1}
    assert yaml.load(f"outer:\n  key: {scalar}\n  next: 1\n") == {"outer": {"key": value, "next": 1}}
    assert yaml.load(f"list:\n  - {scalar}\n  - x\n") == {"list": [value, "x"]}
    assert yaml.load(f"flow: [{scalar}, x]\n") == {"flow": [value, "x"]}


def test_yaml_filter_keeps_types_and_refuses_the_rest() -> None:
    from ruamel.yaml import YAML

    assert plugin.yaml(True) == "true" and plugin.yaml(False) == "false"
    assert plugin.yaml(1500) == "1500"
    for confusable in ("true", "null", "~", "1e3", "0x1F", "2026-01-01", "1_000", ""):
        assert YAML(typ="safe", pure=True).load(f"k: {plugin.yaml(confusable)}") == {"k": confusable}
    with pytest.raises(TypeError):
        plugin.yaml(1.5)
    with pytest.raises(TypeError):
        plugin.yaml(None)
    with pytest.raises(ValueError):
        plugin.yaml("lone \ud800 surrogate")
