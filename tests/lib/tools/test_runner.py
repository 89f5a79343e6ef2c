"""The one subprocess core (tasks/lib/tools/runner.py): outcomes, limits, interrupts, --dry."""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from invoke import Config, Context

from tasks.lib.errors import UserError
from tasks.lib.tools import runner
from tasks.lib.tools.runner import MB, Command, CommandFailed, Outcome, observe, run_many, run_one, started

PY = sys.executable


def python(code: str, **options: object) -> Command:
    return Command((PY, "-c", code), **options)  # type: ignore[arg-type]


def context(tmp_path: Path, **run: object) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(tmp_path)}, "run": run}))


# --------------------------------------------------------------------------- outcomes


def test_outcomes_come_back_in_order_with_their_output_and_exit_codes() -> None:
    outcomes = run_many(
        [
            python("import sys; sys.stdout.write('one')"),
            python("import sys; sys.stderr.write('bad\\n'); sys.exit(3)"),
            python("print(input())", stdin=b"fed\n"),
        ]
    )
    assert [(o.returncode, o.stdout.strip()) for o in outcomes] == [(0, "one"), (3, ""), (0, "fed")]
    assert outcomes[1].failed and outcomes[1].stderr == "bad\n" and outcomes[1].last_line == "bad"
    assert "exit 3" in outcomes[1].problem


def test_big_input_and_big_output_at_once_do_not_deadlock() -> None:
    data = os.urandom(3 * MB).hex().encode()  # 6 MB: far beyond any pipe buffer, both ways
    code = "import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d); sys.stderr.buffer.write(d)"
    (outcome,) = run_many([python(code, stdin=data)])
    assert outcome.ok and outcome.stdout.encode() == data and len(outcome.stderr) == len(data)


def test_a_command_runs_in_its_directory_with_the_repository_environment(tmp_path: Path) -> None:
    code = "import os; print(os.getcwd()); print(os.environ['KUBECONFIG']); print(os.environ['EXTRA'])"
    outcome = run_one(python(code, cwd=tmp_path, env={"EXTRA": "yes"}), paths=runner.repo_paths(tmp_path))
    cwd, kubeconfig, extra = outcome.stdout.splitlines()
    assert Path(cwd) == tmp_path and kubeconfig == str(tmp_path.resolve() / "kubeconfig") and extra == "yes"


def test_check_raises_one_line_per_problem_with_the_end_of_the_output() -> None:
    outcome = run_one(python("import sys; print('detail'); sys.exit(4)"))
    with pytest.raises(CommandFailed) as failed:
        outcome.check()
    assert failed.value.lines[0].startswith("command failed (exit 4): ")
    assert failed.value.lines[1:] == ["  detail"]


def test_a_missing_tool_stops_the_batch_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(UserError, match="no-such-tool-here not found"):
        run_many([python(f"open({str(marker)!r}, 'w')"), Command(("no-such-tool-here",))])
    assert not marker.exists()


def test_a_tool_that_cannot_start_is_a_failed_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken-tool"
    broken.write_bytes(b"\x7fELF not really")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    (outcome,) = run_many([Command(("broken-tool",))])
    assert outcome.failed and outcome.returncode != 0


# --------------------------------------------------------------------------- limits


def test_a_command_past_its_deadline_is_stopped_with_everything_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; "
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"
    )
    started_at = time.monotonic()
    outcome = run_one(python(code, deadline=1.0, what="waiting for nothing"))
    assert time.monotonic() - started_at < 10
    assert outcome.limit == runner.TIMEOUT and outcome.failed
    assert outcome.problem.endswith("did not finish within its 1 s deadline waiting for nothing")
    child = int(pid_file.read_text())
    for _ in range(50):  # the grandchild went with the process group
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the command's own child outlived the deadline")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA is enforced on Linux")
def test_a_command_over_its_memory_limit_is_one_problem_naming_what_it_did() -> None:
    outcome = run_one(python("b = bytearray(400 * 1024 * 1024)", memory=128 * MB, what="building X"))
    assert outcome.limit == runner.OUT_OF_MEMORY
    assert outcome.problem == f"{Path(PY).name} ran out of its 128 MB memory limit building X"
    with pytest.raises(CommandFailed) as failed:
        outcome.check()
    assert failed.value.lines == [outcome.problem]


BILLION_LAUGHS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: lol
data:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA is enforced on Linux")
def test_kubectl_kustomize_on_a_billion_laughs_stops_at_its_limit(tmp_path: Path) -> None:
    """The real Go tool: it gets close to its limit (RLIMIT_DATA counts Go's heap as it
    grows), then stops with one line instead of taking the machine's memory."""
    (tmp_path / "cm.yaml").write_text(BILLION_LAUGHS)
    (tmp_path / "kustomization.yaml").write_text("resources:\n- cm.yaml\n")
    started_at = time.monotonic()
    build = Command(("kubectl", "kustomize", "."), cwd=tmp_path, memory=256 * MB, what="building the laughs")
    outcome = run_one(build)
    assert time.monotonic() - started_at < 60
    assert outcome.limit == runner.OUT_OF_MEMORY, outcome.stderr[-500:]
    assert outcome.problem == "kubectl ran out of its 256 MB memory limit building the laughs"


def test_a_go_tool_starts_under_the_default_limit() -> None:
    outcome = run_one(Command(("kubectl", "version", "--client")))
    assert outcome.ok, outcome.stderr


