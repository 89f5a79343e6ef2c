"""What --diagnostics reads from a failed cluster, writes (secrets masked) and sums up."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.lib.clustertest import diagnostics
from tasks.lib.tools.runner import MASK, Command, Outcome, register_secrets


def outcome(argv: tuple[str, ...], code: int = 0, stdout: str = "", stderr: str = "") -> Outcome:
    return Outcome(Command(argv), code, stdout, stderr)


def test_what_is_read_per_node(tmp_path: Path) -> None:
    files = [read.file for read in diagnostics.reads(["10.5.0.2"])]
    assert files[-1] == "dmesg-10.5.0.2.txt" and "pods.json" in files
    assert all(command.cwd == tmp_path for command in diagnostics.commands([], tmp_path))


def test_fresh_folders_never_reuse_a_name(tmp_path: Path) -> None:
    first = diagnostics.fresh_folder(tmp_path / "d" / "run")
    second = diagnostics.fresh_folder(tmp_path / "d" / "run")
    assert (first.name, second.name) == ("run", "run-2")


def test_written_files_hold_the_output_or_why_not_with_secrets_masked(tmp_path: Path) -> None:
    register_secrets(["diag-s3cret-token"])
    read_ok, read_failed = diagnostics.reads([])[:2]
    results = [
        (read_ok, outcome(read_ok.argv, stdout="node diag-s3cret-token\n")),
        (read_failed, outcome(read_failed.argv, 1, stderr="no cluster\n")),
    ]
    written = diagnostics.write(tmp_path, results, {"sub/extra.txt": "x"})
    assert written == [read_ok.file, read_failed.file, "sub/extra.txt"]
    assert (tmp_path / read_ok.file).read_text() == f"node {MASK}\n"
    assert (tmp_path / read_failed.file).read_text().startswith("# could not read it: `kubectl get pods")
    assert diagnostics.last_lines("a\nb\nc\n", 2) == "b\nc\n" and diagnostics.last_lines("a\n", 0) == "a\n"


def test_summary_counts_what_is_not_ready() -> None:
    reads = {read.file: read for read in diagnostics.reads([])}
    pods = {
        "items": [
            {
                "kind": "Pod",
                "metadata": {"name": "ok"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
        ]
    }
    results = [(reads["pods.json"], outcome(("kubectl",), stdout=json.dumps(pods)))]
    lines = diagnostics.summary(results)
    assert lines[0] == "pods: 1 of 1 Ready"
    assert lines[1] == "Flux objects: could not be read (no cluster to ask yet?)"
