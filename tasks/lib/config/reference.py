"""The key reference of ``docs/configuration.md``, generated from the config model.

The tables sit between ``<!-- catalog:config.cluster:begin -->`` / ``...:end -->`` markers
(``config.nodes``, ``config.rules`` likewise); ``scripts/update_catalog.py`` rewrites them
and a test fails when they are stale, so the documentation cannot drift from
:mod:`tasks.lib.config.schema`.
"""

from __future__ import annotations

from pathlib import Path

from tasks.lib.catalog import escape, fill_sections, section_names
from tasks.lib.config.schema import CLUSTER_SPECS, NODE_SPECS, RULES, Spec

DOC = Path("docs") / "configuration.md"


def table(model_specs: dict[str, Spec]) -> str:
    lines = ["| Key | Default | Constraint | What it is |", "| --- | --- | --- | --- |"]
    for key, spec in model_specs.items():
        default = spec.default_doc or "required"
        lines.append(f"| `{key}` | {escape(default)} | {escape(spec.constraint.doc)} | {escape(spec.help)} |")
    return "\n".join(lines)


def render_section(name: str) -> str:
    """The Markdown of one generated section."""
    if name == "config.cluster":
        return table(CLUSTER_SPECS)
    if name == "config.nodes":
        return table(NODE_SPECS)
    if name == "config.rules":
        return "\n".join(f"- {rule}" for rule in RULES)
    raise ValueError(f"{DOC}: unknown generated section {name!r}")


def update_text(text: str) -> str:
    return fill_sections(text, render_section)


def stale(root: Path) -> bool:
    """Whether the reference in ``docs/configuration.md`` differs from the model."""
    text = (root / DOC).read_text(encoding="utf-8")
    return not section_names(text) or update_text(text) != text


def update(root: Path) -> bool:
    """Rewrite the reference when stale; whether it changed."""
    if not stale(root):
        return False
    path = root / DOC
    path.write_text(update_text(path.read_text(encoding="utf-8")), encoding="utf-8")
    return True
