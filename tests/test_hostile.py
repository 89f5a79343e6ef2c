"""Hostile repositories, manifests and arguments, each run through a real ``inv`` and judged
from outside the process.

Every run happens in a sandbox: the repository under attack (the bundled example, committed
to git), the operator's keys, ``HOME`` and ``TMPDIR``. Beside the sandbox lies a canary
tree, which is what the hostile input points at: a stand-in for ``/etc/shadow``, files a
manifest entry names, a folder a symlink leads to. For each run:

- nothing in the canary tree is read, listed, written, created or deleted: inotify watches
  every folder of it (it sees every open, read and change, by any process, children and
  grandchildren included), and its names, bytes, modes and mtimes are compared before and
  after; none of its contents appears in the output;
- the run ends within its deadline (it is killed and the test fails otherwise);
- its peak memory, the largest resident set of the process and any of its children (from
  ``wait4``), stays under 1 GiB;
- it exits 1 with exactly one line on stderr, naming the problem, and no traceback (``init
  --from`` ends its problems with "nothing was imported").

``test_the_watch_sees_a_child_reading_the_canary`` shows the watch is not blind.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_OPERATOR, copy_repo, git

DEADLINE = 240.0  # seconds per run (a configure takes a few on an idle machine)
MEMORY_LIMIT = 1 << 30  # bytes of peak resident memory, the run and every child
SHADOW = "root:$6$canary-in-the-mine$0123456789:19000:0:99999:7:::\n"
VICTIM = "precious data outside the repository\n"

# --------------------------------------------------------------------------- the canary


IN_ALL_EVENTS = 0x0FFF  # access, modify, attrib, close, open, move, create, delete, self
IN_DONT_FOLLOW = 0x02000000
IN_ONLYDIR = 0x01000000
EVENT_NAMES = {
    0x1: "read",
    0x2: "modified",
    0x4: "attributes changed",
    0x8: "closed after writing",
    0x10: "closed",
    0x20: "opened",
    0x40: "moved away",
    0x80: "moved in",
    0x100: "created",
    0x200: "deleted",
    0x400: "folder deleted",
    0x800: "folder moved",
}


class Watch:
    """inotify on every folder of a tree: every open, read, listing and change under it."""

    def __init__(self, root: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.folders: dict[int, Path] = {}
        for directory in [d for d, _, _ in os.walk(root)]:  # listed before watching: not an event
            mask = IN_ALL_EVENTS | IN_DONT_FOLLOW | IN_ONLYDIR
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(directory), mask)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
            self.folders[wd] = Path(directory)

    def events(self) -> list[str]:
        found = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, size = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + size].rstrip(b"\0").decode(errors="replace")
                offset += 16 + size
                what = ", ".join(text for bit, text in EVENT_NAMES.items() if mask & bit) or hex(mask)
                found.append(f"{self.folders.get(wd, '?')}/{name}: {what}")

    def close(self) -> None:
        os.close(self.fd)


def state(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry of the tree: mode, mtime and (for files) a digest of the bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns, digest)
    return found


def make_canary(outside: Path) -> None:
    (outside / "victim").mkdir(parents=True)
    (outside / "victim" / "rel.txt").write_text(VICTIM)
    (outside / "x").mkdir()
    (outside / "x" / "abs.txt").write_text(VICTIM)
    (outside / "x" / "abs.sops.yaml").write_text("secret: " + VICTIM)
    (outside / "shadow").write_text(SHADOW)
    (outside / "folder" / "sub").mkdir(parents=True)
    (outside / "folder" / "keep.yaml").write_text("kept: " + VICTIM)


# --------------------------------------------------------------------------- a run


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    peak: int  # bytes
    seconds: float


def run_inv(
    sandbox: Path, cwd: Path, args: list[str], deadline: float = DEADLINE, data_limit: int | None = None
) -> Ran:
    """``inv ARGS`` in the sandbox, killed (with its whole process group) at the deadline;
    with ``data_limit``, its heap and every child's may not grow past that many bytes."""
    env = {
        **os.environ,
        "HOME": str(sandbox / "home"),
        "TMPDIR": str(sandbox / "tmp"),
        "XDG_CACHE_HOME": str(sandbox / "home" / ".cache"),
        "HOME_OPS_OPERATOR_DIR": str(sandbox / "operator"),
        "NO_COLOR": "1",
    }
    env.pop("HOME_OPS_DEBUG", None)
    out, err = sandbox / "stdout", sandbox / "stderr"
    started = time.monotonic()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tasks", *args],  # the project's own `inv`
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=None if data_limit is None else functools.partial(limit_data, data_limit),
        )
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                os.wait4(process.pid, 0)
                pytest.fail(f"inv {' '.join(args)}: still running after {deadline:.0f} s")
            time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # nothing it started may outlive it
    return Ran(
        process.returncode,
        out.read_text(errors="replace"),
        err.read_text(errors="replace"),
        usage.ru_maxrss * 1024,
        time.monotonic() - started,
    )


