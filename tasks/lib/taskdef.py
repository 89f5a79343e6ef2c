"""How every task is declared: Invoke's ``@task`` with the project's guard around the body.

``@task`` / ``@task(help=...)`` here is ``invoke.task`` applied to ``friendly(body)``, so no
task can forget the guard (one line per user error, exit 1; a clean exit on Ctrl-C), and the
result is typed as an Invoke ``Task`` for the collections that register it. Tasks are
:class:`HelpSafeTask`: Invoke gives each option a one-letter short flag, its first free
letter, so an option named ``--helm`` would take ``-h`` and ``inv TASK -h`` would no longer
show help; no automatic short flag takes ``-h`` here. And ``-f`` is ``--force`` in every
task that has one (``init --from`` would otherwise take it first).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, cast, overload

from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from tasks.lib.guard import friendly

RESERVED_SHORT_FLAGS = frozenset({"h"})  # -h: Invoke's --help
#: Options whose short flag is the same in every task: name -> letter.
FIXED_SHORT_FLAGS = {"force": "f"}

Body = Callable[..., None]
TaskDecorator = Callable[[Body], "Task[Any]"]


class HelpSafeTask(Task):  # type: ignore[type-arg]
    """A task whose automatic short flags never take a reserved letter."""

    @functools.cached_property
    def fixed_short_flags(self) -> set[str]:
        """The letters this task's options with a fixed short flag take."""
        parameters = inspect.signature(self.body).parameters
        return {letter for option, letter in FIXED_SHORT_FLAGS.items() if option in parameters}

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        taken_names.update(RESERVED_SHORT_FLAGS)
        fixed = self.fixed_short_flags
        if name in FIXED_SHORT_FLAGS:
            taken_names.discard(FIXED_SHORT_FLAGS[name])
        else:
            taken_names.update(fixed)
        return super().arg_opts(name, default, taken_names)


@overload
def task(body: Body, /) -> Task[Any]: ...
@overload
def task(**options: Any) -> TaskDecorator: ...
def task(body: Body | None = None, /, **options: Any) -> Task[Any] | TaskDecorator:
    """Declare a task: ``@task`` or ``@task(help={...}, iterable=[...], ...)`` (Invoke's options)."""

    def declare(function: Body) -> Task[Any]:
        return cast("Task[Any]", invoke_task(**{"klass": HelpSafeTask, **options})(friendly(function)))

    return declare(body) if body is not None else declare
