"""Substitution variables given on the command line (``--var``, ``--vars-file``)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from pathlib import Path

from tasks.lib.errors import UserError
from tasks.lib.files import read_text

from . import yamlio


def parse_assignments(items: Iterable[str], origin: str = "--var") -> dict[str, str]:
    """``KEY=VALUE`` strings as a mapping; one line per malformed item."""
    values: dict[str, str] = {}
    bad = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            bad.append(f"{origin}: '{item}' is not KEY=VALUE (KEY: letters, digits, _)")
            continue
        values[key] = value.strip().strip("'\"") if origin != "--var" else value
    if bad:
        raise UserError(*bad)
    return values


def read_vars_file(path: Path) -> dict[str, str]:
    """Variables from a file: a ConfigMap or Secret manifest (its data), a YAML mapping, or
    ``KEY=VALUE`` lines (``#`` comments and ``export`` allowed)."""
    # A FIFO, a device or a huge file is refused before it is opened for reading.
    text = read_text(path, label=f"--vars-file {path}")
    try:
        data = yamlio.load(text)
    except yamlio.YAMLError:
        data = None
    if isinstance(data, dict):
        if data.get("kind") in ("ConfigMap", "Secret"):
            values = {
                str(k): _secret(v) if data["kind"] == "Secret" else str(v)
                for k, v in (data.get("data") or {}).items()
            }
            values.update({str(k): str(v) for k, v in (data.get("stringData") or {}).items()})
            return values
        if all(not isinstance(v, (dict, list)) for v in data.values()):
            return {str(k): "" if v is None else str(v) for k, v in data.items()}
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return parse_assignments(lines, origin=f"--vars-file {path}")


def _secret(value: object) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return str(value)


def variables(assignments: Iterable[str], vars_file: str = "") -> dict[str, str]:
    """``--vars-file`` (when given) and then every ``--var``: the later wins."""
    values = read_vars_file(Path(vars_file).expanduser()) if vars_file else {}
    values.update(parse_assignments(assignments))
    return values
