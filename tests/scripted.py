"""Commands a test answers instead of running them, through the runner's observation.

``scripted(root, {"talhelper genconfig": Reply(), ...})`` gives an Invoke context for a
repository at ``root``; while the test runs, every command the runner would start is
recorded and answered from the script, keyed by its exact command line (a list of replies
is used up in order). A command the script has no answer for fails the task, like a
command the test did not expect. ``Reply`` (or anything with ``stdout``, ``stderr`` and
``exited``, such as Invoke's ``Result``) says what the command printed and how it exited.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from invoke import Config, Context

from tasks.lib.tools.runner import Command, Outcome


class Answer(Protocol):
    stdout: str
    stderr: str
    exited: int


@dataclass(frozen=True)
class Reply:
    stdout: str = ""
    stderr: str = ""
    exited: int = 0


class Script:
    """The answers, and every command asked for so far."""

    def __init__(self, answers: Mapping[str, Answer | Sequence[Answer]]) -> None:
        self.answers = {line: list(a) if isinstance(a, Sequence) else a for line, a in answers.items()}
        self.calls: list[Command] = []

    def __call__(self, command: Command) -> Outcome:
        self.calls.append(command)
        answer = self.answers.get(command.line)
        if isinstance(answer, list):
            if not answer:
                raise NotImplementedError(f"no more answers scripted for `{command.line}`")
            answer = answer.pop(0)
        if answer is None:
            raise NotImplementedError(f"no answer scripted for `{command.line}`")
        return Outcome(command, answer.exited or 0, answer.stdout or "", answer.stderr or "")

    def ran(self) -> list[str]:
        return [command.line for command in self.calls]

    def stdin_of(self, line: str) -> list[str]:
        """What each call of ``line`` received on stdin."""
        return [c.stdin.decode() for c in self.calls if c.line == line and c.stdin is not None]


class ScriptedContext(Context):  # type: ignore[misc]
    script: Script


#: The scripts of the running test (the conftest's observer answers from the last one).
ACTIVE: list[Script] = []


def scripted(root: Path, answers: Mapping[str, Any] | None = None, **overrides: Any) -> ScriptedContext:
    """A context for the repository at ``root`` whose commands the script answers."""
    script = Script(answers or {})
    ACTIVE.append(script)
    context = ScriptedContext(config=Config(overrides={"home_ops": {"root": str(root)}, **overrides}))
    object.__setattr__(context, "script", script)  # an attribute, not a config key
    return context


def answer(command: Command) -> Outcome | None:
    """The runner observer the conftest installs: the active script's answer, if any."""
    return ACTIVE[-1](command) if ACTIVE else None
