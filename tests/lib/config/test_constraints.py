"""What one value may be: each constraint's verdict, its fix hint, and its conversion."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.lib.config import constraints as c


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.0/16", None),
        ("10.0.0.1/16", "'10.0.0.1/16' has host bits set — use 10.0.0.0/16"),
        ("10.0.0.0", "'10.0.0.0' has no prefix length — use e.g. 10.0.0.0/24"),
        ("10.0.0.0/255.255.0.0", "'10.0.0.0/255.255.0.0' is not in prefix-length form — use 10.0.0.0/16"),
        ("10.0.0.0/33", "'10.0.0.0/33' has an invalid prefix length"),
        (24, "24 is not a CIDR such as 192.168.1.0/24"),
    ],
)
def test_cidr(value: Any, message: str | None) -> None:
    assert c.Cidr().check(value) == message


def test_choices_patterns_and_hosts_suggest_the_usual_slip() -> None:
    assert c.Choice(("dsr", "snat")).check(" DSR") == "' DSR' must be one of dsr, snat — use dsr"
    mac = c.Pattern(c.MAC, "a MAC address")
    assert mac.check("00:00:5e:00:53:01") is None
    assert (
        mac.check("00-00-5E-00-53-01") == "'00-00-5E-00-53-01' must be a MAC address — use 00:00:5e:00:53:01"
    )
    assert mac.check("00:00:5e:00:53:01\n") is not None  # a trailing newline does not slip by
    assert c.Host().check("NAS.lan").endswith("— use nas.lan")  # type: ignore[union-attr]
    assert c.Host().check("192.168.1.1") is None


def test_integers_are_ascii_digits_within_range() -> None:
    assert c.ASN.check("64514") is None and c.ASN.convert("64514") == 64514
    for value in (True, 0, "६४", "1.5", 1.0, 4_294_967_296):
        assert c.ASN.check(value) is not None, value


def test_lists_name_the_first_bad_item_and_their_length() -> None:
    servers = c.ListOf(c.Address(), max_items=2)
    assert servers.check(["1.1.1.1", "x"]) == "item 2: 'x' is not an IPv4 address"
    assert servers.check(["1.1.1.1"] * 3) == "has 3 items — at most 2"
    assert servers.check("1.1.1.1") == "'1.1.1.1' must be a list"
    assert servers.convert(["1.1.1.1"]) == ("1.1.1.1",)


def test_disks_and_tokens() -> None:
    assert c.Disk().check("/dev/disk/by-id/nvme-Samsung_1") is None
    assert c.Disk().check("S4EWNX0R123456") is None
    assert c.Disk().check("/dev/../etc/passwd") is not None
    secret = "has space"
    message = c.Token().check(secret)
    assert message is not None and secret not in message  # a token is never echoed


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("main", None),
        ("feature/x-1", None),
        ("", "it is empty"),
        ("-x", "it may not start with '-'"),
        ("a..b", "it may not contain '..'"),
        ("a/.b", "no part may start with '.'"),
        ("a.lock", "no part may end with '.lock'"),
        ("${BRANCH}", "Flux would substitute the '${...}' in it"),
        ("a b", "it may not contain ' '"),
    ],
)
def test_git_ref_problem(name: str, reason: str | None) -> None:
    assert c.git_ref_problem(name) == reason


@given(st.text(max_size=30))
def test_shown_is_short_and_no_check_raises(value: str) -> None:
    assert len(c.shown(value * 10)) <= 70
    for constraint in (c.Cidr(), c.Host(), c.Disk(), c.GitBranch(), c.ASN, c.Address()):
        assert constraint.check(value) is None or isinstance(constraint.check(value), str)
