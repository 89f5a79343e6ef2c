"""Documentation that cannot drift: the task catalog, the quick start, the agent files."""

from __future__ import annotations

import re
from pathlib import Path

from tasks import ns
from tasks.lib.catalog import ROOT_GROUP, entries, groups, section_names, stale_files

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def section(markdown: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no '## {title}' section"
    return match.group(1)


def test_catalog_is_up_to_date() -> None:
    stale = [str(p.relative_to(ROOT)) for p in stale_files(ROOT, ns)]
    assert stale == [], "run `python scripts/update_catalog.py`"


def test_readme_catalog_lists_every_task() -> None:
    catalog = README.split("<!-- catalog:all:begin -->")[1].split("<!-- catalog:all:end -->")[0]
    for entry in entries(ns):
        assert f"`inv {entry.command}`" in catalog


def test_every_collection_has_a_page() -> None:
    pages = {p.stem for p in (ROOT / "docs" / "tasks").glob("*.md")}
    for group in groups(ns):
        assert group in pages, f"docs/tasks/{group}.md is missing"
        text = (ROOT / "docs" / "tasks" / f"{group}.md").read_text()
        assert group in section_names(text)
    assert ROOT_GROUP in pages


def test_quick_start_is_exactly_two_single_line_commands() -> None:
    quick = section(README, "Quick start")
    blocks = re.findall(r"```\w*\n(.*?)```", quick, re.S)
    commands = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, commands
    assert not any(line.rstrip().endswith("\\") for line in commands)
    assert "inv init configure" in commands[0]
    assert "pytest" in commands[1]


def test_readme_has_the_sections_people_look_for() -> None:
    for title in ("Quick start", "Secrets", "Tasks", "Troubleshooting"):
        section(README, title)
    assert "--print-completion-script" in README


def test_agent_files() -> None:
    agents = (ROOT / "AGENTS.md").read_text()
    assert "inv sops.check" in agents and "inv lint" in agents
    assert "AGENTS.md" in (ROOT / "CLAUDE.md").read_text()
    assert "AGENTS.md" in (ROOT / ".github" / "copilot-instructions.md").read_text()


def test_docs_links_resolve() -> None:
    for path in [ROOT / "README.md", ROOT / "AGENTS.md", *(ROOT / "docs").rglob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)}: broken link {target}"


def test_no_machine_paths_in_project_docs() -> None:
    for path in [ROOT / "README.md", ROOT / "AGENTS.md", *(ROOT / "docs").rglob("*.md")]:
        assert not re.search(r"/tmp/venv|/work/", path.read_text()), path
