"""init --from's mapping of a Taskfile-template checkout, piece by piece: where its config is,
which keys are renamed, dropped or secret. The whole import: tests/test_migrate.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.config import migrate
from tasks.lib.config.document import read_yaml
from tasks.lib.errors import UserError


def test_locate_finds_the_config_or_its_tidy_archive_and_names_other_formats(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text("{}\n")
    assert migrate.locate(str(tmp_path)).config_dir == tmp_path.resolve()
    (tmp_path / "cluster.yaml").unlink()
    for stamp in ("2025-01-01", "2025-06-01"):
        (tmp_path / ".private" / stamp).mkdir(parents=True)
        (tmp_path / ".private" / stamp / "cluster.yaml").write_text("{}\n")
    assert migrate.locate(str(tmp_path)).config_dir.name == "2025-06-01"
    other = tmp_path / "other"
    other.mkdir()
    (other / "cluster.toml").write_text("")
    with pytest.raises(UserError, match="newer TOML format"):
        migrate.locate(str(other))
    with pytest.raises(UserError, match="not a directory"):
        migrate.locate(str(tmp_path / "absent"))


def test_cloudflare_ingress_addr_is_renamed_by_what_else_is_set() -> None:
    assert migrate.rename_target("cloudflare_ingress_addr", {}) == "cloudflare_gateway_addr"
    both = {"cloudflare_tunnel_ingress_addr": "x"}
    assert migrate.rename_target("cloudflare_ingress_addr", both) == "cluster_gateway_addr"
    assert migrate.rename_target("cluster_ingress_addr", {}) == "cluster_gateway_addr"
    assert migrate.rename_target("node_cidr", {}) is None


def test_translate_cluster_takes_secrets_out_renames_and_notes_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "node_cidr: 10.0.0.0/24\n"
        "cluster_ingress_addr: 10.0.0.5\n"
        'cloudflare_token: "tok"\n'
        "cloudflare_cluster_issuer: production\n"
        "mystery: 1\n"
        'node_vlan_tag: ""\n'
    )
    doc = read_yaml(path, "cluster.yaml")
    out = migrate.Import()
    assert migrate.translate_cluster(doc, out) == []
    assert dict(doc.data) == {"node_cidr": "10.0.0.0/24", "cluster_gateway_addr": "10.0.0.5"}
    assert out.secrets == {"cloudflare_token": "tok"}
    assert out.notes == [
        "renamed: cluster.yaml:2: cluster_ingress_addr → cluster_gateway_addr",
        "not mapped: cluster.yaml:4: cloudflare_cluster_issuer: "
        "this repository always issues Let's Encrypt production certificates",
        "not mapped: cluster.yaml:5: mystery: no such setting here, left out",
    ]


def test_a_missing_token_and_a_key_set_twice_stop_the_import(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("cluster_gateway_addr: 10.0.0.5\ncluster_ingress_addr: 10.0.0.6\n")
    problems = [str(p) for p in migrate.translate_cluster(read_yaml(path, "cluster.yaml"), migrate.Import())]
    assert problems == [
        "cluster.yaml:2:23: cluster_ingress_addr: both cluster_ingress_addr and cluster_gateway_addr are set "
        "— keep one",
        "cluster.yaml: cloudflare_token: missing — the Cloudflare API token is required",
    ]


def test_settings_turn_the_templates_strings_into_numbers() -> None:
    assert migrate.settings({"cilium_bgp_node_asn": "64514", "node_vlan_tag": " 7 ", "name": "001"}) == {
        "cilium_bgp_node_asn": 64514,
        "node_vlan_tag": 7,
        "name": "001",
    }
    assert migrate.as_int(True) is None and migrate.as_int("x1") is None
