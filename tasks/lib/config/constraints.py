"""Constraints: what one value of the config may be, with the message when it is not.

Each :class:`Constraint` checks a value (returning a one-line message, or None), converts a
valid one to its typed form, and names itself for the reference documentation. Patterns
match the whole value (``re.fullmatch``: a trailing newline is an error), integers are
ASCII digits, and no message repeats more than the start of a long value.
"""

from __future__ import annotations

import ipaddress
import re
import reprlib
from dataclasses import dataclass
from typing import Any

IPv4Addr = ipaddress.IPv4Address
IPv4Net = ipaddress.IPv4Network

#: Longest string any setting may hold (a /dev/disk/by-id path is well below).
MAX_STRING = 512
#: How much of a value a message shows.
SHOWN = reprlib.Repr()
SHOWN.maxstring = SHOWN.maxother = 60
SHOWN.maxlist = SHOWN.maxdict = SHOWN.maxtuple = 4
SHOWN.maxlevel = 2


def shown(value: Any) -> str:
    """``repr(value)``, cut short so that no message ever echoes a whole long value."""
    return SHOWN.repr(value)


def plain(value: Any) -> Any:
    """ruamel's scalar subclasses (ScalarFloat, CommentedSeq, ...) as plain Python."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def is_set(value: Any) -> bool:
    return value is not None and value != ""


# --------------------------------------------------------------------------- constraints


class Constraint:
    """What a value may be: ``check`` returns an error message (or None), ``convert`` the
    typed value of a valid one, ``doc`` the phrase the reference documentation shows."""

    doc = ""
    #: Longest string the value (or an item of it) may be.
    max_length = MAX_STRING

    def check(self, value: Any) -> str | None:
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        return plain(value)

    def __call__(self, value: Any) -> str | None:
        return self.check(value)


def parse_address(value: Any) -> IPv4Addr | None:
    if not isinstance(value, str):
        return None
    try:
        return IPv4Addr(value)
    except ValueError:
        return None


class Address(Constraint):
    doc = "IPv4 address"

    def check(self, value: Any) -> str | None:
        if parse_address(value) is None:
            return f"{shown(value)} is not an IPv4 address"
        return None


class Cidr(Constraint):
    doc = "IPv4 CIDR in canonical form (no host bits), e.g. `10.0.0.0/16`"

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"{shown(value)} is not a CIDR such as 192.168.1.0/24"
        try:
            network = IPv4Net(value)
        except ipaddress.NetmaskValueError:
            return f"{shown(value)} has an invalid prefix length"
        except ValueError:
            try:
                canonical = IPv4Net(value, strict=False)
            except ValueError:
                return f"{shown(value)} is not a CIDR such as 192.168.1.0/24"
            return f"{shown(value)} has host bits set — use {canonical}"
        if "/" not in value:
            return f"{shown(value)} has no prefix length — use e.g. {value}/24"
        if str(network) != value:  # a netmask (10.0.0.0/255.0.0.0) instead of a prefix length
            return f"{shown(value)} is not in prefix-length form — use {network}"
        return None


HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


class Host(Constraint):
    doc = "IPv4 address or lowercase host name"

    def check(self, value: Any) -> str | None:
        if parse_address(value) is not None:
            return None
        if isinstance(value, str) and HOSTNAME.fullmatch(value):
            return None
        return f"{shown(value)} is neither an IPv4 address nor a host name{fix_hint(value, HOSTNAME)}"


class Boolean(Constraint):
    doc = "`true` or `false`"

    def check(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else f"{shown(value)} must be true or false"

    def convert(self, value: Any) -> bool:
        return bool(value)


DIGITS = re.compile(r"[0-9]{1,20}")


def as_int(value: Any) -> int | None:
    """An int, or a string of ASCII digits ("64514"); anything else (bools, floats,
    superscript or other Unicode digits that ``int()`` would choke on) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str) and DIGITS.fullmatch(value):
        return int(value)
    return None


@dataclass(frozen=True)
class IntRange(Constraint):
    low: int
    high: int

    @property
    def doc(self) -> str:  # type: ignore[override]
        return f"whole number {self.low}–{self.high}"

    def check(self, value: Any) -> str | None:
        number = as_int(value)
        if number is None or not self.low <= number <= self.high:
            return f"{shown(value)} must be a whole number from {self.low} to {self.high}"
        return None

    def convert(self, value: Any) -> int | None:
        return as_int(value)


@dataclass(frozen=True)
class Choice(Constraint):
    choices: tuple[str, ...]

    @property
    def doc(self) -> str:  # type: ignore[override]
        return " or ".join(f"`{c}`" for c in self.choices)

    def check(self, value: Any) -> str | None:
        if isinstance(value, str) and value in self.choices:
            return None
        return f"{shown(value)} must be one of {', '.join(self.choices)}{fix_hint(value, *self.choices)}"


