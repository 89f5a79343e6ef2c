"""The task catalog of the README and of each ``docs/tasks/*.md`` page, generated from the
live Invoke collections so the documentation cannot drift from the code.

Generated text sits between ``<!-- catalog:NAME:begin -->`` and ``<!-- catalog:NAME:end -->``
markers (``NAME`` is ``all`` in the README, a collection name or ``root`` in the pages);
``scripts/update_catalog.py`` rewrites it, and a test fails when it is stale. The result
is passed through mdformat, so ``inv lint`` and the generator never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mdformat
from invoke.collection import Collection

ROOT_GROUP = "root"


@dataclass(frozen=True)
class Entry:
    """One task as a reader sees it."""

    command: str  # what to type after `inv`
    summary: str
    group: str  # collection name, or ROOT_GROUP
    default: bool = False


def summary_of(body: object) -> str:
    """The first paragraph of a task's docstring, on one line."""
    doc = (getattr(body, "__doc__", None) or "").strip()
    first = doc.split("\n\n", 1)[0]
    return " ".join(first.split()) or "(no description)"


def entries(ns: Collection) -> list[Entry]:
    """Every task of the root namespace: root tasks first, then each collection's."""
    found = [Entry(name, summary_of(t.body), ROOT_GROUP) for name, t in sorted(ns.tasks.items())]
    for name, sub in sorted(ns.collections.items()):
        for task_name, t in sorted(sub.tasks.items()):
            default = sub.default == task_name
            found.append(Entry(f"{name}.{task_name}", summary_of(t.body), name, default))
    return found


def groups(ns: Collection) -> list[str]:
    return [ROOT_GROUP, *sorted(ns.collections)]


def escape(text: str) -> str:
    return text.replace("|", "\\|")


def command_cell(entry: Entry) -> str:
    cell = f"`inv {entry.command}`"
    if entry.default:
        cell += f" (also `inv {entry.group}`)"
    return cell


def table(rows: list[Entry]) -> str:
    lines = ["| Task | What it does |", "| --- | --- |"]
    lines += [f"| {command_cell(e)} | {escape(e.summary)} |" for e in rows]
    return "\n".join(lines)


def render_section(ns: Collection, name: str) -> str:
    """The Markdown between the markers of section ``name``."""
    all_entries = entries(ns)
    if name == "all":
        return table(all_entries)
    rows = [e for e in all_entries if e.group == name]
    if not rows:
        return f"_The `{name}` collection is not registered in `tasks/__init__.py` yet._"
    return table(rows)


MARKERS = re.compile(
    r"(?P<begin><!-- catalog:(?P<name>[\w.-]+):begin -->\n)(?P<body>.*?)"
    r"(?P<end>\n?<!-- catalog:(?P=name):end -->)",
    re.DOTALL,
)


def fill_sections(text: str, render: Callable[[str], str]) -> str:
    """``text`` with the body of every marked section replaced by ``render(name)``, formatted
    as mdformat would (so ``inv lint`` and the generators never disagree)."""

    def replace(match: re.Match[str]) -> str:
        return f"{match['begin']}\n{render(match['name'])}\n\n<!-- catalog:{match['name']}:end -->"

    return mdformat.text(MARKERS.sub(replace, text), extensions={"gfm", "tables"})


def update_text(text: str, ns: Collection) -> str:
    """``text`` with every catalog section regenerated."""
    return fill_sections(text, lambda name: render_section(ns, name))


def section_names(text: str) -> list[str]:
    return [m["name"] for m in MARKERS.finditer(text)]


def documented_files(root: Path) -> list[Path]:
    """Every file that carries catalog sections."""
    return [root / "README.md", *sorted((root / "docs" / "tasks").glob("*.md"))]


def stale_files(root: Path, ns: Collection) -> list[Path]:
    """Files whose catalog sections differ from what the collections say."""
    stale = []
    for path in documented_files(root):
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        if section_names(text) and update_text(text, ns) != text:
            stale.append(path)
    return stale


def update_files(root: Path, ns: Collection) -> list[Path]:
    """Rewrite stale catalog sections; returns the files changed."""
    changed = stale_files(root, ns)
    for path in changed:
        path.write_text(update_text(path.read_text(encoding="utf-8"), ns), encoding="utf-8")
    return changed
