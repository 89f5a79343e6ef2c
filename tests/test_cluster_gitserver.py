"""The cluster test's git server, for real: the real git clones, fetches and pushes through
it (a concurrent clone while a push is in flight included), what is not a repository path is
a 404 before git runs, and it stops on SIGTERM through the runner's ``Batch.stop``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.lib.clustertest import gitserver
from tasks.lib.clustertest.gitserver import BadRequest, parse_cgi, read_body
from tasks.lib.tools import runner
from tasks.lib.tools.runner import Command
from tests.conftest import git

REPO = "home-ops.git"


def headers(**values: str) -> Message:
    message = Message()
    for name, value in values.items():
        message[name.replace("_", "-")] = value
    return message


# --------------------------------------------------------------------------- pure parts


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, start = bytearray(), 0
    for size in [*sizes, len(body)]:
        piece = body[start : start + size]
        if not piece:
            continue
        out += f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n"
        start += len(piece)
        if start >= len(body):
            break
    return bytes(out) + b"0\r\nTrailer: x\r\n\r\n"


@given(st.binary(max_size=4096), st.lists(st.integers(min_value=1, max_value=700), max_size=12))
def test_a_chunked_body_reads_back_exactly(body: bytes, sizes: list[int]) -> None:
    stream = io.BytesIO(chunked(body, sizes) + b"NEXT")
    assert read_body(stream, headers(Transfer_Encoding="chunked")) == body
    assert stream.read() == b"NEXT", "nothing after the last chunk is consumed"


@pytest.mark.parametrize(
    ("data", "hdrs", "status"),
    [
        (b"zz\r\n", {"Transfer_Encoding": "chunked"}, 400),  # not a hex size
        (b"10\r\nshort\r\n", {"Transfer_Encoding": "chunked"}, 400),  # ends early
        (b"", {"Content_Length": "12"}, 400),
        (b"", {"Content_Length": "-1"}, 400),
        (b"", {"Content_Length": str(gitserver.MAX_BODY + 1)}, 413),
        (b"fffffffffff\r\n", {"Transfer_Encoding": "chunked"}, 413),
    ],
)
def test_a_bad_body_is_refused_with_its_status(data: bytes, hdrs: dict[str, str], status: int) -> None:
    with pytest.raises(BadRequest) as refused:
        read_body(io.BytesIO(data), headers(**hdrs))
    assert refused.value.status == status


def test_cgi_output_becomes_status_headers_and_body() -> None:
    found = parse_cgi(
        b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\nExpires: 0\r\n\r\nno\r\n\r\nmore"
    )
    assert (found.status, found.reason, found.body) == (403, "Forbidden", b"no\r\n\r\nmore")
    assert found.headers == (("Content-Type", "text/plain"), ("Expires", "0"))
    assert parse_cgi(b"Content-Type: x\n\nbody").status == 200
    with pytest.raises(BadRequest):
        parse_cgi(b"no header end")


@pytest.mark.parametrize(
    "path",
    ["/home-ops.git/../x.git/info/refs", "/etc/passwd", "/home-ops.git/objects/ab/cdef", "/.git/info/refs",
     "/home-ops/info/refs", "/nope.git/info/refs", "/home-ops.git/info/refs/x"],
)  # fmt: skip
def test_only_smart_http_paths_of_an_existing_repository_reach_git(tmp_path: Path, path: str) -> None:
    (tmp_path / REPO).mkdir()
    with pytest.raises(BadRequest):
        gitserver.git_request(tmp_path, path)
    assert gitserver.git_request(tmp_path, f"/{REPO}/info/refs") == REPO


# --------------------------------------------------------------------------- for real


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The server on 127.0.0.1 serving an empty bare repository, started and stopped as
    dev.cluster-test does (through the runner); yields the repository's URL."""
    root = tmp_path / "served"
    root.mkdir()
    git(root, "init", "-q", "--bare", "--initial-branch", "main", REPO)
    ready = tmp_path / "ready"
    log = tmp_path / "server.log"
    command = Command(
        (sys.executable, "-m", "tasks.lib.clustertest.gitserver", "--root", str(root),
         "--listen", "127.0.0.1", "--ready", str(ready), "--log", str(log), "--deadline", "300"),
        deadline=320,
    )  # fmt: skip
    with runner.started([command]) as batch:
        until = time.monotonic() + 20
        while not ready.exists() and batch.jobs and time.monotonic() < until:
            batch.step()
        assert ready.exists(), log.read_text() if log.exists() else "no log"
        host, _, port = ready.read_text().strip().rpartition(":")
        yield f"http://{host}:{port}/{REPO}"
        (outcome,) = batch.stop()
    assert outcome.returncode == 0 and not outcome.limit, outcome.problem
    assert "stopped" in log.read_text()