# --------------------------------------------------------------------------- the sandbox


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example, committed, once per module (each case gets its own copy)."""
    repo = copy_repo(tmp_path_factory.mktemp("hostile") / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the example")
    return repo


@dataclass
class Sandbox:
    root: Path
    repo: Path
    outside: Path


@pytest.fixture
def sandbox(base: Path, tmp_path: Path) -> Iterator[Sandbox]:
    root = tmp_path / "sandbox"
    shutil.copytree(base, root / "repo", symlinks=True)
    shutil.copytree(EXAMPLE_OPERATOR, root / "operator")
    for name in ("home", "tmp"):
        (root / name).mkdir()
    outside = tmp_path / "outside"
    make_canary(outside)
    yield Sandbox(root, root / "repo", outside)


def limit_data(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def hostile_run(
    sandbox: Sandbox, args: list[str], cwd: Path | None = None, data_limit: int | None = None
) -> Ran:
    """Run with the canary watched; fail on any sign that the run went outside."""
    before = state(sandbox.outside)
    watch = Watch(sandbox.outside)
    try:
        ran = run_inv(sandbox.root, cwd or sandbox.repo, args, data_limit=data_limit)
        events = watch.events()
    finally:
        watch.close()
    assert events == [], f"inv {' '.join(args)} touched the canary: {events}"
    assert state(sandbox.outside) == before
    for secret in (SHADOW.strip(), VICTIM.strip(), "canary-in-the-mine"):
        assert secret not in ran.stdout + ran.stderr
    assert ran.peak < MEMORY_LIMIT, f"peak memory {ran.peak >> 20} MiB"
    return ran


def one_line(ran: Ran, *expected: str) -> str:
    assert "Traceback" not in ran.stderr, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert ran.code == 1 and len(lines) == 1, f"exit {ran.code}:\n{ran.stderr}"
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------- the cases

Setup = Callable[[Sandbox], list[str]]


def manifest_entry(name: Callable[[Sandbox], str], different: bool = False, force: bool = False) -> Setup:
    def setup(box: Sandbox) -> list[str]:
        path = box.repo / ".configure-manifest.json"
        data = json.loads(path.read_text())
        digest = hashlib.sha256(b"other" if different else VICTIM.encode()).hexdigest()
        data["files"][name(box)] = {"sha256": digest}
        path.write_text(json.dumps(data, indent=2))
        return ["configure", *(["--force"] if force else [])]

    return setup


def link(name: str, target: Callable[[Sandbox], Path], *args: str) -> Setup:
    def setup(box: Sandbox) -> list[str]:
        path = box.repo / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target(box))
        return list(args)

    return setup


def journal(target: Callable[[Sandbox], str], *args: str) -> Setup:
    """A swap journal committed into the repository (git-ignored, but `git add -f` works)."""

    def setup(box: Sandbox) -> list[str]:
        folder = box.repo / ".home-ops"
        folder.mkdir(exist_ok=True)
        entries = [{"target": target(box), "new": False, "old": True}]
        data = {"version": 2, "task": "configure", "state": "committing", "entries": entries}
        (folder / "journal.json").write_text(json.dumps(data))
        return list(args)

    return setup


def makejinja_inputs(folder: Callable[[Sandbox], str]) -> Setup:
    """makejinja.toml rendering one more folder (and a file in the repository to be found
    there, for a folder inside it)."""

    def setup(box: Sandbox) -> list[str]:
        (box.repo / "stray").mkdir()
        (box.repo / "stray" / "x.txt").write_text("not a template\n")
        toml = box.repo / "makejinja.toml"
        old = 'inputs = ["./templates/config"]'
        toml.write_text(toml.read_text().replace(old, f'inputs = ["./templates/config", "{folder(box)}"]'))
        return ["configure"]

    return setup


def relative_to_repo(*parts: str) -> Callable[[Sandbox], str]:
    return lambda box: os.path.relpath(box.outside.joinpath(*parts), box.repo)


def outside(*parts: str) -> Callable[[Sandbox], Path]:
    return lambda box: box.outside.joinpath(*parts)


def option(flag: str, *rest: str) -> Setup:
    return lambda box: [*rest[:1], flag, f"--output={box.outside / 'written'}", *rest[1:]]


CASES: dict[str, tuple[Setup, str]] = {
    # .configure-manifest.json decides what configure deletes; a pull request can carry it.
    "manifest-absolute": (manifest_entry(lambda box: str(box.outside / "x/abs.txt")), "an absolute path"),
    "manifest-relative": (manifest_entry(relative_to_repo("victim/rel.txt")), "leads out of its folder"),
    "manifest-through-a-rendered-folder": (
        manifest_entry(lambda box: "kubernetes/../" + relative_to_repo("victim/rel.txt")(box)),
        "leads out of its folder",
    ),
    "manifest-force": (
        manifest_entry(lambda box: str(box.outside / "x/abs.txt"), different=True, force=True),
        "an absolute path",
    ),
    "manifest-names-the-config": (manifest_entry(lambda box: "cluster.yaml"), "not under bootstrap/"),
    # a swap journal left in the repository: it decides what is renamed and deleted
    "journal-outside": (journal(relative_to_repo("victim/rel.txt"), "configure"), "leads out of its folder"),
    "journal-absolute": (
        journal(lambda box: str(box.outside / "x/abs.txt"), "configure"),
        "not in the operator's key folder",
    ),
    "journal-blocks-a-reader": (
        journal(lambda box: "kubernetes/apps/x.yaml", "dev.validate"),
        "left its swap unfinished",
    ),
    # symlinks out of the repository, read or written through
    "cluster-yaml-to-shadow": (
        link("cluster.yaml", outside("shadow"), "configure"),
        "cluster.yaml: a symlink",
    ),
    "nodes-yaml-to-shadow": (
        link("nodes.yaml", outside("shadow"), "configure", "--check"),
        "nodes.yaml: a symlink",
    ),
    "self-linked-secrets": (
        link("cluster.sops.yaml", lambda box: Path("cluster.sops.yaml"), "configure"),
        "cluster.sops.yaml: a symlink loop",
    ),
    "rendered-folder-out": (link("bootstrap", outside("folder"), "configure"), "bootstrap: a symlink"),
    "nested-rendered-folder-out": (
        link("kubernetes/apps/default", outside("folder"), "configure", "--force"),
        "kubernetes/apps/default: a symlink",
    ),
    "rendered-file-out": (link(".sops.yaml", outside("x/abs.txt"), "configure"), ".sops.yaml: a symlink"),
    "manifest-file-out": (
        link(".configure-manifest.json", outside("x/abs.txt"), "configure"),
        ".configure-manifest.json: a symlink",
    ),
    "template-out": (
        link("templates/config/kubernetes/leak.yaml.j2", outside("shadow"), "configure"),
        "templates/config/kubernetes/leak.yaml.j2: a symlink",
    ),
    # makejinja.toml: the templates come from inside, the output goes only where configure owns
    "makejinja-inputs-outside": (makejinja_inputs(lambda box: str(box.outside / "folder")), "inputs: "),
    "makejinja-inputs-up": (makejinja_inputs(relative_to_repo("folder")), "inputs: "),
    "makejinja-output-astray": (makejinja_inputs(lambda box: "./stray"), "the render produced 'x.txt'"),
    # secrets: every *.sops.* file the sops tasks touch stays inside
    "sops-encrypt-link-out": (
        link(
            "kubernetes/leak.sops.yaml",
            outside("x/abs.sops.yaml"),
            "sops.encrypt",
            "--path",
            "kubernetes/leak.sops.yaml",
        ),
        "kubernetes/leak.sops.yaml: a symlink",
    ),
    "sops-rotate-link-out": (
        link("kubernetes/leak.sops.yaml", outside("x/abs.sops.yaml"), "sops.rotate"),
        "kubernetes/leak.sops.yaml: a symlink",
    ),
    "sops-decrypt-absolute": (
        lambda box: ["sops.decrypt", str(box.outside / "x/abs.sops.yaml")],
        "outside the repository",
    ),
    # user input that git would read as an option
    "ci-changed-base-option": (option("--base", "ci.changed", "--path", "kubernetes/"), "--base '--output="),
    "dev-diff-base-option": (option("--base", "dev.diff"), "--base '--output="),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_input_is_refused_without_touching_anything_outside(sandbox: Sandbox, case: str) -> None:
    setup, expected = CASES[case]
    args = setup(sandbox)
    before = {p: p.read_bytes() for p in sandbox.repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    ran = hostile_run(sandbox, args)
    one_line(ran, expected)
    after = {p: p.read_bytes() for p in sandbox.repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before  # refused before anything was touched


# --------------------------------------------------------------------------- init --from


def template_checkout(box: Sandbox) -> Path:
    from tests.test_migrate import write_checkout

    return write_checkout(box.root / "template").path


def test_init_from_a_200_mb_token_is_one_line_in_bounded_memory(sandbox: Sandbox) -> None:
    checkout = template_checkout(sandbox)
    with (checkout / "github-push-token.txt").open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)  # sparse: 200 MB of NULs
    shutil.rmtree(sandbox.root / "operator")
    (sandbox.root / "operator").mkdir()
    # A heap limit, not the measured peak: a child's ru_maxrss starts at its parent's resident
    # size when it forked, so a grown test worker would be measured, not the run.
    ran = hostile_run(sandbox, ["init", "--from", str(checkout)], data_limit=256 << 20)
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert ran.code == 1 and "github-push-token.txt: too big" in lines[0], ran.stderr
    assert lines[-1] == "nothing was imported"
    assert sorted(p.name for p in (sandbox.root / "operator").iterdir()) == []


def test_init_from_a_checkout_whose_settings_lead_out_is_refused(sandbox: Sandbox) -> None:
    checkout = template_checkout(sandbox)
    (checkout / "cluster.yaml").unlink()
    (checkout / "cluster.yaml").symlink_to(sandbox.outside / "shadow")
    ran = hostile_run(sandbox, ["init", "--from", str(checkout)])
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert ran.code == 1 and "cluster.yaml: a symlink to" in lines[0], ran.stderr
    assert f"outside {checkout}" in lines[0] and lines[-1] == "nothing was imported"


# --------------------------------------------------------------------------- the watch itself


def test_the_watch_sees_a_child_reading_the_canary(tmp_path: Path) -> None:
    make_canary(tmp_path / "outside")
    watch = Watch(tmp_path / "outside")
    try:
        subprocess.run(
            ["cat", str(tmp_path / "outside" / "folder" / "keep.yaml")], check=True, capture_output=True
        )
        os.listdir(tmp_path / "outside" / "victim")
        events = watch.events()
    finally:
        watch.close()
    assert any(e.endswith("keep.yaml: opened") for e in events), events
    assert any("keep.yaml: read" in e for e in events), events
    assert any("/victim/: opened" in e for e in events), events


def test_a_checkout_elsewhere_agrees_on_the_committed_manifest(sandbox: Sandbox, tmp_path: Path) -> None:
    """The inputs digest names files relative to the root: a clone anywhere takes the fast
    path and leaves the committed manifest as it is."""
    moved = tmp_path / "somewhere" / "else"
    shutil.copytree(sandbox.repo, moved, symlinks=True)
    manifest = (moved / ".configure-manifest.json").read_bytes()
    ran = run_inv(sandbox.root, moved, ["configure"])
    assert ran.code == 0, ran.stderr
    assert "nothing changed since the last configure" in ran.stdout
    assert (moved / ".configure-manifest.json").read_bytes() == manifest
