"""The problems the project reports, one kind per source, all under one base class.

Standard library only: the commit hook's secret scanner imports it without the task
library's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass


class Problem:
    """Base of every problem the project reports: where it is (``file``, ``line`` when known)
    and what is wrong (``message``). ``str()`` of any problem is its one line for the user.

    The kinds: :class:`ConfigProblem` (cluster.yaml / nodes.yaml, with column and key), the
    validator's ``fluxtree.model.Problem`` (with its Kustomization chain) and the secret
    guard's ``secrets.scan.Finding``. :meth:`UserError.from_problems` takes any of them."""

    __slots__ = ()
    file: str
    line: int | None
    message: str

    @property
    def where(self) -> str:
        """``file`` or ``file:line``."""
        return f"{self.file}:{self.line}" if self.line else self.file

    def sort_key(self) -> tuple[str, int, int, str]:
        """Problems are listed by file, then position."""
        return (self.file, self.line or 0, 0, self.message)


@dataclass(frozen=True, order=True)
class ConfigProblem(Problem):
    """One thing wrong with the user's input, located as precisely as we know."""

    file: str
    line: int | None
    column: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.where
        if self.line is not None and self.column is not None:
            where += f":{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line or 0, self.column or 0, self.key)
