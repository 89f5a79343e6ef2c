"""Blaming a rendered file's parse error on the configuration keys whose values it holds.

When a rendered file does not parse, the cause is usually a value the user typed. Every
scalar of the two config files is kept with its position (:class:`Origin`); the values
found on the failing lines name ``FILE:LINE:COL: key`` — keys and positions only, never the
value itself (a secret, even).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tasks.lib.config.constraints import is_set
from tasks.lib.config.document import Document, position
from tasks.lib.problems import ConfigProblem

if TYPE_CHECKING:
    from tasks.lib.config.schema import ClusterConfig


@dataclass(frozen=True)
class Origin:
    """Where a value the user typed sits: ``FILE:LINE:COL: key``."""

    file: str
    line: int | None
    column: int | None
    key: str
    text: str

    def __str__(self) -> str:
        return str(ConfigProblem(self.file, self.line, self.column, self.key, "")).removesuffix(": ")


def origins(cluster: Document, nodes: Document) -> Iterator[Origin]:
    """Every string-like scalar of the two (valid) documents, with its position."""

    def walk(doc: Document, node: dict[str, Any], prefix: str) -> Iterator[Origin]:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, list):
                for index, item in enumerate(value):
                    line, column = position(value, index)
                    yield Origin(doc.label, line, column, f"{name}[{index}]", str(item))
            elif is_set(value):
                line, column = position(node, key)
                yield Origin(doc.label, line, column, name, str(value))

    yield from walk(cluster, cluster.data, "")
    for index, entry in enumerate(nodes.data["nodes"]):
        yield from walk(nodes, entry, f"nodes[{index}].")


def explain_rendered_error(config: ClusterConfig, text: str, line: int, first_line: int | None = None) -> str:
    """For a rendered file that does not parse: `` — from FILE:LINE:COL: key`` naming the
    config values on its lines ``first_line``..``line`` (1-based; the YAML error's context and
    problem marks), or on the line before when those hold none; '' when no value is found.
    Keys and positions only: a value (a secret, even) is never repeated."""
    lines = text.splitlines()
    start = max(1, min(first_line or line, line))
    found = blame(config.origins, lines[start - 1 : line]) or blame(
        config.origins, lines[max(0, start - 2) : start - 1]
    )
    return f" — from {', '.join(str(o) for o in found[:3])}" if found else ""


def blame(candidates: Sequence[Origin], rendered_lines: Sequence[str]) -> list[Origin]:
    """The candidates whose value appears in ``rendered_lines``, longest first."""
    text = "\n".join(rendered_lines)
    found = [o for o in candidates if len(o.text) >= 2 and o.text in text]
    found.sort(key=lambda o: -len(o.text))
    # A value inside a longer value that was found already adds nothing.
    return [o for i, o in enumerate(found) if not any(o.text in longer.text for longer in found[:i])]
