"""Fault injection: the swap is all-or-nothing under every signal and every OS error, and no
plaintext secret ever lands on a disk.

Four classes of cases:

1. **Crash at every step of the swap** (hypothesis, in-process, ``fork``): a child process
   runs :func:`swap.swap_in` on a random old and new tree and dies with ``os._exit`` (like
   SIGKILL: no cleanup at all) at a random filesystem step. The next run's recovery must
   leave exactly the old or exactly the new tree, no temporary file and no journal; the new
   one whenever the crash came after the commit point.
2. **An OS error at every step** (hypothesis, in-process): ENOSPC, EACCES, EROFS, EISDIR or
   EEXIST at a random step ends in one line naming the path, and exactly the old tree.
3. **Real signals on a real ``inv configure``** (subprocesses, real sops/kustomize, renames
   slowed so that signals land inside the swap): SIGINT, SIGTERM, SIGHUP and SIGKILL at
   random moments and during the swap, and two runs started together. After each: no
   plaintext secret in the repository, ``$TMPDIR`` or ``/dev/shm``; the tree old or new (and
   the one the interrupt message claims); the next plain ``configure`` leaves the new tree
   and ``configure --check`` passes.
4. **A full or read-only target during a real configure**: ENOSPC while writing the new
   files, EROFS in the middle of the renames: exit 1, one line naming the path and the OS
   error, the old tree byte for byte.
5. **SIGKILL at every rename of the other writers** (``inv init --from`` with the operator's
   keys outside the repository, ``inv sops.rotate``; real subprocesses, real sops): after
   each, readers refuse the unfinished swap, and the next writer's first step leaves every
   file old or every file new, with no temporary file left.
"""

from __future__ import annotations

import errno
import os
import pathlib
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.lib import swap
from tasks.lib.config import configure as pipeline
from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths
from tasks.lib.secrets.sopsfile import is_sops_name
from tests.conftest import EXAMPLE_OPERATOR, copy_repo, git
from tests.test_pipeline import MINIMAL_TEMPLATES, TOKEN, use_templates

# --------------------------------------------------------------------------- trees

NAMES = ("a.yaml", "d/b.yaml", "d/e/c.yaml", "f/g.sops.yaml", ".configure-manifest.json")
MANIFEST = ".configure-manifest.json"

trees = st.dictionaries(st.sampled_from(NAMES), st.binary(min_size=0, max_size=40), min_size=1)


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not {".git", swap.SCRATCH} & set(p.relative_to(root).parts)
    }


def plan_for(root: Path, old: dict[str, bytes], new: dict[str, bytes]) -> list[swap.Change]:
    """What configure hands the swap: the changed files, the removed ones, the manifest last."""
    write = sorted((n for n in new if old.get(n) != new[n]), key=lambda n: n == MANIFEST)
    changes = [swap.Change(root / n, new[n]) for n in write if n != MANIFEST]
    changes += [swap.Change(root / n, None) for n in sorted(n for n in old if n not in new)]
    return changes + [swap.Change(root / n, new[n]) for n in write if n == MANIFEST]


