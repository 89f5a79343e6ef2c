"""User-facing errors, signals, and the lines the guard (:mod:`tasks.lib.guard`) prints.

- a :class:`UserError` is one line per problem and exit 1; so is an ``OSError`` that
  escapes a task (a missing folder, no permission, a full disk): the path and the error;
- anything else is a bug: one line saying so and how to see the traceback
  (``HOME_OPS_DEBUG=1``), exit 2;
- Ctrl-C, SIGTERM and SIGHUP stop the task cleanly (every ``finally`` runs) with exit
  128 + the signal number (130 for Ctrl-C);
- a closed pipe (``inv ... | head``) ends the task silently.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator

from tasks.lib.problems import Problem

#: Set to 1 to let an unexpected exception show its traceback.
DEBUG_ENV = "HOME_OPS_DEBUG"

#: Signals that stop a task the way Ctrl-C does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class HomeOpsError(Exception):
    """Base of the project's own exceptions: what the task guard reports as one line each
    (exit 1) rather than as a bug."""


class UserError(HomeOpsError):
    """A mistake in the user's config, arguments or environment.

    Carries one or more lines; tasks turn it into a clean exit with code 1.
    """

    def __init__(self, *lines: str | Problem) -> None:
        self.lines = [str(line) for line in lines]
        super().__init__("\n".join(self.lines))

    @classmethod
    def from_problems(cls, problems: Iterable[Problem]) -> UserError:
        # Each kind's own sort_key (a ConfigProblem's column breaks ties on one line).
        return cls(*sorted(problems, key=lambda problem: problem.sort_key()))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP. A ``KeyboardInterrupt``, so every cleanup path that handles
    Ctrl-C handles the others too; ``message`` says what state the task left behind."""

    def __init__(self, signum: int = signal.SIGINT, message: str = "") -> None:
        super().__init__(signum)
        self.signum = int(signum)
        self.message = message

    @property
    def name(self) -> str:
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name

    @property
    def code(self) -> int:
        return 128 + self.signum


def raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise :class:`Interrupted` like Ctrl-C does
    (Python's default for them is to die on the spot, skipping every cleanup)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            previous[signum] = signal.signal(signum, raise_interrupted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block ends (then raise
    :class:`Interrupted`), so what happens inside happens completely. Yields the list of
    signals received so far, for a caller that wants to say what was finished."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {}
    for signum in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            previous[signum] = signal.signal(signum, lambda number, frame: received.append(number))
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, handler)
    if received:
        raise Interrupted(received[0])


def bug_line(error: BaseException) -> str:
    text = " ".join(str(error).split())[:300]
    detail = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return (
        f"internal error (a bug in home-ops, please report it): {detail} — "
        f"run again with {DEBUG_ENV}=1 to see the traceback"
    )


def os_error_line(error: OSError) -> str:
    where = str(error.filename) if error.filename is not None else ""
    if len(where) > 120:
        where = where[:60] + "…" + where[-40:]
    reason = error.strerror or str(error) or type(error).__name__
    return f"{where}: {reason}" if where else f"error: {reason}"


def interrupted_line(error: KeyboardInterrupt) -> tuple[str, int]:
    if isinstance(error, Interrupted):
        return f"interrupted ({error.name}): {error.message or 'stopped'}", error.code
    return "interrupted (Ctrl-C): stopped", 130


def silence_stdout() -> None:
    """The reader of our stdout went away (``| head``): drop whatever is still buffered,
    so Python does not complain about the closed pipe when it exits."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def verdict(error: BaseException) -> tuple[list[str], int]:
    """The lines to print and the exit code for an exception that ends a task: a user
    error is its lines (1), an ``OSError`` the path and reason (1), an interrupt its line
    (128 + the signal), a closed pipe nothing (141), anything else one line saying it is a
    bug (2)."""
    if isinstance(error, UserError):
        return error.lines, 1
    if isinstance(error, HomeOpsError):
        return [str(error)], 1
    if isinstance(error, KeyboardInterrupt):
        line, code = interrupted_line(error)
        return [line], code
    if isinstance(error, BrokenPipeError):
        return [], 141
    if isinstance(error, OSError):
        return [os_error_line(error)], 1
    return [bug_line(error)], 2