def test_too_much_output_stops_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "MAX_OUTPUT", 1 * MB)
    outcome = run_one(python("import sys\nwhile True: sys.stdout.write('x' * 65536)"))
    assert outcome.limit == runner.TOO_MUCH_OUTPUT and len(outcome.stdout) <= 1 * MB


def test_a_process_left_behind_holding_the_output_does_not_hold_the_command() -> None:
    code = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); print('done')"
    )
    started_at = time.monotonic()
    outcome = run_one(python(code))
    assert outcome.ok and outcome.stdout.strip() == "done"
    assert time.monotonic() - started_at < runner.PIPE_GRACE + 5


# --------------------------------------------------------------------------- secrets


def test_registered_secrets_are_masked_in_stderr_and_in_the_problem() -> None:
    secret = "runner-test-secret-value-1"
    runner.register_secrets([secret])
    outcome = run_one(python(f"import sys; sys.stderr.write('oops {secret}\\n'); sys.exit(1)"))
    assert secret not in outcome.stderr and secret not in outcome.problem and "oops ***" in outcome.stderr


def test_streamed_output_is_masked_even_when_the_secret_arrives_in_pieces(capsys) -> None:
    secret = "runner-test-secret-value-2"
    runner.register_secrets([secret])
    half = len(secret) // 2
    code = (
        "import sys, time; "
        f"sys.stdout.write('a {secret[:half]}'); sys.stdout.flush(); time.sleep(0.3); "
        f"sys.stdout.write('{secret[half:]} b\\n'); sys.stdout.flush()"
    )
    run_one(python(code, stream=True))
    out = capsys.readouterr().out
    assert secret not in out and "a *** b" in out


def test_command_secrets_are_masked_where_the_command_is_shown(tmp_path: Path, capsys) -> None:
    c = context(tmp_path, dry=True)
    runner.run(c, ["tool-that-is-not-installed", "--token", "hunter2-secret"], secrets=["hunter2-secret"])
    assert capsys.readouterr().out.strip() == "tool-that-is-not-installed --token ***"


# --------------------------------------------------------------------------- --dry, --echo, observers


def test_dry_prints_the_line_with_its_directory_and_runs_nothing(tmp_path: Path, capsys) -> None:
    seen: list[Command] = []
    with observe(lambda command: seen.append(command)):  # type: ignore[func-returns-value]
        outcome = runner.run(context(tmp_path, dry=True), [PY, "-c", "raise SystemExit(9)"], cwd=tmp_path)
    assert outcome.ok and outcome.dry and seen == []
    assert capsys.readouterr().out.strip() == f"cd {tmp_path} && {PY} -c 'raise SystemExit(9)'"


def test_echo_prints_the_line_and_runs_it(tmp_path: Path, capsys) -> None:
    outcome = runner.run(context(tmp_path, echo=True), [PY, "-c", "print('ran')"])
    assert outcome.stdout.strip() == "ran"
    assert capsys.readouterr().out.splitlines() == [f"{PY} -c 'print('\"'\"'ran'\"'\"')'"]


def test_an_observer_sees_every_command_and_may_answer_for_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    answered = python(f"open({str(marker)!r}, 'w')")

    def answer(command: Command) -> Outcome | None:
        return Outcome(command, 0, "scripted") if command == answered else None

    with observe(answer):
        first, second = run_many([answered, python("print('real')")])
    assert first.stdout == "scripted" and not marker.exists()
    assert second.stdout.strip() == "real"


# --------------------------------------------------------------------------- interrupts, threads


def test_ctrl_c_is_passed_on_and_nothing_outlives_it(tmp_path: Path) -> None:
    marker = tmp_path / "got-sigint"
    code = (
        "import signal, sys, time\n"
        f"def stop(*_):\n    open({str(marker)!r}, 'w').write('x'); sys.exit(0)\n"
        "signal.signal(signal.SIGINT, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.0, _thread.interrupt_main)
    started_at = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            run_many([python(code), python(code.replace("got-sigint", "got-sigint-2"))])
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started_at < 10
    assert marker.exists() and (tmp_path / "got-sigint-2").exists()


def test_started_commands_run_while_the_block_works_and_no_thread_is_used() -> None:
    threads = threading.active_count()
    with started([python("import time; time.sleep(0.5); print('slow')")]) as batch:
        assert threading.active_count() == threads
        began = time.monotonic()
        time.sleep(0.5)  # the command sleeps at the same time
        (outcome,) = batch.wait()
    assert time.monotonic() - began < 0.5 + 0.4
    assert outcome.stdout.strip() == "slow"


def test_an_error_in_the_block_stops_the_started_commands(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    with pytest.raises(RuntimeError), started([python(code)]):
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.05)
        raise RuntimeError("the block failed")
    pid = int(pid_file.read_text())
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: not a zombie, not running


@pytest.mark.parametrize(
    ("argv", "tool"),
    [
        (("sudo", "-n", "-E", "/opt/bin/talosctl", "cluster", "destroy"), "talosctl"),
        (("sudo", "-u", "root", "apt-get", "install"), "apt-get"),
        (("sudo",), "sudo"),
        (("/usr/bin/git", "push"), "git"),
    ],
)
def test_a_problem_names_the_program_sudo_runs(argv: tuple[str, ...], tool: str) -> None:
    outcome = runner.Outcome(Command(argv, what="destroying the VMs"), 1, "", "error: busy\n")
    assert outcome.problem == f"{tool} failed destroying the VMs (exit 1): error: busy"
