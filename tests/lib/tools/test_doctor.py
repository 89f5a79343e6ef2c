"""doctor's pieces: its table, the tools it is asked about, the fix line of each missing
tool, and the note about Invoke's own `inv`. The whole report: tests/test_doctor.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.errors import UserError
from tasks.lib.tools import doctor
from tasks.lib.tools.pins import TOOLS


def test_table_aligns_columns_without_trailing_blanks() -> None:
    assert doctor.table(["tool", "version"], [["sops", "3.11.0"], ["kubectl", ""]]).splitlines() == [
        "tool     version",
        "-------  -------",
        "sops     3.11.0",
        "kubectl",
    ]


def test_select_keeps_order_drops_repeats_and_names_unknown_tools() -> None:
    names = [tool.name for tool in doctor.select(TOOLS, ["sops", "flux", "sops"])]
    assert names == ["sops", "flux"]
    assert doctor.select(TOOLS, []) == list(TOOLS)
    with pytest.raises(UserError, match="unknown tool nope: choose from"):
        doctor.select(TOOLS, ["nope"])


def test_a_missing_required_tool_gets_a_fix_line() -> None:
    sops = next(tool for tool in TOOLS if tool.name == "sops")
    required, optional = doctor.fix_lines([doctor.ToolRow(sops, None, None, "3.11.0")], found=set())
    assert "sops" in doctor.required_tools()
    assert len(required) == 1 and required[0].startswith("  sops 3.11.0: ") and optional == []


def test_launcher_note_only_for_invokes_own_launcher(tmp_path: Path) -> None:
    launcher = tmp_path / "inv"
    launcher.write_text("import sys\nfrom invoke.main import program\nsys.exit(program.run())\n")
    assert "is Invoke's own `inv`" in doctor.launcher_note(launcher)
    launcher.write_text("import sys\nfrom tasks.__main__ import main\nsys.exit(main())\n")
    assert doctor.launcher_note(launcher) == ""
    assert doctor.launcher_note(tmp_path / "absent") == ""