class Steps:
    """Counts the swap's filesystem steps; calls ``at_step`` when step ``k`` is reached."""

    def __init__(self, k: int, at_step: Callable[[str], None]) -> None:
        self.k = k
        self.count = 0
        self.at_step = at_step

    def wrap(self, what: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            if self.count == self.k:
                self.at_step(what)
            return real(*args, **kwargs)

        return step

    def install(self, monkey: Callable[[Any, str, Any], None]) -> None:
        monkey(swap, "write_durably", self.wrap("write", swap.write_durably))
        monkey(swap.os, "link", self.wrap("link", os.link))
        monkey(swap.os, "replace", self.wrap("replace", os.replace))
        monkey(pathlib.Path, "unlink", self.wrap("unlink", pathlib.Path.unlink))


def no_leftovers(root: Path) -> None:
    assert not swap.pending(root)
    scratch = swap.scratch(root)
    leftovers = [p.relative_to(scratch) for p in scratch.rglob("*")] if scratch.is_dir() else []
    assert [str(p) for p in leftovers if p.name != swap.LOCK_NAME] == []


# --------------------------------------------------------------------------- 1. crash anywhere


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=trees, new=trees, k=st.integers(min_value=1, max_value=30))
def test_a_crash_at_any_step_of_the_swap_recovers_to_old_or_new(
    tmp_path_factory: pytest.TempPathFactory, old: dict[str, bytes], new: dict[str, bytes], k: int
) -> None:
    root = tmp_path_factory.mktemp("crash")
    write_tree(root, old)
    changes = plan_for(root, old, new)
    pid = os.fork()
    if pid == 0:  # the child: crash like SIGKILL at step k (no cleanup of any kind)
        try:
            committing = {"seen": False}

            def die(what: str) -> None:
                os._exit(99 if committing["seen"] else 98)

            steps = Steps(k, die)
            steps.install(lambda obj, name, value: setattr(obj, name, value))
            real_save = swap.save_journal

            def save(root: Path, journal: swap.Journal) -> None:
                real_save(root, journal)
                committing["seen"] = journal.state == "committing"

            swap.save_journal = save  # type: ignore[assignment]
            swap.swap_in(root, changes)
            os._exit(0)
        except BaseException:
            os._exit(97)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 98, 99), f"child failed unexpectedly ({code})"
    swap.finish_interrupted(root, lambda line: None)
    after = read_tree(root)
    assert after in (old, new)
    if code in (0, 99):  # finished, or died after the commit point: the new tree
        assert after == new
    no_leftovers(root)


# --------------------------------------------------------------------------- 2. OS errors

OS_ERRORS = (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EISDIR, errno.EEXIST)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    old=trees,
    new=trees,
    k=st.integers(min_value=1, max_value=30),
    code=st.sampled_from(OS_ERRORS),
)
def test_an_os_error_at_any_step_leaves_the_old_tree(
    tmp_path_factory: pytest.TempPathFactory, old: dict[str, bytes], new: dict[str, bytes], k: int, code: int
) -> None:
    root = tmp_path_factory.mktemp("oserror")
    write_tree(root, old)
    changes = plan_for(root, old, new)

    def fail(what: str) -> None:
        raise OSError(code, os.strerror(code))

    steps = Steps(k, fail)
    undo: list[tuple[Any, str, Any]] = []

    def monkey(obj: Any, name: str, value: Any) -> None:
        undo.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    steps.install(monkey)
    try:
        swap.swap_in(root, changes)
        failed = None
    except UserError as error:
        failed = error
    finally:
        for obj, name, value in reversed(undo):
            setattr(obj, name, value)
    if failed is not None:
        (line,) = failed.lines
        assert line.startswith("could not write the new files, so nothing was changed: ")
        assert line.endswith(os.strerror(code) + (" (the disk is full)" if code == errno.ENOSPC else ""))
        assert read_tree(root) == old
    swap.finish_interrupted(root, lambda line: None)  # the next run: a no-op, or removes leftovers
    assert read_tree(root) == (old if failed is not None else new)
    no_leftovers(root)


# --------------------------------------------------------------------------- 3 and 4: real runs

#: Runs `inv` with the swap's renames slowed (so a signal can land inside the swap) and,
#: on request, an OS error injected: the n-th rename fails with EROFS, or the n-th flush of
#: a new file with ENOSPC.
WRAPPER = r"""
import errno, os, sys, time
slow = float(os.environ.get("FAULT_SLOW_RENAME", "0"))
rename_fails = int(os.environ.get("FAULT_EROFS_AT_RENAME", "0"))
flush_fails = int(os.environ.get("FAULT_ENOSPC_AT_FLUSH", "0"))
renames = [0]
flushes = [0]
real_replace, real_fsync = os.replace, os.fsync
def replace(src, dst, *args, **kwargs):
    if "/.home-ops/swap/new/" in str(src):
        renames[0] += 1
        time.sleep(slow)
        if renames[0] == rename_fails:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))
    return real_replace(src, dst, *args, **kwargs)
def fsync(fd):
    flushes[0] += 1
    if flushes[0] == flush_fails:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_fsync(fd)
os.replace, os.fsync = replace, fsync
sys.argv = ["inv", *sys.argv[1:]]
sys.path.insert(0, os.getcwd())  # the repository's own tasks, as `inv` there finds them
from tasks.__main__ import main  # `inv` itself: the guard around the whole run, not only the task
main()
"""

