"""A tool's failure in the user's words: every line that says something, the fix when the
cause is known, secrets masked."""

from __future__ import annotations

from tasks.lib.tools import failures
from tasks.lib.tools.runner import MASK, register_secrets

TALHELPER_STDOUT = (
    "There are issues with your talhelper config file:\n"
    'field: "talosVersion"\n'
    "  * v9.9 is not a supported Talos version\n"
)


def test_log_stamps_colours_blank_and_repeated_lines_are_dropped() -> None:
    lines = failures.reason_lines(TALHELPER_STDOUT, "2026/12/03 12:26:02 \n\x1b[31merror\x1b[0m\nerror\n\n")
    assert lines == [
        "There are issues with your talhelper config file:",
        'field: "talosVersion"',
        "  * v9.9 is not a supported Talos version",
        "error",
    ]
    many = failures.reason_lines("\n".join(f"line {i}" for i in range(50)), limit=3)
    assert many == ["line 0", "line 1", "line 2", "… 47 more line(s)"]


def test_explain_adds_the_fix_of_each_known_cause_once() -> None:
    lines = failures.explain(
        "talhelper validate failed:", TALHELPER_STDOUT, "", shown="dial tcp: connect: connection refused"
    )
    assert lines[0] == "talhelper validate failed:" and lines[1].startswith("  There are issues")
    fixes = [line for line in lines if line.startswith("fix: ")]
    assert len(fixes) == 2 and "older than talenv.yaml" in fixes[0] and "port 50000" in fixes[1]
    assert failures.hints(["all good"]) == []


def test_secrets_are_masked() -> None:
    register_secrets(["s3cr3t-value-x"])
    assert failures.reason_lines("token s3cr3t-value-x rejected") == [f"token {MASK} rejected"]
