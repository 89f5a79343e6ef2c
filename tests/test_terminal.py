"""Honest terminals: colour only where wanted (NO_COLOR, pipes), progress of long waits."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.lib import terminal
from tasks.lib.errors import UserError
from tasks.lib.tools import runner
from tests.scripted import Reply, ScriptedContext, scripted

ROOT = Path(__file__).resolve().parent.parent
ESC = "\x1b"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


@pytest.mark.usefixtures("clean_env")
def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    assert terminal.color_enabled(Tty())
    assert not terminal.color_enabled(io.StringIO()), "a pipe gets no escape codes"
    monkeypatch.setenv("NO_COLOR", "1")
    assert not terminal.color_enabled(Tty())
    assert terminal.echo_format(Tty()) == "{command}"
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: only a non-empty value counts
    assert terminal.echo_format(Tty()) == terminal.COLOR_ECHO
    monkeypatch.setenv("TERM", "dumb")
    assert not terminal.color_enabled(Tty())


def inv_dry(env: dict[str, str], *, tty: bool) -> str:
    """`inv --dry sops.encrypt` as a user runs it: through a pseudo-terminal or a pipe."""
    argv = [sys.executable, "-m", "tasks", "--dry", "lint.install"]
    if not tty:
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("tty", "no_color", "coloured"),
    [(True, "", True), (True, "1", False), (False, "", False), (False, "1", False)],
    ids=["terminal", "terminal+NO_COLOR", "pipe", "pipe+NO_COLOR"],
)
def test_dry_run_echo_honours_no_color_and_pipes(tty: bool, no_color: str, coloured: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm"
    if no_color:
        env["NO_COLOR"] = no_color
    out = inv_dry(env, tty=tty)
    assert "pre-commit install --install-hooks" in out
    assert (ESC in out) is coloured, repr(out)


def mock_context(tmp_path: Path, results: list[Reply]) -> ScriptedContext:
    return scripted(tmp_path, {"talosctl bootstrap": results})


def wait(c: ScriptedContext, deadline: float = 60) -> runner.Outcome:
    ticks = iter(range(100))  # each reading of the clock is 10 s later
    return runner.retry(
        c,
        ["talosctl", "bootstrap"],
        waiting_for="etcd",
        deadline=deadline,
        interval=10,
        clock=lambda: 10.0 * next(ticks),
        sleep=lambda _: None,
    )


def test_each_attempt_prints_elapsed_and_deadline_as_plain_lines_when_piped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = Reply(exited=1, stderr="rpc error: etcd is still starting\nmore detail")
    wait(mock_context(tmp_path, [failed, failed, Reply(stdout="ok")]))
    out = capsys.readouterr().out
    assert ESC not in out and "\r" not in out
    assert out.splitlines() == [
        "waiting for etcd (up to 60s, retrying every 10s)",
        "waiting for etcd: attempt 1, 10s / 60s — rpc error: etcd is still starting",
        "waiting for etcd: attempt 2, 20s / 60s — rpc error: etcd is still starting",
        "etcd: done after 3 attempt(s)",
    ]


def on_terminal(monkeypatch: pytest.MonkeyPatch) -> Tty:
    """stdout is a terminal (called in the test body: pytest swaps stdout after setup)."""
    tty = Tty()
    monkeypatch.setattr(sys, "stdout", tty)
    return tty


REFUSED = Reply(exited=1, stderr="connection refused")


@pytest.mark.usefixtures("clean_env")
def test_on_a_terminal_the_status_line_rewrites_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = on_terminal(monkeypatch)
    wait(mock_context(tmp_path, [REFUSED, REFUSED, Reply(stdout="ok")]))
    out = screen.getvalue()
    assert out.count(terminal.CLEAR_LINE) == 3  # two attempts, then cleared for the result
    assert "attempt 1, 10s / 60s — connection refused" in out
    # what stays on screen, once the terminal has applied the carriage returns
    final = [line.rsplit("\r\x1b[K", 1)[-1] for line in out.split("\n")]
    assert final == ["waiting for etcd (up to 60s, retrying every 10s)", "etcd: done after 3 attempt(s)", ""]


@pytest.mark.usefixtures("clean_env")
def test_giving_up_ends_the_status_line_before_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = on_terminal(monkeypatch)
    with pytest.raises(UserError, match="gave up waiting for etcd after 30s"):
        wait(mock_context(tmp_path, [REFUSED] * 5), deadline=35)
    assert screen.getvalue().endswith("\n")


def test_status_line_under_term_dumb_prints_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    screen = Tty()
    status = terminal.StatusLine(screen)
    status.update("one")
    status.update("two")
    status.finish("done")
    assert screen.getvalue() == "one\ntwo\ndone\n"


def test_attempt_line_keeps_the_reason_short() -> None:
    line = runner.attempt_line("nodes", 4, 61.4, 600, "\n  " + "x" * 200 + "\nsecond line")
    assert line.startswith("waiting for nodes: attempt 4, 61s / 600s — xxx")
    assert line.endswith("...") and len(line) < 140
    assert runner.attempt_line("nodes", 1, 0, 600, "") == "waiting for nodes: attempt 1, 0s / 600s"


@pytest.mark.usefixtures("clean_env")
def test_lint_tools_colour_like_our_own_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """pre-commit and actionlint write through a pipe to us: we decide for them."""
    from tasks import lint

    on_terminal(monkeypatch)
    assert lint.colour() == "always"
    monkeypatch.setenv("NO_COLOR", "1")
    assert lint.colour() == "never"
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert lint.colour() == "never"