EXTRA_FILES = 12  # configmaps that all change with the domain: a swap of 15+ renames


def fault_templates() -> dict[str, str]:
    templates = dict(MINIMAL_TEMPLATES)
    names = [f"./extra-{i:02d}.yaml" for i in range(EXTRA_FILES)]
    templates["kubernetes/apps/default/kustomization.yaml.j2"] = (
        "---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - ./configmap.yaml\n  - ./secret.sops.yaml\n" + "".join(f"  - {n}\n" for n in names)
    )
    for i in range(EXTRA_FILES):
        templates[f"kubernetes/apps/default/extra-{i:02d}.yaml.j2"] = (
            f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra-{i:02d}\n"
            "data:\n  domain: #{ cloudflare_domain }#\n"
        )
    templates["kubernetes/apps/default/stale.yaml.j2"] = "---\n# removed by the change\n"
    return templates


def configure_in_process(repo: Path, **options: bool) -> None:
    pipeline.configure(repo_paths(repo), pipeline.Options(say=lambda line: None, **options))


def generated(repo: Path) -> dict[str, bytes]:
    """What configure writes: the rendered trees, .sops.yaml and the manifest (without its
    inputs digest, a cache key that names the repository's own path)."""
    import json

    files = {
        name: data
        for name, data in read_tree(repo).items()
        if name.startswith(("kubernetes/", "talos/", "bootstrap/")) or name == ".sops.yaml"
    }
    manifest = repo / MANIFEST
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        data.pop("inputs", None)
        files[MANIFEST] = json.dumps(data, sort_keys=True).encode()
    return files


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    """A repository rendered (the old tree) with a pending change, and the new tree that
    change renders to."""
    from tests.conftest import example_environment

    base = copy_repo(tmp_path_factory.mktemp("faults") / "base")
    for name in ("kubernetes", "talos", "bootstrap"):
        shutil.rmtree(base / name, ignore_errors=True)
    (base / ".configure-manifest.json").unlink(missing_ok=True)
    (base / ".sops.yaml").unlink()
    use_templates(base, fault_templates())
    git(base, "init", "-q", "-b", "main")
    with example_environment():
        configure_in_process(base)
        git(base, "add", "-A")
        git(base, "commit", "-q", "-m", "old")
        old = generated(base)
        (base / "templates/config/kubernetes/apps/default/stale.yaml.j2").unlink()
        cluster = base / "cluster.yaml"
        cluster.write_text(cluster.read_text().replace("example.com", "example.net"))
        probe = base.parent / "probe"
        shutil.copytree(base, probe, symlinks=True)
        configure_in_process(probe)
        new = generated(probe)
    assert old != new and "kubernetes/apps/default/stale.yaml" in old
    return base, old, new


PLAINTEXT = (TOKEN.encode(),)


#: Staging directories of the configure of older versions (``home-ops-configure-XXXXXXXX``,
#: no pid), which other checkouts on the same machine may be running meanwhile; this
#: version's are ``home-ops-configure-<pid>-XXXXXXXX`` and hold no plaintext.
OTHER_VERSIONS = re.compile(r"^home-ops-configure-(?!\d+-)")


def plaintext_files(*roots: Path, since: float = 0.0) -> list[str]:
    found = []
    for root in roots:
        if not root.is_dir():
            continue
        for directory, dirnames, files in os.walk(root):
            dirnames[:] = [d for d in dirnames if not OTHER_VERSIONS.match(d)]
            for name in files:
                path = Path(directory) / name
                try:
                    info = path.stat()
                    if info.st_mtime < since or info.st_size > 4_000_000 or not path.is_file():
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                if any(secret in data for secret in PLAINTEXT):
                    found.append(str(path))
    return found


