"""makejinja plugin: the data and the helpers the templates use.

``inv configure`` hands the plugin the context it already validated. Run through the
makejinja CLI instead, the plugin builds the same context itself (decrypting
``cluster.sops.yaml`` with sops), so both ways render identical files.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import Environment
from makejinja.plugin import Data, Filters, Functions

from tasks.lib.config.configure import sops_decrypt
from tasks.lib.config.render import active_context, bytecode_cache
from tasks.lib.config.template_context import RenderContext, build_context
from tasks.lib.paths import repo_paths


def nthhost(cidr: str, index: int) -> str:
    """The ``index``-th address of a network, e.g. ``'10.0.0.0/24' | nthhost(1)`` -> 10.0.0.1."""
    return str(ipaddress.ip_network(cidr)[index])


def prefixlen(cidr: str) -> int:
    """The prefix length of a network, e.g. ``'192.168.1.0/24' | prefixlen`` -> 24."""
    return ipaddress.ip_network(cidr).prefixlen


def is_device_path(disk: str) -> bool:
    """Whether a node's ``disk`` names a device (``/dev/sda``) rather than a disk serial."""
    return disk.startswith("/dev/")


#: Characters YAML does not allow raw in a double-quoted scalar (or, in YAML 1.1, reads as
#: line breaks): C0 and C1 controls, DEL, the Unicode line/paragraph separators, the BOM and
#: the non-characters U+FFFE/U+FFFF.
_ESCAPED = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"}
_UNPRINTABLE = frozenset([*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF])


def _quote_char(char: str) -> str:
    code = ord(char)
    if code in _ESCAPED:
        return _ESCAPED[code]
    if 0xD800 <= code <= 0xDFFF:
        raise ValueError("a lone UTF-16 surrogate is not text and cannot be written to YAML")
    return f"\\u{code:04x}" if code in _UNPRINTABLE else char


def yaml(value: Any) -> str:
    """``value`` as one YAML scalar, the only way a value reaches a template's output.

    Strings become double-quoted scalars with every quote, backslash, line break and control
    character escaped, so no value (``'a"\\n  key: x'``) can end its scalar and add a key,
    a list item or a document. Booleans and integers stay plain (``true``, ``1500``).
    Anything else is a template bug and fails the render."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + "".join(map(_quote_char, value)) + '"'
    raise TypeError(f"yaml filter: cannot write a {type(value).__name__} as a YAML scalar")


def tojson_compact(value: Any) -> str:
    """``value`` as compact JSON on one line, keys in the given order (no HTML escaping,
    unlike Jinja's ``tojson``), for JSON documents placed inside YAML block scalars."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Plugin:
    def __init__(self, env: Environment, data: Data, config: Any) -> None:
        env.bytecode_cache = bytecode_cache()
        paths = repo_paths()
        self._context: RenderContext = active_context() or build_context(paths, sops_decrypt(paths))

    def data(self) -> Mapping[str, Any]:
        return self._context.data

    def filters(self) -> Filters:
        found: list[Callable[..., Any]] = [nthhost, prefixlen, is_device_path, tojson_compact, yaml]
        return found

    def functions(self) -> Functions:
        return []
