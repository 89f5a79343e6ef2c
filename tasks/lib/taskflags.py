"""Keep ``-h`` meaning help for every task.

Invoke gives each task option a one-letter short flag, its first free letter, so an option
named ``--helm`` would take ``-h`` and ``inv dev.validate -h`` would no longer show help.
"""

from __future__ import annotations

from typing import Any

from invoke import Collection, Task

RESERVED = frozenset({"h"})  # -h: Invoke's --help


class HelpSafeTask(Task):  # type: ignore[misc]
    """A task whose automatic short flags never take a reserved letter."""

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        taken_names.update(RESERVED)
        return super().arg_opts(name, default, taken_names)


def reserve_help_flag(collection: Collection) -> None:
    """Make every task of ``collection`` (and its sub-collections) a :class:`HelpSafeTask`."""
    for task in collection.tasks.values():
        if type(task) is Task:
            task.__class__ = HelpSafeTask
    for sub in collection.collections.values():
        reserve_help_flag(sub)