def fix_hint(value: Any, *accepted: re.Pattern[str] | str) -> str:
    """`` — use X`` when a usual slip (case, surrounding blanks, '-' for ':') gives a value
    that is accepted; else ''."""
    if not isinstance(value, str) or len(value) > MAX_STRING:
        return ""
    candidates = (value.strip(), value.strip().lower(), value.strip().lower().replace("-", ":"))
    for candidate in candidates:
        if candidate == value:
            continue
        for pattern in accepted:
            ok = pattern.fullmatch(candidate) if isinstance(pattern, re.Pattern) else pattern == candidate
            if ok:
                return f" — use {candidate}"
    return ""


@dataclass(frozen=True)
class Pattern(Constraint):
    """A string the whole of which matches ``regex`` (a trailing newline does not slip by)."""

    regex: re.Pattern[str]
    description: str  # what the value must be, for messages ("a DNS label ...")
    doc_text: str = ""

    @property
    def doc(self) -> str:  # type: ignore[override]
        return self.doc_text or self.description

    def check(self, value: Any) -> str | None:
        if isinstance(value, str) and self.regex.fullmatch(value):
            return None
        return f"{shown(value)} must be {self.description}{fix_hint(value, self.regex)}"


@dataclass(frozen=True)
class ListOf(Constraint):
    item: Constraint
    max_items: int = 64

    @property
    def doc(self) -> str:  # type: ignore[override]
        return f"list of: {self.item.doc}"

    def check(self, value: Any) -> str | None:
        if not isinstance(value, list):
            return f"{shown(value)} must be a list"
        if len(value) > self.max_items:
            return f"has {len(value)} items — at most {self.max_items}"
        for index, element in enumerate(value):
            if (message := self.item(element)) is not None:
                return f"item {index + 1}: {message}"
        return None

    def convert(self, value: Any) -> tuple[Any, ...]:
        return tuple(self.item.convert(v) for v in value)


class GitBranch(Constraint):
    """A branch name git accepts (``git check-ref-format --branch``), in printable characters."""

    doc = "a branch name git accepts (`git check-ref-format --branch`)"

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"{shown(value)} must be a branch name"
        reason = git_ref_problem(value)
        return f"{shown(value)} is not a valid git branch name: {reason}" if reason else None


def git_ref_problem(name: str) -> str | None:
    """Why ``name`` is not a valid branch name by git's check-ref-format rules, or None."""
    if not name:
        return "it is empty"
    if not name.isprintable():
        return "it holds a control or invisible character"
    bad = sorted({c for c in name if c in " ~^:?*[\\" or ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        return f"it may not contain {' '.join(repr(c) for c in bad)}"
    rules = (
        (name.startswith("-"), "it may not start with '-'"),
        (name == "HEAD", "HEAD is not a branch"),
        ("@{" in name, "it may not contain '@{'"),
        ("${" in name, "Flux would substitute the '${...}' in it"),  # stricter than git
        (".." in name, "it may not contain '..'"),
        (name.startswith("/") or name.endswith("/") or "//" in name, "slashes must separate parts"),
        (name.endswith("."), "it may not end with '.'"),
    )
    for broken, reason in rules:
        if broken:
            return reason
    for part in name.split("/"):
        if part.startswith("."):
            return "no part may start with '.'"
        if part.endswith(".lock"):
            return "no part may end with '.lock'"
    return None


class Disk(Constraint):
    doc = "a `/dev/...` device path or a disk serial (letters, digits, `._:+-`)"
    PATH = re.compile(r"/dev/[A-Za-z0-9._:+@-]+(/[A-Za-z0-9._:+@-]+)*")
    SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"{shown(value)} must be a device path such as /dev/sda or a disk serial"
        if value.startswith("/"):
            if self.PATH.fullmatch(value) and ".." not in value.split("/"):
                return None
            return (
                f"{shown(value)} is not a device path: /dev/ followed by letters, digits and ._:+@- "
                f"(e.g. /dev/disk/by-id/nvme-...){fix_hint(value, self.PATH)}"
            )
        if self.SERIAL.fullmatch(value):
            return None
        return (
            f"{shown(value)} is neither a /dev/ path nor a disk serial (letters, digits and ._:+-)"
            f"{fix_hint(value, self.SERIAL)}"
        )


class Token(Constraint):
    doc = "API token (printable, no spaces)"
    TOKEN = re.compile(r"[!-~]{1,512}")

    def check(self, value: Any) -> str | None:
        if isinstance(value, str) and self.TOKEN.fullmatch(value):
            return None
        return "must be a token of printable characters without spaces"  # never echo a secret


DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
FQDN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
SCHEMATIC = re.compile(r"[0-9a-f]{64}")
REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/(?!\.\.?\Z)[A-Za-z0-9._-]{1,100}")
KERNEL_MODULE = re.compile(r"[A-Za-z0-9_-]{1,55}")
ASN = IntRange(1, 4_294_967_295)
