"""`@task`: Invoke's task with the guard around it and short flags that never take -h."""

from __future__ import annotations

import pytest
from invoke import Collection, Context, Program
from invoke.exceptions import Exit

from tasks.lib.errors import UserError
from tasks.lib.taskdef import task


@task
def refuse(c: Context) -> None:
    """Always a user mistake."""
    raise UserError("first line", "second line")


@task(help={"helm": "inflate charts"})
def build(
    c: Context, helm: bool = False, hash: bool = False, force: bool = False, fast: bool = False
) -> None:
    """Options whose first letters would take -h and -f."""
    print(f"helm={helm} hash={hash} force={force} fast={fast}")


def short_flags(t: object) -> dict[str, str]:
    return {
        arg.name: next(iter(sorted(n for n in arg.names if len(n) == 1)), "") for arg in t.get_arguments()
    }  # type: ignore[attr-defined]


def test_a_user_error_in_a_task_is_its_lines_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exit) as stopped:
        refuse(Context())
    assert stopped.value.code == 1
    assert capsys.readouterr().err.splitlines() == ["first line", "second line"]


def test_no_automatic_short_flag_takes_h_and_f_is_force() -> None:
    flags = short_flags(build)
    assert "h" not in flags.values()
    assert flags["force"] == "f"
    assert flags["fast"] != "f"


def test_h_still_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    program = Program(namespace=Collection(build), binary="inv")
    with pytest.raises(SystemExit):
        program.run(["inv", "build", "-h"], exit=True)
    out = capsys.readouterr().out
    assert "Options whose first letters would take -h and -f." in out
    assert "-f, --force" in out and "-h," not in out
