"""What the guard prints for each kind of exception, and the signals that stop a task."""

from __future__ import annotations

import os
import signal

import pytest

from tasks.lib import errors
from tasks.lib.errors import HomeOpsError, Interrupted, UserError
from tasks.lib.problems import ConfigProblem


def test_verdict_for_each_kind_of_exception() -> None:
    assert errors.verdict(UserError("one", "two")) == (["one", "two"], 1)
    assert errors.verdict(HomeOpsError("ours")) == (["ours"], 1)
    assert errors.verdict(BrokenPipeError()) == ([], 141)
    assert errors.verdict(FileNotFoundError(2, "No such file or directory", "/x/y")) == (
        ["/x/y: No such file or directory"],
        1,
    )
    assert errors.verdict(Interrupted(signal.SIGTERM, "nothing written")) == (
        ["interrupted (SIGTERM): nothing written"],
        128 + signal.SIGTERM,
    )
    assert errors.verdict(KeyboardInterrupt()) == (["interrupted (Ctrl-C): stopped"], 130)
    (line,), code = errors.verdict(ValueError("bad\n  value"))
    assert code == 2
    assert "internal error" in line and "ValueError: bad value" in line and errors.DEBUG_ENV in line


def test_long_paths_and_bug_texts_are_shortened() -> None:
    line = errors.os_error_line(PermissionError(13, "Permission denied", "/" + "d" * 300))
    assert len(line) < 140 and line.endswith(": Permission denied") and "…" in line
    assert len(errors.bug_line(RuntimeError("x" * 1000))) < 450
    assert errors.os_error_line(OSError()) == "error: OSError"


def test_sigterm_interrupts_like_ctrl_c_inside_the_block_only() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as caught, errors.signals_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def test_deferred_signals_are_raised_when_the_block_ends() -> None:
    finished = False
    with pytest.raises(Interrupted) as caught, errors.signals_deferred() as received:
        os.kill(os.getpid(), signal.SIGHUP)
        assert received == [signal.SIGHUP]
        finished = True
    assert finished
    assert caught.value.name == "SIGHUP"


def test_problems_are_listed_by_file_line_then_column() -> None:
    later = ConfigProblem("nodes.yaml", 3, 9, "nodes[0].address", "an address is required")
    earlier = ConfigProblem("nodes.yaml", 3, 2, "nodes[0].name", "not a DNS-1123 label")
    other_file = ConfigProblem("cluster.yaml", 7, 1, "node_cidr", "not a network")
    error = UserError.from_problems([later, earlier, other_file])
    assert error.lines == [str(other_file), str(earlier), str(later)]
