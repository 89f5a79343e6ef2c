"""What the talos.* tasks read from the rendered talconfig.yaml: the nodes --node picks, the
machine configs genconfig writes, and the reset's flags. Against the fakes: tests/test_talos.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.errors import UserError
from tasks.lib.paths import Paths, repo_paths
from tasks.lib.provision import talos_ops

TALCONFIG = """\
clusterName: home
nodes:
  - hostname: k8s-0
    ipAddress: 192.168.1.10
    controlPlane: true
  - hostname: k8s-1
    ipAddress: 192.168.1.11
"""


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    paths = repo_paths(tmp_path)
    paths.talconfig.parent.mkdir(parents=True)
    paths.talconfig.write_text(TALCONFIG)
    return paths


def test_node_is_chosen_by_name_or_address(paths: Paths) -> None:
    assert [n.hostname for n in talos_ops.chosen(paths, "")] == ["k8s-0", "k8s-1"]
    assert [n.hostname for n in talos_ops.chosen(paths, "192.168.1.11")] == ["k8s-1"]
    with pytest.raises(UserError):
        talos_ops.chosen(paths, "k8s-9")


def test_expected_and_written_machine_configs(paths: Paths) -> None:
    folder = paths.talos / "clusterconfig"
    assert talos_ops.expected_configs(paths) == [folder / "home-k8s-0.yaml", folder / "home-k8s-1.yaml"]
    assert talos_ops.machine_configs(paths) == []
    folder.mkdir()
    (folder / "home-k8s-0.yaml").write_text("")
    (folder / "talosconfig").write_text("")
    assert talos_ops.machine_configs(paths) == [folder / "home-k8s-0.yaml"]


def test_reset_wipes_two_partitions_unless_the_whole_disk_is_asked_for() -> None:
    assert talos_ops.wipe_flags(False) == [
        "--system-labels-to-wipe=STATE",
        "--system-labels-to-wipe=EPHEMERAL",
    ]
    assert talos_ops.wipe_flags(True) == []
    assert talos_ops.wiped(True) == "whole system disk"
