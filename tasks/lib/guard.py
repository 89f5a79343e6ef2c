"""The guard: the promises every task and ``inv`` itself keep, whatever goes wrong.

- a :class:`~tasks.lib.errors.UserError` is one line per problem and exit 1; so is an
  ``OSError`` (a missing folder, no permission, a full disk): the path and the error;
- anything else is a bug: one line saying so and how to see the traceback
  (``HOME_OPS_DEBUG=1``), exit 2;
- Ctrl-C, SIGTERM and SIGHUP stop cleanly (every ``finally`` runs) with exit 128 + the
  signal number (130 for Ctrl-C);
- a closed pipe (``inv ... | head``) ends silently.

:func:`friendly` wraps every task (``tasks.lib.taskdef.task`` applies it);
:class:`Program` is ``inv`` itself: Invoke's command line, through its public methods only,
with the same promises for what happens around the tasks (parsing, ``--list``, a broken
``-f`` config file), the task list for a bare ``inv`` and the nearest name for a mistyped
one.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from invoke import __version__
from invoke.collection import Collection
from invoke.exceptions import Exit, ParseError, UnexpectedExit
from invoke.program import Program as InvokeProgram

import tasks
from tasks.lib.errors import (
    DEBUG_ENV,
    HomeOpsError,
    UserError,
    signals_interrupt,
    silence_stdout,
    verdict,
)


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def judge(error: BaseException) -> tuple[list[str], int]:
    """The lines to print and the exit code for an exception that ended a task
    (:func:`~tasks.lib.errors.verdict`); a closed stdout is let go quietly."""
    if isinstance(error, BrokenPipeError):
        silence_stdout()
    return verdict(error)


def expected(error: BaseException) -> bool:
    """Errors that are never a bug: ``HOME_OPS_DEBUG`` shows a traceback for the others."""
    return isinstance(error, HomeOpsError | KeyboardInterrupt | BrokenPipeError)


def say(lines: Sequence[str]) -> None:
    for line in lines:
        try:
            print(line, file=sys.stderr)
        except OSError:  # stderr is gone too: nothing left to tell
            return


F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """The guard around every task (see the module docstring for what it promises)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with signals_interrupt():
                result = func(*args, **kwargs)
                sys.stdout.flush()  # a closed pipe shows here, inside the guard
                return result
        except Exit:
            raise
        except (Exception, KeyboardInterrupt) as error:
            if debugging() and not expected(error):
                raise
            lines, code = judge(error)
            say(lines)
            raise Exit(code=code) from None

    wrapper.home_ops_guarded = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------- inv


UNKNOWN = re.compile(r"^No idea what '(?P<token>.+)' is!")


def nearest(token: str, names: Sequence[str]) -> str | None:
    """The name ``token`` most likely meant (a typo, a missing namespace), if any is close."""
    bare = {name.rsplit(".", 1)[-1]: name for name in names}
    match = difflib.get_close_matches(token, names, n=1, cutoff=0.6)
    if match:
        return match[0]
    match = difflib.get_close_matches(token, list(bare), n=1, cutoff=0.75)
    return bare[match[0]] if match else None


class Program(InvokeProgram):
    """``inv``: Invoke's program, run step by step through its public methods, inside the
    guard. Bare ``inv`` lists the tasks; a mistyped task or option gets the nearest name.
    When started inside another checkout of this repository it hands over to that
    checkout's own code (``python -m tasks`` there), so a command never mixes the code of
    two checkouts."""

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        code = 0
        try:
            with signals_interrupt():
                self.create_config()
                writes_bytecode = not sys.dont_write_bytecode
                self.parse_core(argv)
                # Invoke stops Python writing bytecode (for a tasks.py beside the user's files);
                # this project's modules and dependencies are compiled once, like any
                # program's, unless Python itself was told not to (-B, PYTHONDONTWRITEBYTECODE).
                sys.dont_write_bytecode = not writes_bytecode
                self.parse_collection()
                if not self.listing_only():
                    self.parse_tasks()
                self.parse_cleanup()
                self.update_config()
                self.execute()
                sys.stdout.flush()  # `inv --list | head`: the closed pipe shows here
        except ParseError as error:
            say([self.explain(error)])
            code = 1
        except Exit as error:
            if error.message:
                say([str(error.message)])
            code = error.code
        except UnexpectedExit as error:  # Invoke's own c.run, in a task that uses it
            code = error.result.exited
            say([str(error)] if error.result.hide else [])
        except (Exception, KeyboardInterrupt) as error:
            if debugging() and not expected(error):
                raise
            lines, code = judge(error)
            if code == 2:  # not a task's bug: Invoke refused something it was given
                lines, code = [f"inv: {' '.join(str(error).split())[:300] or type(error).__name__}"], 1
            say(lines)
        if exit:
            sys.exit(code)

    def listing_only(self) -> bool:
        """``inv --list`` with nothing after it: the tasks need no parsing to be listed
        (the parser Invoke builds for every task is most of the listing's cost)."""
        return bool(self.args.list.value) and not self.core.unparsed

    def no_tasks_given(self) -> None:
        """A bare ``inv`` lists the tasks (Invoke would print its own help)."""
        self.list_tasks()
        raise Exit

    def explain(self, error: ParseError) -> str:
        """Invoke's parse error, with the nearest task or option when one is close."""
        message = str(error)
        found = UNKNOWN.match(message)
        collection = getattr(self, "collection", None)
        if not found or collection is None:
            return message
        token = found.group("token")
        if token.startswith("-"):
            context = getattr(error, "context", None)
            flags = sorted(context.flags) if context is not None else []
            guess = nearest(token, flags)
        else:
            guess = nearest(token, sorted(collection.task_names))
        return f"{message} Did you mean '{guess}'?" if guess else message

    def load_collection(self) -> None:
        """This checkout's tasks, or another checkout's own program when started inside it
        (``-c``/``-r`` keep Invoke's own search)."""
        if self.args.collection.value or self.args["search-root"].value:
            super().load_collection()
            return
        ours = Path(tasks.__file__).resolve().parent.parent
        found = enclosing_checkout(Path.cwd())
        if found is not None and found != ours:
            hand_over(found, self.argv[1:])
        if found is None:
            super().load_collection()
            return
        self.config.set_project_location(str(ours))
        self.config.load_project()
        self.collection = Collection.from_module(
            tasks, loaded_from=str(ours), auto_dash_names=self.config.tasks.auto_dash_names
        )


#: Set when ``inv`` handed a command over to another checkout's own program.
HANDED_OVER_ENV = "HOME_OPS_HANDED_OVER"


def enclosing_checkout(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding a ``tasks`` package with its
    own ``inv`` (``tasks/__main__.py``): a checkout of this repository."""
    for directory in (start, *start.parents):
        if (directory / "tasks" / "__main__.py").is_file():
            return directory.resolve()
    return None


def hand_over(root: Path, args: Sequence[str]) -> None:
    """Run this command with the code of the checkout at ``root`` instead (it never
    returns)."""
    if os.environ.get(HANDED_OVER_ENV) == str(root):
        raise UserError(f"{root}: its `inv` does not run its own tasks — run `python -m tasks` there")
    env = {**os.environ, HANDED_OVER_ENV: str(root)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "tasks", *args], env)  # noqa: S606 - no shell


def run_program(argv: list[str] | None = None) -> None:
    """``inv``: this project's :class:`Program` (exits with the task's code)."""
    Program(name="Invoke", binary="inv", binary_names=["invoke", "inv"], version=__version__).run(argv)
