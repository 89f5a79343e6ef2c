"""Honest terminal output: colour and self-rewriting lines only on a terminal that wants them.

- Colour follows https://no-color.org: any non-empty ``NO_COLOR`` turns it off, and so does
  output that is not a terminal (a pipe, a file, CI's log) or ``TERM=dumb``.
- :class:`StatusLine` shows progress of a long wait: on a terminal one line that rewrites
  itself; piped, one plain line per update, so a log keeps every attempt.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

#: Invoke's own echo format (bold white), used only where colour is on.
COLOR_ECHO = "\033[1;37m{command}\033[0m"
PLAIN_ECHO = "{command}"
CLEAR_LINE = "\r\033[K"


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream if stream is not None else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def color_enabled(stream: TextIO | None = None) -> bool:
    """Whether escape codes may go to ``stream`` (stdout by default)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def echo_format(stream: TextIO | None = None) -> str:
    """Invoke's ``run.echo_format`` (how ``--dry`` and ``--echo`` show commands)."""
    return COLOR_ECHO if color_enabled(stream) else PLAIN_ECHO


class StatusLine:
    """One line of progress that rewrites itself on a terminal, or plain lines when piped.

    ``update`` shows the current state; ``finish`` ends it with a final line that stays.
    Rewriting needs a cursor, not colour: ``TERM=dumb`` gets plain lines, NO_COLOR does not.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.live = is_terminal(self.stream) and os.environ.get("TERM") != "dumb"
        self._open = False

    def update(self, text: str) -> None:
        if self.live:
            self.stream.write(f"{CLEAR_LINE}{text}")
            self._open = True
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()

    def finish(self, text: str = "") -> None:
        """Leave the status line (replaced by ``text`` when given) and move to a new line."""
        if self.live and self._open:
            self.stream.write(f"{CLEAR_LINE}{text}\n" if text else "\n")
        elif text:
            self.stream.write(f"{text}\n")
        self._open = False
        self.stream.flush()
