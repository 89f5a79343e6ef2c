"""Colour and status lines: only on a terminal that wants them."""

from __future__ import annotations

import io

import pytest

from tasks.lib import terminal


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("tty", "no_color", "term", "coloured"),
    [
        (True, "", "xterm", True),
        (True, "1", "xterm", False),
        (True, "", "dumb", False),
        (False, "", "xterm", False),
    ],
)
def test_colour_only_on_a_terminal_that_wants_it(
    monkeypatch: pytest.MonkeyPatch, tty: bool, no_color: str, term: str, coloured: bool
) -> None:
    monkeypatch.setenv("NO_COLOR", no_color)
    monkeypatch.setenv("TERM", term)
    stream = Tty() if tty else io.StringIO()
    assert terminal.color_enabled(stream) is coloured
    assert terminal.echo_format(stream) == (terminal.COLOR_ECHO if coloured else terminal.PLAIN_ECHO)


def test_a_closed_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    stream.close()
    assert terminal.is_terminal(stream) is False


def test_status_line_rewrites_itself_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("NO_COLOR", "1")  # rewriting needs a cursor, not colour
    stream = Tty()
    line = terminal.StatusLine(stream)
    line.update("waiting 1s")
    line.update("waiting 2s")
    line.finish("done")
    assert stream.getvalue() == "\r\033[Kwaiting 1s\r\033[Kwaiting 2s\r\033[Kdone\n"


def test_status_line_piped_keeps_every_update(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    line = terminal.StatusLine(stream)
    line.update("a")
    line.update("b")
    line.finish()
    line.finish("end")
    assert stream.getvalue() == "a\nb\nend\n"
