"""Flux ``postBuild`` variable substitution, as kustomize-controller does it.

Flux runs its ``envsubst`` (a bash-like subset) over the YAML of every built object (unless
the object is labelled or annotated ``kustomize.toolkit.fluxcd.io/substitute: disabled``).
Checked against ``flux envsubst``:

- ``${VAR}``: the value, or empty when undefined (reported as unresolved); ``${1}``: empty;
- ``${VAR:=default}``, ``${VAR:-default}``, ``${VAR=default}``, ``${VAR:?text}``: the
  default when the variable is undefined *or empty* (``=`` too, unlike bash);
- ``${VAR:+x}``: the value; ``${VAR:2}``/``${VAR:2:3}``: a substring; ``${VAR/a/b}``,
  ``${VAR//a/b}``: replace first / all; ``${VAR#p}``, ``${VAR##p}``, ``${VAR%p}``,
  ``${VAR%%p}``: strip a prefix / suffix; ``${VAR^}``, ``${VAR^^}``, ``${VAR,}``,
  ``${VAR,,}``: case; ``${#VAR}``: the length;
- ``$${VAR}``: the escape, producing a literal ``${VAR}``; ``$VAR`` is left alone;
- anything else (``${VAR-x}``, ``${VAR+x}``, ``${}``, ``${ x}``) makes Flux's build fail,
  reported in :attr:`Substitution.error`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
VALID_NAME = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")
DISABLED_KEY = "kustomize.toolkit.fluxcd.io/substitute"
_SUBSTRING = re.compile(r"^:(\d+)(?::(\d+))?$")


@dataclass
class Substitution:
    """The outcome of one substitution: the text, the variables it could not resolve, and
    the error Flux's envsubst would stop with (None when it would not)."""

    text: str
    unresolved: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    error: str | None = None


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


def _operate(value: str, rest: str) -> str | None:
    """Apply a string operation (``:2``, ``/a/b``, ``^^``, ``#p``, ...) or None if unknown."""
    if rest.startswith(":+") or rest.startswith(": "):
        return value
    match = _SUBSTRING.match(rest)
    if match:
        start = int(match.group(1))
        return value[start : start + int(match.group(2))] if match.group(2) else value[start:]
    for op, count in (("//", -1), ("/", 1)):
        if rest.startswith(op):
            pattern, _, replacement = rest[len(op) :].partition("/")
            return value.replace(pattern, replacement, count)
    if rest in ("^^", ",,"):
        return value.upper() if rest == "^^" else value.lower()
    if rest in ("^", ","):
        return (value[:1].upper() if rest == "^" else value[:1].lower()) + value[1:]
    for op in ("##", "#"):
        if rest.startswith(op):
            return value.removeprefix(rest[len(op) :])
    for op in ("%%", "%"):
        if rest.startswith(op):
            return value.removesuffix(rest[len(op) :])
    return None


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
        end = _closing_brace(text, j + 2)
        body = text[j + 2 : end] if end >= 0 else text[j + 2 :]
        i = end + 1 if end >= 0 else length
        positional = re.match(r"^\d+", body)
        if positional and end >= 0:
            continue  # ${1}: an empty positional parameter
        length_of = body.startswith("#") and VALID_NAME.match(body[1:]) is not None
        match = NAME.match(body[1:] if length_of else body)
        if match is None or end < 0:
            result.error = (
                result.error
                or ("missing closing brace" if match else "unable to parse variable name")
                + f" in '{text[j : j + 40]}'"
            )
            out.append(text[j : end + 1] if end >= 0 else text[j:])
            continue
        name = match.group(0)
        value = variables.get(name)
        if length_of:
            out.append(str(len(value or "")))
            continue
        rest = body[match.end() :]
        if not rest:
            if value is None:
                result.unresolved.append(name)
            else:
                result.used.add(name)
            out.append(value or "")
            continue
        for op in (":=", ":-", ":?", "="):
            if rest.startswith(op):
                if value:
                    result.used.add(name)
                    out.append(value)
                else:
                    out.append(substitute(rest[len(op) :], variables, _into=result).text)
                break
        else:
            operated = _operate(value or "", rest)
            if operated is None:
                result.error = result.error or f"missing closing brace in '${{{body[:40]}}}'"
                out.append(text[j:i])
                continue
            if value is None:
                result.unresolved.append(name)
            else:
                result.used.add(name)
            out.append(operated)
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