def work_tree(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".git").exists():
        git(path, "init", "-q", "-b", "main")
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", f"{len(files)} files")
    return path


def test_clone_fetch_and_push_through_the_server(server: str, tmp_path: Path) -> None:
    source = work_tree(tmp_path / "source", {"README.md": b"hello\n", "kubernetes/a.yaml": b"a: 1\n"})
    git(source, "push", "-q", server, "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", server, str(clone))
    assert (clone / "kubernetes" / "a.yaml").read_bytes() == b"a: 1\n"
    assert git(clone, "rev-parse", "HEAD") == git(source, "rev-parse", "HEAD")
    # Another commit, pushed from the clone; fetched by the first work tree.
    work_tree(clone, {"kubernetes/b.yaml": b"b: 2\n"})
    git(clone, "push", "-q", "origin", "main")
    git(source, "fetch", "-q", server, "main")
    assert git(source, "rev-parse", "FETCH_HEAD") == git(clone, "rev-parse", "HEAD")
    assert (
        git(tmp_path, "ls-remote", server, "refs/heads/main").split()[0]
        == git(clone, "rev-parse", "HEAD").strip()
    )


def test_a_big_push_goes_in_chunks_and_a_clone_during_it_sees_a_whole_commit(
    server: str, tmp_path: Path
) -> None:
    source = work_tree(tmp_path / "source", {"first.txt": b"first\n"})
    git(source, "push", "-q", server, "main")
    first = git(source, "rev-parse", "HEAD").strip()
    big = {f"blob-{i}.bin": os.urandom(1 << 20) for i in range(24)}  # 24 MB: over git's 1 MB postBuffer
    work_tree(source, big)
    second = git(source, "rev-parse", "HEAD").strip()
    env = {**os.environ, "GIT_TRACE_CURL_NO_DATA": "1", "GIT_TRACE_CURL": str(tmp_path / "curl.trace")}
    push = subprocess.Popen(
        ["git", "push", "-q", server, "main"], cwd=source, env=env, stderr=subprocess.PIPE, text=True
    )
    clones: list[str] = []
    errors: list[str] = []

    def clone(index: int) -> None:
        target = tmp_path / f"clone-{index}"
        result = subprocess.run(["git", "clone", "-q", server, str(target)], capture_output=True, text=True)
        if result.returncode:
            errors.append(result.stderr)
        else:
            clones.append(git(target, "rev-parse", "HEAD").strip())

    threads = [threading.Thread(target=clone, args=(i,)) for i in range(3)]
    time.sleep(0.05)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert push.wait(timeout=120) == 0, push.stderr.read() if push.stderr else ""
    assert not errors, errors
    assert clones and set(clones) <= {first, second}, "each clone got one whole commit, old or new"
    assert "chunked" in (tmp_path / "curl.trace").read_text().lower(), "the push went in chunks"
    final = tmp_path / "final"
    git(tmp_path, "clone", "-q", server, str(final))
    assert git(final, "rev-parse", "HEAD").strip() == second
    assert (final / "blob-7.bin").read_bytes() == big["blob-7.bin"]


def test_what_is_not_a_repository_is_a_404_and_nothing_else_is_served(server: str) -> None:
    import urllib.error
    import urllib.request

    base = server.rsplit("/", 1)[0]
    for path in (
        "/etc/passwd",
        "/home-ops.git/../../etc/passwd",
        "/other.git/info/refs",
        "/home-ops.git/config",
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + path, timeout=10)
        assert refused.value.code == 404, path
    with urllib.request.urlopen(f"{server}/info/refs?service=git-upload-pack", timeout=10) as answer:
        assert answer.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"


def test_a_server_that_cannot_listen_says_so_and_exits_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasks.lib.clustertest.gitserver",
            "--root",
            str(tmp_path),
            "--listen",
            "192.0.2.1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("cannot listen on 192.0.2.1:0: ")