def assert_no_plaintext_anywhere(repo: Path, tmpdir: Path, since: float) -> None:
    inputs = {repo / "cluster.sops.yaml"}
    in_repo = [p for p in plaintext_files(repo) if Path(p) not in inputs and "/.git/" not in p]
    assert in_repo == []
    assert plaintext_files(tmpdir) == []
    assert plaintext_files(Path("/dev/shm"), since=since) == []


class Run:
    """``inv configure`` in a subprocess, its output read as it comes."""

    def __init__(self, repo: Path, tmpdir: Path, wrapper: Path, env: dict[str, str]) -> None:
        full = {
            **os.environ,
            "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR),
            "TMPDIR": str(tmpdir),
            "PYTHONUNBUFFERED": "1",  # its progress lines tell when the task has started
            **env,
        }
        full.pop("HOME_OPS_DEBUG", None)
        self.process = subprocess.Popen(
            [sys.executable, str(wrapper), "configure"],
            cwd=repo,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.started = threading.Event()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.append(line)
            self.started.set()

    def finish(self) -> tuple[int, str]:
        _, err = self.process.communicate(timeout=240)
        self.reader.join(timeout=10)
        return self.process.returncode, err


@pytest.fixture
def wrapper(tmp_path: Path) -> Path:
    path = tmp_path / "inv_with_faults.py"
    path.write_text(WRAPPER)
    return path


def fresh(states: tuple[Path, dict[str, bytes], dict[str, bytes]], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the repository with its pending change, and an empty ``$TMPDIR`` for the run."""
    repo = tmp_path / "repo"
    shutil.copytree(states[0], repo, symlinks=True)
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    return repo, tmpdir


def settle_and_check(
    repo: Path, old: dict[str, bytes], new: dict[str, bytes], err: str, killed: bool = False
) -> str:
    """What the interrupted run left, then the next plain configure and --check. A killed
    run may leave a temporary (its journal half saved): the next run removes it."""
    left = "pending" if swap.pending(repo) else ("old" if generated(repo) == old else "new")
    if left != "pending":
        assert generated(repo) in (old, new)
        if not killed:
            no_leftovers(repo)
    if "nothing was written" in err:
        assert left == "old", err
    if "the new files are in place" in err:
        assert left == "new", err
    from tests.conftest import example_environment

    with example_environment():
        configure_in_process(repo)
        assert generated(repo) == new
        configure_in_process(repo, check=True)  # raises when the tree differs
    no_leftovers(repo)
    return left


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL)
EXPECTED_CODE = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129, signal.SIGKILL: -9}


@pytest.mark.parametrize("during_swap", [False, True], ids=["random-moment", "in-the-swap"])
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_at_any_moment_leaves_old_or_new_and_no_plaintext(
    states: tuple[Path, dict[str, bytes], dict[str, bytes]],
    tmp_path: Path,
    wrapper: Path,
    signum: int,
    during_swap: bool,
) -> None:
    _, old, new = states
    repo, tmpdir = fresh(states, tmp_path)
    since = time.time()
    run = Run(repo, tmpdir, wrapper, {"FAULT_SLOW_RENAME": "0.15"})
    assert run.started.wait(180), "configure printed nothing"
    if during_swap:  # once the renames have begun, somewhere among them (15+ x 0.15 s)
        deadline = time.monotonic() + 180
        while not committing(repo) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert committing(repo), "the swap never started"
        time.sleep(random.uniform(0.0, 1.5))
    else:
        time.sleep(random.uniform(0.0, 3.0))
    if run.process.poll() is None:
        run.process.send_signal(signum)
    code, err = run.finish()
    assert "Traceback" not in err
    finished = any(line.startswith("configure: done") for line in run.stdout)
    # Killed by the signal itself only once the task had finished (Invoke was exiting).
    assert code in (0, EXPECTED_CODE[signum]) or (code == -signum and finished), err
    if code == EXPECTED_CODE[signum] and signum != signal.SIGKILL:
        assert err.strip().splitlines()[-1].startswith("interrupted ("), err
    if code != 0 and signum != signal.SIGKILL:
        assert not swap.pending(repo)  # handled signals always finish or undo the swap
    assert_no_plaintext_anywhere(repo, tmpdir, since)
    left = settle_and_check(repo, old, new, err, killed=signum == signal.SIGKILL)
    if during_swap and signum == signal.SIGKILL:
        assert left == "pending"  # killed mid-swap: the next configure finished it (checked above)
    elif during_swap:
        assert code == EXPECTED_CODE[signum] and left == "new"  # the renames were finished first
        assert "the new files are in place" in err


def committing(repo: Path) -> bool:
    try:
        journal = swap.load_journal(repo)
    except UserError:  # caught while being replaced
        return False
    return journal is not None and journal.state == "committing"


def test_two_configures_at_once_never_blame_each_other(
    states: tuple[Path, dict[str, bytes], dict[str, bytes]], tmp_path: Path, wrapper: Path
) -> None:
    _, old, new = states
    repo, tmpdir = fresh(states, tmp_path)
    runs = [Run(repo, tmpdir, wrapper, {"FAULT_SLOW_RENAME": "0.05"}) for _ in range(2)]
    results = [run.finish() for run in runs]
    codes = sorted(code for code, _ in results)
    errors = "".join(err for _, err in results)
    assert "hand" not in errors and "changed since configure wrote them" not in errors, errors
    assert codes in ([0, 0], [0, 1]), errors
    if codes == [0, 1]:
        assert "another task is writing this repository (inv configure, pid " in errors
    assert generated(repo) == new
    assert_no_plaintext_anywhere(repo, tmpdir, 0)
    settle_and_check(repo, old, new, "")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"FAULT_ENOSPC_AT_FLUSH": "4"}, "No space left on device (the disk is full)"),
        ({"FAULT_EROFS_AT_RENAME": "6"}, "Read-only file system"),
    ],
    ids=["disk-full", "read-only"],
)
def test_a_full_or_read_only_target_leaves_the_old_tree(
    states: tuple[Path, dict[str, bytes], dict[str, bytes]],
    tmp_path: Path,
    wrapper: Path,
    env: dict[str, str],
    says: str,
) -> None:
    _, old, new = states
    repo, tmpdir = fresh(states, tmp_path)
    code, err = Run(repo, tmpdir, wrapper, env).finish()
    assert code == 1, err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert line.startswith("could not write the new files, so nothing was changed: ")
    assert line.endswith(says)
    assert generated(repo) == old
    no_leftovers(repo)
    assert settle_and_check(repo, old, new, err) == "old"


# --------------------------------------------------------------------------- 5. the other writers

#: ``inv`` that SIGKILLs itself just before its k-th rename (``os.replace``: the swap's
#: journal saves and every file it puts in place); with k = 0 it counts them instead.
KILL_WRAPPER = r"""
import atexit, os, signal, sys
kill_at = int(os.environ["FAULT_KILL_AT_RENAME"])
count = [0]
real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    count[0] += 1
    if count[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
if kill_at == 0:
    atexit.register(lambda: open(os.environ["FAULT_COUNT_FILE"], "w").write(str(count[0])))
sys.argv = ["inv", *sys.argv[1:]]
sys.path.insert(0, os.getcwd())  # the repository's own tasks, as `inv` there finds them
from tasks.lib.guard import run_program
run_program()
"""


def killed_at(
    repo: Path, tmp_path: Path, args: list[str], k: int, operator: Path
) -> subprocess.CompletedProcess[str]:
    wrapper = tmp_path / "inv_killed.py"
    wrapper.write_text(KILL_WRAPPER)
    env = {
        **os.environ,
        "HOME_OPS_OPERATOR_DIR": str(operator),
        "FAULT_KILL_AT_RENAME": str(k),
        "FAULT_COUNT_FILE": str(tmp_path / "renames"),
    }
    env.pop("HOME_OPS_DEBUG", None)
    return subprocess.run(
        [sys.executable, str(wrapper), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )


def files_of(*roots: Path) -> dict[str, bytes]:
    found = {}
    for root in roots:
        found.update({f"{root.name}/{name}": data for name, data in read_tree(root).items()})
    return found


def old_or_new(old: dict[str, bytes], after: dict[str, bytes], targets: set[str]) -> str:
    """``old`` when no target changed, ``new`` when every one did; anything else fails."""
    changed = {name for name in targets if after.get(name) != old.get(name)}
    assert changed in (set(), targets), f"mixed: {sorted(changed)} new, {sorted(targets - changed)} old"
    assert {n: d for n, d in after.items() if n not in targets} == {
        n: d for n, d in old.items() if n not in targets
    }
    return "new" if changed else "old"


def every_kill(
    tmp_path: Path, make: Callable[[Path], tuple[Path, Path, list[str]]], check_new: Callable[..., None]
) -> list[str]:
    """Run the task once to count its renames, then once killed at each of them; after each
    kill the next writer's first step (finish the interrupted swap) must leave old or new."""
    repo, operator, args = make(tmp_path / "count")
    old = files_of(repo, operator)
    done = killed_at(repo, tmp_path, args, 0, operator)
    assert done.returncode == 0, done.stderr
    total = int((tmp_path / "renames").read_text())
    targets = {n for n, d in files_of(repo, operator).items() if old.get(n) != d}
    assert total >= len(targets) >= 4
    outcomes = []
    for k in range(1, total + 1):
        repo, operator, args = make(tmp_path / f"kill-{k}")
        old = files_of(repo, operator)
        result = killed_at(repo, tmp_path, args, k, operator)
        assert result.returncode == -signal.SIGKILL, (k, result.stderr)
        if swap.pending(repo):
            with pytest.raises(UserError, match="left its swap unfinished"):
                swap.require_settled(repo)  # every reader of the tree refuses meanwhile
        swap.finish_interrupted(repo, lambda line: None, [operator])
        left = old_or_new(old, files_of(repo, operator), targets)
        if left == "new":
            check_new(repo, operator)
        no_leftovers(repo)
        no_leftovers(operator)
        outcomes.append(left)
    return outcomes


@pytest.mark.slow
def test_sigkill_at_every_rename_of_init_from_ends_old_or_new(tmp_path: Path) -> None:
    from tests.test_migrate import write_checkout

    checkout = write_checkout(tmp_path / "template")

    def make(where: Path) -> tuple[Path, Path, list[str]]:
        repo = copy_repo(where / "repo")
        operator = where / "operator"  # outside the repository: its own scratch
        operator.mkdir()
        return repo, operator, ["init", "--from", str(checkout.path)]

    def check_new(repo: Path, operator: Path) -> None:
        assert (operator / "age.key").read_text().strip().endswith(checkout.age_identity)
        assert stat.S_IMODE((operator / "age.key").stat().st_mode) == 0o600
        assert checkout.token.encode() not in (repo / "cluster.sops.yaml").read_bytes()

    outcomes = every_kill(tmp_path, make, check_new)
    assert "old" in outcomes and "new" in outcomes, outcomes


@pytest.mark.slow
def test_sigkill_at_every_rename_of_sops_rotate_ends_old_or_new(tmp_path: Path) -> None:
    plaintexts: dict[str, str] = {}

    def make(where: Path) -> tuple[Path, Path, list[str]]:
        return copy_repo(where / "repo"), EXAMPLE_OPERATOR, ["sops.rotate"]  # keys: only read

    def decrypted(repo: Path) -> dict[str, str]:
        found = {}
        for path in sorted(p for p in repo.rglob("*.sops.yaml") if is_sops_name(p)):
            env = {**os.environ, "SOPS_AGE_KEY_FILE": str(EXAMPLE_OPERATOR / "age.key")}
            result = subprocess.run(["sops", "--decrypt", str(path)], env=env, capture_output=True, text=True)
            assert result.returncode == 0, (path, result.stderr)
            found[str(path.relative_to(repo))] = result.stdout
        return found

    def check_new(repo: Path, operator: Path) -> None:
        if not plaintexts:
            plaintexts.update(decrypted(copy_repo(tmp_path / "reference")))
        assert decrypted(repo) == plaintexts  # re-encrypted, same secrets

    outcomes = every_kill(tmp_path, make, check_new)
    assert "old" in outcomes and "new" in outcomes, outcomes
