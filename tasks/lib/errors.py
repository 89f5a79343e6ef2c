"""User-facing errors: one line per problem, exit code 1, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from invoke.exceptions import Exit


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the user's input, located as precisely as we know."""

    file: str
    line: int | None
    column: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class UserError(Exception):
    """A mistake in the user's config, arguments or environment.

    Carries one or more lines; tasks turn it into a clean exit with code 1.
    """

    def __init__(self, *lines: str | Problem) -> None:
        self.lines = [str(line) for line in lines]
        super().__init__("\n".join(self.lines))

    @classmethod
    def from_problems(cls, problems: Iterable[Problem]) -> UserError:
        return cls(*sorted(problems, key=lambda p: (p.file, p.line or 0, p.column or 0, p.key)))


F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Task decorator: print a UserError line by line to stderr and exit 1; turn Ctrl-C into
    a one-line message and exit 130. Anything else is a bug and keeps its traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as error:
            for line in error.lines:
                print(line, file=sys.stderr)
            raise Exit(code=1) from None
        except KeyboardInterrupt:
            print("interrupted: stopped cleanly, nothing was left half-written", file=sys.stderr)
            raise Exit(code=130) from None

    return wrapper  # type: ignore[return-value]
