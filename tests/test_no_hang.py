"""No hang: configure run back to back, and after killed runs, always ends within its
deadline and leaves the write lock free; nothing in ``tasks/`` imports in a background
thread (an import there can wait forever for a module lock the main thread holds while it
spawns processes: the way a plain ``configure`` once hung, holding its lock).

1. **Two hundred plain configures** (``inv configure`` as the task runs it, in one process,
   most of them with nothing changed, one after an edit), each under its own deadline
   (``faulthandler`` prints every thread's stack and exits if a run overstays it), right
   after a series of configures SIGKILLed at different moments. After each run the write
   lock is free.
2. **Imports in threads**: every place in ``tasks/`` that starts a thread is known here, and
   the work those threads do (the Flux tree's parallel builds, the removal of their
   temporary folders) runs with every import statement watched: none may come from a
   module of ``tasks`` outside the main thread.
"""

from __future__ import annotations

import ast
import builtins
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tasks.lib import swap
from tests.conftest import EXAMPLE_OPERATOR, ROOT

#: The longest one configure may take here (a full render on a loaded machine takes a few
#: seconds; a hang never ends).
RUN_DEADLINE = 90
RUNS = 200

WORKER = textwrap.dedent(
    """
    import faulthandler, fcntl, os, sys
    from pathlib import Path

    from invoke import Config, Context

    from tasks import root
    from tasks.lib import swap

    repo, runs, deadline = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    context = Context(config=Config(overrides={"home_ops": {"root": str(repo)}}))
    edits = {runs // 2}  # the run renders (and the first may): the rest have nothing to do
    for index in range(runs):
        if index in edits:
            with open(repo / "cluster.yaml", "a") as config:
                config.write(f"# edit {index}\\n")
        faulthandler.dump_traceback_later(deadline, exit=True)  # a hang: every stack, then exit 1
        root.configure(context)
        faulthandler.cancel_dump_traceback_later()
        fd = os.open(swap.lock_path(repo), os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while anything still holds it
        os.close(fd)
        print(f"run {index} ok", file=sys.stderr, flush=True)
    """
)


def environment(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR), "TMPDIR": str(tmp_path)}
    env.pop("HOME_OPS_DEBUG", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


def lock_is_free(repo: Path) -> bool:
    try:
        with swap.locked(repo, "test"):
            return True
    except Exception:  # held: a UserError naming the holder
        return False


def kill_configures(repo: Path, env: dict[str, str], delays: tuple[float, ...]) -> list[int]:
    """Start ``inv configure`` with a change to render, SIGKILL it after each delay in turn."""
    codes = []
    for index, delay in enumerate(delays):
        with (repo / "cluster.yaml").open("a") as config:
            config.write(f"# killed run {index}\n")
        process = subprocess.Popen(
            [sys.executable, "-m", "tasks", "configure"],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        codes.append(process.wait(timeout=RUN_DEADLINE))
    return codes


def test_two_hundred_plain_configures_after_killed_ones_never_hang(
    example_repo: Path, tmp_path: Path
) -> None:
    env = environment(tmp_path)
    # From the first moments (imports) to the render and the swap.
    codes = kill_configures(example_repo, env, (0.05, 0.3, 1.0, 2.0))
    assert all(code in (0, -signal.SIGKILL) for code in codes), codes
    (tmp_path / "worker.py").write_text(WORKER)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "worker.py"), str(example_repo), str(RUNS), str(RUN_DEADLINE)],
        cwd=example_repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE * 6,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stderr.count(" ok\n") == RUNS
    # the last runs found the tree exactly as the manifest says: nothing mixed, nothing lost
    assert RUNS - 2 <= done.stdout.count("nothing changed since the last configure") <= RUNS - 1
    assert not swap.pending(example_repo)
    assert lock_is_free(example_repo)


# --------------------------------------------------------------------------- imports in threads

#: Every call in tasks/ that starts a thread, as (module, function or class called). Each is
#: exercised by :func:`test_no_import_happens_in_a_background_thread`; a new one must be too.
THREAD_STARTS = {
    ("tasks/lib/fluxtree/build.py", "Thread"),  # removing a build's temporary folder
    ("tasks/lib/fluxtree/build.py", "ThreadPoolExecutor"),  # the parallel kustomize builds
}
THREAD_MAKERS = {"Thread", "Timer", "ThreadPoolExecutor", "start_new_thread", "start_joinable_thread"}


def thread_starts() -> set[tuple[str, str]]:
    found = set()
    for path in sorted((ROOT / "tasks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                if name in THREAD_MAKERS:
                    found.add((path.relative_to(ROOT).as_posix(), name))
    return found


def test_every_place_that_starts_a_thread_is_watched() -> None:
    assert thread_starts() == THREAD_STARTS


@pytest.fixture
def watched_imports(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Every import statement run outside the main thread by a module of ``tasks``:
    (thread, importing module, imported name)."""
    seen: list[tuple[str, str, str]] = []
    real = builtins.__import__

    def watching(name: str, globals: Any = None, *args: Any, **kwargs: Any) -> Any:
        importer = (globals or {}).get("__name__", "")
        if threading.current_thread() is not threading.main_thread() and importer.startswith("tasks"):
            seen.append((threading.current_thread().name, importer, name))
        return real(name, globals, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", watching)
    return seen


def test_no_import_happens_in_a_background_thread(
    example_repo: Path, watched_imports: list[tuple[str, str, str]]
) -> None:
    from tasks.lib.fluxtree import validate
    from tasks.lib.fluxtree.build import Builder, wait_cleanup

    tree = validate(example_repo, workers=2)
    assert tree.kustomizations  # the builds ran, in the pool's threads
    with Builder(example_repo, workers=2):
        pass  # its temporary folder is removed by a thread
    wait_cleanup()
    assert watched_imports == []


def test_the_watch_sees_an_import_in_a_thread(watched_imports: list[tuple[str, str, str]]) -> None:
    """The watch itself works: a lazy import in a thread (what the rule forbids) is seen."""
    from tasks.lib.fluxtree import build

    code = compile("import json", build.__file__, "exec")
    worker = threading.Thread(target=exec, args=(code, {"__name__": "tasks.lib.fluxtree.build"}))
    worker.start()
    worker.join(timeout=10)
    assert ("tasks.lib.fluxtree.build", "json") in [(importer, name) for _, importer, name in watched_imports]
