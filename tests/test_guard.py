"""No traceback reaches a user, for any input to any task.

Every task of ``tasks.ns`` runs inside the guard of :func:`tasks.lib.guard.friendly`, and
each is called here with hostile arguments (missing, directory, binary, non-UTF-8, huge
and odd values, every flag) on a scratch copy of the example with fake cluster tools. A
call may succeed or stop with a user error; an exit code 2 means the guard caught a bug,
which fails the test just as a traceback would. The Invoke program itself (unknown tasks,
bad flags, a bad ``-f`` file) and the guard's promises (bug -> one line + exit 2, signals
-> 128 + n, closed pipe -> silent) are checked through real ``inv`` processes.
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke import Collection, Config, Context, Task
from invoke.exceptions import Exit

import tasks
from tasks.lib.errors import DEBUG_ENV, UserError
from tasks.lib.guard import friendly
from tests.conftest import EXAMPLE_OPERATOR, copy_repo, git
from tests.fakes import FakeTools


def all_tasks(collection: Collection, prefix: str = "") -> Iterator[tuple[str, Task]]:
    for name, task in sorted(collection.tasks.items()):
        yield prefix + name, task
    for name, sub in sorted(collection.collections.items()):
        yield from all_tasks(sub, f"{prefix}{name}.")


TASKS = dict(all_tasks(tasks.ns))


def test_every_task_runs_inside_the_guard() -> None:
    assert len(TASKS) >= 25
    unguarded = [name for name, task in TASKS.items() if not getattr(task.body, "home_ops_guarded", False)]
    assert unguarded == []


# --------------------------------------------------------------------------- hostile calls

#: Tasks that would start the whole test suite or a long end-to-end run, or install hooks
#: from the network: called in dry mode (their argument handling is what is under test).
DRY_ONLY = {"dev.test", "dev.e2e", "lint.all", "lint.fix", "lint.yaml", "lint.markdown", "lint.actions"}
DRY_ONLY |= {"lint.install", "doctor", "dev.validate"}  # doctor --install builds tools from the network


def hostile_strings(scratch: Path) -> list[str]:
    binary = scratch / "binary.sops.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x01binary\x80")
    latin = scratch / "latin1.sops.yaml"
    latin.write_bytes("caf\xe9: ol\xe9\n".encode("latin-1"))
    directory = scratch / "a-dir.sops.yaml"
    directory.mkdir(exist_ok=True)
    return [
        "",
        str(scratch / "missing" / "file.sops.yaml"),
        str(directory),
        str(binary),
        str(latin),
        "-",
        "../../../../../../etc/passwd",
        "x" * 5000,
        "line\nbreak",
        "\x1b[31mred",
        "--help",
    ]


def hostile_numbers(default: float) -> list[Any]:
    """What Invoke's command line can hand a numeric parameter (it converts to the default's
    type, so text never arrives; that case is checked through `inv` below)."""
    if isinstance(default, int):
        return [0, -1, 10**12]
    return [-1.0, 0.0, float("nan"), float("inf")]


def calls_for(name: str, task: Task, scratch: Path) -> list[dict[str, Any]]:
    """Keyword arguments for ``task``: each parameter with each hostile value of its kind."""
    params = list(inspect.signature(task.body).parameters.values())[1:]
    calls: list[dict[str, Any]] = [{}] if all(p.default is not p.empty for p in params) else []
    strings = hostile_strings(scratch)
    for param in params:
        default = param.default
        if isinstance(default, bool):
            values: list[Any] = [True]
        elif isinstance(default, int | float):
            values = hostile_numbers(default)
        elif param.name in (task.iterable or []):
            values = [[value] for value in strings]
        else:
            values = strings
        for value in values:
            base = {p.name: (strings[1] if p.default is p.empty else p.default) for p in params}
            base[param.name] = value
            calls.append(base)
    return calls


@pytest.fixture
def hostile_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_tools: FakeTools) -> Path:
    repo = copy_repo(tmp_path / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    operator = tmp_path / "operator"
    import shutil

    shutil.copytree(EXAMPLE_OPERATOR, operator)
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(operator))
    monkeypatch.setenv("EDITOR", "true")  # sops.edit: an editor that saves nothing
    monkeypatch.setenv("VISUAL", "true")
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.chdir(repo)
    # Any remaining wait loop gives up quickly (cluster tools are fakes).
    fake_tools.script("kubectl", (None, {"exit": 1, "stdout": "", "stderr": "error: no cluster"}))
    fake_tools.script("talosctl", (None, {"exit": 1, "stdout": "", "stderr": "error: no node"}))
    fake_tools.script("flux", (None, {"exit": 1, "stdout": "", "stderr": "error: no cluster"}))
    return repo


def call_task(task: Task, repo: Path, dry: bool, kwargs: dict[str, Any]) -> int:
    overrides: dict[str, Any] = {"home_ops": {"root": str(repo)}, "run": {"dry": dry}}
    context = Context(config=Config(overrides=overrides))
    try:
        task.body(context, **kwargs)
    except Exit as done:
        return int(done.code)
    return 0


class Hung(BaseException):
    pass


def raise_hung(signum: int, frame: object) -> None:
    raise Hung


#: Known crashes, found by this test, not yet fixed (strict: the test fails once they are).
KNOWN_CRASHES: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_CRASHES[n], strict=True))
        if n in KNOWN_CRASHES
        else n
        for n in sorted(TASKS)
    ],
)
def test_hostile_arguments_never_crash_a_task(
    name: str, hostile_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = TASKS[name]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    dry = name in DRY_ONLY
    failures = []
    previous = signal.signal(signal.SIGALRM, raise_hung)
    try:
        for kwargs in calls_for(name, task, scratch):
            signal.alarm(60)
            try:
                code = call_task(task, hostile_repo, dry, kwargs)
            except Hung:
                failures.append(f"{name}({kwargs!r:.200}) hangs")
                continue
            finally:
                signal.alarm(0)
            err = capsys.readouterr().err
            if code == 2 or "Traceback" in err:
                failures.append(f"{name}({kwargs!r:.200}) -> exit {code}: {err.strip()[-400:]}")
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert failures == []


# --------------------------------------------------------------------------- the guard itself


def test_an_unexpected_exception_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    @friendly
    def broken() -> None:
        {}["missing"]

    with pytest.raises(Exit) as done:
        broken()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error (a bug in home-ops" in err and f"{DEBUG_ENV}=1" in err


def test_the_debug_variable_lets_the_traceback_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEBUG_ENV, "1")

    @friendly
    def broken() -> None:
        raise LookupError("kept")

    with pytest.raises(LookupError, match="kept"):
        broken()


def test_user_errors_are_lines_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    @friendly
    def wrong() -> None:
        raise UserError("first", "second")

    with pytest.raises(Exit) as done:
        wrong()
    assert done.value.code == 1
    assert capsys.readouterr().err == "first\nsecond\n"


# --------------------------------------------------------------------------- through `inv`


def inv(repo: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR)}
    env.pop(DEBUG_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "tasks", *args], cwd=repo, capture_output=True, text=True, env=env, **kwargs
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("nosuchtask",), "No idea what 'nosuchtask' is!"),
        (("configure", "--nope"), "No idea what '--nope' is!"),
        (("-f", "/nonexistent", "sops.check"), "inv: "),
        (("sops.decrypt",), "did not receive required positional arguments"),
        (("bootstrap.talos", "--deadline", "soon"), ""),
    ],
)
def test_the_invoke_program_prints_no_traceback(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    repo = copy_repo(tmp_path / "repo")
    result = inv(repo, *args)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert says in result.stderr


def test_a_closed_pipe_is_silent(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    env = {**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR)}
    inv = f"{sys.executable} -m tasks"
    command = f"{inv} --list | head -c 10 >/dev/null; {inv} sops.decrypt cluster.sops.yaml | head -c 1"
    result = subprocess.run(["bash", "-c", command], cwd=repo, capture_output=True, text=True, env=env)
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_signals_stop_a_task_cleanly(tmp_path: Path, fake_tools: FakeTools, signum: int, code: int) -> None:
    """A task waiting on a tool is stopped by SIGTERM/SIGHUP/Ctrl-C with one line and 128+n."""
    repo = copy_repo(tmp_path / "repo")
    fake_tools.script("flux", (None, {"exit": 0, "stdout": "", "stderr": "", "sleep": 30}))
    (repo / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    env = {**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tasks", "flux.reconcile"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not fake_tools.calls("flux") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake_tools.calls("flux"), "flux was never called"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert "Traceback" not in err
    assert err.strip().startswith("interrupted (")
