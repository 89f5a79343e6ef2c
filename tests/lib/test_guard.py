"""The guard (tasks/lib/guard.py) as a user meets it: ``inv`` itself, in a subprocess.

A stand-in collection (one task per kind of ending) runs under this project's
:class:`~tasks.lib.guard.Program` with the Invoke the lock installs: a user error is its
lines and exit 1, a bug one line and exit 2, a signal 128 + its number, a closed pipe
silence; Invoke's own errors are one line; a bare ``inv`` lists the tasks and a typo gets
the nearest name. ``inv`` itself (``python -m tasks``) survives Ctrl-C while it is still
loading Invoke.
"""

from __future__ import annotations

import importlib.metadata
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.lib.guard import nearest

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """\
import sys, time
from invoke import Collection
from tasks.lib.errors import UserError
from tasks.lib.guard import Program
from tasks.lib.taskdef import task

@task
def user(c):
    raise UserError("first line", "second line")

@task
def bug(c):
    raise RuntimeError("boom")

@task
def missing(c):
    open("/nonexistent/dir/file")

@task
def wait(c):
    print("ready", flush=True)
    time.sleep(60)

@task
def chatty(c):
    for number in range(200000):
        print(number)

@task(help={"force": "overwrite"})
def configure(c, force=False):
    print("configured")

Program(namespace=Collection(user, bug, missing, wait, chatty, configure), binary="inv").run()
"""


def inv(*args: str, **options: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PROGRAM, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,  # type: ignore[call-overload]
    )


def finished(*args: str) -> tuple[int, str, str]:
    process = inv(*args)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_runs_against_the_locked_invoke() -> None:
    lock = (ROOT / "uv.lock").read_text()
    version = importlib.metadata.version("invoke")
    assert f'name = "invoke"\nversion = "{version}"' in lock


def test_a_user_error_is_its_lines_and_exit_1() -> None:
    assert finished("user") == (1, "", "first line\nsecond line\n")


def test_a_bug_is_one_line_and_exit_2() -> None:
    code, out, err = finished("bug")
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("internal error (a bug in home-ops, please report it): RuntimeError: boom")


def test_an_os_error_is_the_path_and_the_reason() -> None:
    assert finished("missing") == (1, "", "/nonexistent/dir/file: No such file or directory\n")


@pytest.mark.parametrize(
    ("signum", "name"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP")]
)
def test_a_signal_stops_with_128_plus_its_number(signum: int, name: str) -> None:
    process = inv("wait")
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signum)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signum
    assert err == f"interrupted ({name}): stopped\n"


def test_a_closed_pipe_is_silent() -> None:
    process = inv("chatty")
    assert process.stdout is not None
    assert process.stdout.readline() == "0\n"
    process.stdout.close()
    process.wait(timeout=30)
    assert process.returncode == 141
    assert process.stderr is not None and process.stderr.read() == ""


def test_a_broken_config_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("run: [\n")
    code, out, err = finished("-f", str(broken), "configure")
    assert code == 1 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("inv: ")


def test_a_bare_inv_lists_the_tasks() -> None:
    code, out, err = finished()
    assert code == 0 and err == ""
    assert out.split() == ["Subcommands:", "bug", "chatty", "configure", "missing", "user", "wait"]


@pytest.mark.parametrize(
    ("args", "guess"),
    [(["confgure"], "configure"), (["configure", "--forse"], "--force"), (["chaty"], "chatty")],
)
def test_a_mistyped_name_gets_the_nearest_one(args: list[str], guess: str) -> None:
    code, out, err = finished(*args)
    assert code == 1 and out == ""
    (line,) = err.splitlines()
    assert line == f"No idea what '{args[-1]}' is! Did you mean '{guess}'?"


def test_nothing_close_gets_no_guess() -> None:
    assert finished("xyzzy") == (1, "", "No idea what 'xyzzy' is!\n")


def test_nearest_knows_namespaced_names() -> None:
    names = ["configure", "sops.check", "sops.edit", "dev.validate"]
    assert nearest("validate", names) == "dev.validate"
    assert nearest("sops.chek", names) == "sops.check"
    assert nearest("zzz", names) is None


# --------------------------------------------------------------------------- Ctrl-C while loading

INTERRUPT_AT = """\
import builtins, sys
from tasks.__main__ import main
count = [0]
real = builtins.__import__
def interrupting(name, *args, **kwargs):
    count[0] += 1
    if count[0] == {n}:
        raise KeyboardInterrupt
    return real(name, *args, **kwargs)
builtins.__import__ = interrupting
sys.argv = ["inv", "--list"]
main()
"""


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20, 40, 80, 160, 320])
def test_ctrl_c_at_any_import_of_inv_is_quiet(n: int) -> None:
    """Ctrl-C arriving at the n-th import ``inv`` does (Invoke, the collections): exit 130
    and one line, never a traceback."""
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPT_AT.format(n=n)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in done.stderr
    if done.returncode == 0:  # fewer imports than n: it listed the tasks
        assert done.stdout.startswith("Available tasks:")
    else:
        assert (done.returncode, done.stderr) == (130, "interrupted (Ctrl-C): stopped\n")


def test_ctrl_c_during_a_real_inv_run_is_quiet() -> None:
    """A real SIGINT once ``inv`` is loading (after Python's own start-up)."""
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "tasks", "--list"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:  # -X importtime: one line per module as it is imported
        if "invoke" in line:
            process.send_signal(signal.SIGINT)
            break
    err = process.stderr.read()
    process.wait(timeout=30)
    assert "Traceback" not in err
    assert process.returncode in (0, 130)
