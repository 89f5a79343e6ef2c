"""The day-2 tasks' pieces: talosctl's version, etcd status and dry-run output read, nodes
chosen by --node, and the rolling order."""

from __future__ import annotations

import pytest

from tasks.lib.errors import UserError
from tasks.lib.provision import day2, facts
from tests import talos_shapes as shapes

IP = "192.168.1.50"


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
