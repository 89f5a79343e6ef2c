"""``sops edit``: the one command that runs outside the runner, because the editor sops
starts needs the terminal itself (its stdin, stdout and stderr), which the runner never
hands to a tool.

When the edited file does not load (invalid YAML, say), sops asks for a key press and opens
the editor again, for as long as it takes. On a terminal the person at it decides (a key,
or Ctrl-C). Without one, sops would read end-of-file as that key press and loop forever:
here it gets :data:`MAX_REEDITS` key presses on a pipe, then it is stopped and the task
says why. Either way the session has a deadline.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: What sops writes to stderr when the edited file does not load and it waits for a key.
REEDIT_PROMPT = "return to the editor"
#: How many times a session without a terminal goes back to the editor before it stops.
MAX_REEDITS = 2
#: How long an edit session may last (a person at an editor, or one that never returns).
SESSION_DEADLINE = 8 * 3600.0
#: How long sops gets to stop once the session is over before it is killed.
STOP_GRACE = 5.0


@dataclass(frozen=True)
class Session:
    """How an edit session ended: sops's exit code and, when it was stopped, why."""

    returncode: int
    stopped: str = ""


def edit(argv: Sequence[str], cwd: Path, env: Mapping[str, str], *, terminal: bool) -> Session:
    """Run ``sops edit`` (``argv``, the executable first): on the terminal as it is, or,
    without a terminal, with re-edit prompts answered at most :data:`MAX_REEDITS` times."""
    if terminal:
        return on_terminal(argv, cwd, env)
    return without_terminal(argv, cwd, env)


def on_terminal(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Session:
    process = subprocess.Popen(list(argv), cwd=cwd, env=dict(env))
    try:
        return Session(process.wait(timeout=SESSION_DEADLINE))
    except subprocess.TimeoutExpired:
        stop(process, group=False)
        return Session(process.returncode, f"the edit took longer than {SESSION_DEADLINE / 3600:g} hours")
    finally:
        stop(process, group=False)


def without_terminal(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Session:
    """sops with its stdin on a pipe of ours and its stderr passed on line by line, each
    re-edit prompt counted (and answered while there are answers left)."""
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # stopped as a whole, editor included
    )
    assert process.stdin is not None and process.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + SESSION_DEADLINE
    prompts = 0
    seen = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                stop(process, group=True)
                return Session(process.returncode, "the edit did not end within its deadline")
            if not selector.select(min(left, 0.2)):
                continue
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                return Session(process.wait(timeout=STOP_GRACE))
            sys.stderr.write(chunk.decode(errors="replace"))
            sys.stderr.flush()
            seen = (seen + chunk)[-4096:]
            while REEDIT_PROMPT.encode() in seen:
                seen = seen.split(REEDIT_PROMPT.encode(), 1)[1]
                prompts += 1
                if prompts > MAX_REEDITS:
                    stop(process, group=True)
                    return Session(
                        process.returncode, f"the file still does not load after {MAX_REEDITS} more edits"
                    )
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.write(b"\n")
                    process.stdin.flush()
    finally:
        selector.close()
        stop(process, group=True)
        for pipe in (process.stdin, process.stderr):
            with contextlib.suppress(OSError):
                pipe.close()


def stop(process: subprocess.Popen[bytes], *, group: bool) -> None:
    """End sops (with its editor when it has a group of its own), politely first."""
    if process.poll() is not None:
        return
    for signum, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
        try:
            process.wait(timeout=wait if wait is not None else STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue
