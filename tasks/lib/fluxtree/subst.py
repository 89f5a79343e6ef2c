"""Flux ``postBuild`` variable substitution, as kustomize-controller does it.

Flux runs a bash-like ``envsubst`` over the YAML of every built object (unless the object is
labelled or annotated ``kustomize.toolkit.fluxcd.io/substitute: disabled``). Supported here:

- ``${VAR}``: the value, or empty when undefined (reported as unresolved);
- ``${VAR:=default}`` / ``${VAR:-default}``: the default when undefined or empty;
- ``${VAR=default}`` / ``${VAR-default}``: the default when undefined;
- ``$${VAR}``: the escape, producing a literal ``${VAR}``.

``$VAR`` without braces is left alone (Flux documents it as the way to keep shell variables).
Anything that is not a valid variable name inside ``${...}`` is left as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
VALID_NAME = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")
DISABLED_KEY = "kustomize.toolkit.fluxcd.io/substitute"


@dataclass
class Substitution:
    """The outcome of one substitution: the text and the variables it could not resolve."""

    text: str
    unresolved: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the expression whose body starts at ``start`` (nested
    ``${...}`` in defaults are skipped), or -1."""
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "$" and text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def _expand(name: str, op: str, default: str, variables: Mapping[str, str], result: Substitution) -> str:
    value = variables.get(name)
    if op in (":=", ":-"):
        if value:
            result.used.add(name)
            return value
        return substitute(default, variables, _into=result).text
    if op in ("=", "-"):
        if value is not None:
            result.used.add(name)
            return value
        return substitute(default, variables, _into=result).text
    if value is None:
        result.unresolved.append(name)
        return ""
    result.used.add(name)
    return value


def substitute(text: str, variables: Mapping[str, str], *, _into: Substitution | None = None) -> Substitution:
    """Replace every ``${...}`` expression in ``text`` from ``variables``."""
    result = _into if _into is not None else Substitution("")
    out: list[str] = []
    i = 0
    length = len(text)
    while i < length:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if text.startswith("$${", j):
            out.append("${")
            i = j + 3
            continue
        if not text.startswith("${", j):
            out.append("$")
            i = j + 1
            continue
        match = NAME.match(text, j + 2)
        end = _closing_brace(text, j + 2)
        if match is None or end < 0:
            out.append("${")
            i = j + 2
            continue
        name = match.group(0)
        rest = text[match.end() : end]
        op, default = "", ""
        for candidate in (":=", ":-", "=", "-"):
            if rest.startswith(candidate):
                op, default = candidate, rest[len(candidate) :]
                break
        if rest and not op:
            # Another bash operation (${VAR:1}, ${VAR/a/b}, ...): keep the value, unchanged.
            if name in variables:
                result.used.add(name)
                out.append(variables[name])
            else:
                result.unresolved.append(name)
            i = end + 1
            continue
        out.append(_expand(name, op, default, variables, result))
        i = end + 1
    result.text = "".join(out)
    return result


def references(text: str) -> list[str]:
    """Names referenced as ``${NAME}`` (with or without a default), escapes excluded."""
    return [name for name in re.findall(r"(?<!\$)\$\{([_A-Za-z][_A-Za-z0-9]*)", text)]


def is_disabled(obj: Mapping[str, object]) -> bool:
    """Whether the object opts out of substitution by label or annotation."""
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        return False
    for key in ("labels", "annotations"):
        values = metadata.get(key) or {}
        if isinstance(values, Mapping) and values.get(DISABLED_KEY) == "disabled":
            return True
    return False
