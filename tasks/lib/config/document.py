"""Reading a YAML configuration file: bounded, parsed once, every key and item with its position.

:func:`read_yaml` turns a file into a :class:`Document` (ruamel.yaml's round-trip data,
which remembers where each key and list item came from), so a check can name the line and
column of the value it refuses. :func:`read_documents` reads several files and reports the
problems of all of them together. The input is bounded before and after parsing: file size
(the one bounded reader, :func:`tasks.lib.files.read_text`), alias expansion, nesting depth and string length
(:func:`oversized`). Every refusal is one :class:`~tasks.lib.errors.UserError` line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from tasks.lib.boundary import where_it_leads
from tasks.lib.config.constraints import MAX_STRING
from tasks.lib.errors import UserError
from tasks.lib.files import read_text
from tasks.lib.problems import ConfigProblem

#: A cluster.yaml or nodes.yaml is a few KB; anything this big is the wrong file (or an attack).
MAX_FILE_BYTES = 256 * 1024
#: What a missing cluster.yaml or nodes.yaml asks for.
MISSING_CONFIG = "run `inv init` or copy it from the bundled example"
#: Values a document may hold once YAML aliases are expanded (stops "billion laughs").
MAX_VALUES = 10_000
#: Nesting depth of a document (the config is at most three levels deep).
MAX_DEPTH = 32


@dataclass
class Document:
    """A parsed YAML file that remembers where each key and item came from."""

    path: Path
    label: str  # how messages name the file
    data: Any

    def problem(self, node: Any, key: str | int | None, name: str, message: str) -> ConfigProblem:
        line, column = position(node, key)
        return ConfigProblem(self.label, line, column, name, message)


def position(node: Any, key: str | int | None) -> tuple[int | None, int | None]:
    """1-based (line, column) of ``node[key]`` (its value when it has one, else the key)."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None, None
    try:
        if key is None:
            line, column = lc.line, lc.col
        elif isinstance(key, int):
            line, column = lc.item(key)
        elif key in node:
            line, column = lc.value(key)
        else:
            line, column = lc.line, lc.col
    except (KeyError, IndexError, TypeError, AttributeError):
        return None, None
    return one_based(line, column)


def key_position(node: Any, key: Any) -> tuple[int | None, int | None]:
    """1-based (line, column) of the key ``key`` itself in the mapping ``node``."""
    try:
        line, column = node.lc.key(key)
    except (KeyError, AttributeError, TypeError):
        return None, None
    return one_based(line, column)


def one_based(line: int | None, column: int | None) -> tuple[int | None, int | None]:
    if line is None or column is None:
        return None, None
    return line + 1, column + 1


def read_yaml(path: Path, label: str) -> Document:
    """Parse one YAML file; any problem becomes a one-line :class:`UserError`."""
    text = read_text(path, label, limit=MAX_FILE_BYTES, missing=MISSING_CONFIG)
    yaml = YAML(typ="rt")
    try:
        documents = list(yaml.load_all(text))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        reason = (error.problem or error.context or "invalid YAML").strip()
        raise UserError(f"{where}: invalid YAML: {shown_text(reason)}") from None
    except (YAMLError, ValueError, TypeError, RecursionError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{label}: invalid YAML: {shown_text(first)}") from None
    documents = [doc for doc in documents if doc is not None]
    if not documents:
        raise UserError(f"{label}: file is empty — expected a mapping of settings")
    if len(documents) > 1:
        raise UserError(f"{label}: holds {len(documents)} YAML documents — expected exactly one")
    if (reason := oversized(documents[0])) is not None:
        raise UserError(f"{label}: {reason}")
    return Document(path, label, documents[0])


def read_documents(
    files: Iterable[tuple[Path, str]], missing_hint: str | None = None, within: Path | None = None
) -> list[Document]:
    """Parse each ``(path, label)`` with :func:`read_yaml`, or raise one :class:`UserError`
    listing the problems of every file. ``missing_hint`` replaces the message for a file
    that does not exist (``LABEL not found — HINT``). With ``within``, a file that leads out
    of that folder (a symlink to /etc/shadow) is refused, not read: its lines would show up
    in the messages."""
    errors: list[str] = []
    documents: list[Document] = []
    for path, label in files:
        if within is not None and (problem := where_it_leads(within, path, label)) is not None:
            errors.append(problem)
            continue
        if missing_hint is not None and not path.is_file():
            errors.append(f"{label} not found — {missing_hint}")
            continue
        try:
            documents.append(read_yaml(path, label))
        except UserError as error:
            errors += error.lines
    if errors:
        raise UserError(*errors)
    return documents


def shown_text(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def oversized(data: Any) -> str | None:
    """Why ``data`` is too big to handle (counted as if aliases were expanded, without
    expanding them), or None. Iterative, so deep or self-referencing documents are safe."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return f"holds more than {MAX_VALUES} values (counting YAML aliases) — a config is far smaller"
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value)
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str) and len(value) > MAX_STRING * 8:
            return f"holds a string of {len(value)} characters — a config value is far shorter"
    return None
