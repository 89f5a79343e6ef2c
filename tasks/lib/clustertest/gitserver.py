"""A git smart-HTTP server for a throw-away cluster: ``git http-backend`` (git's own CGI
program) behind a small forking HTTP server. No container, nothing but git and Python.

Run as its own process::

    python -m tasks.lib.clustertest.gitserver --root DIR --listen ADDR [--port N]

It binds ``ADDR:N`` (port 0, the default: any free port), writes ``ADDR:PORT`` to the
``--ready`` file once it accepts connections, and serves the bare repositories directly
under ``DIR`` (clone, fetch and push) until SIGTERM, Ctrl-C or its ``--deadline``. Each
request is handled in a child process of its own (a fork of a process that runs no thread,
so no import ever waits on another thread): it reads the request, bounded in size and time,
runs ``git http-backend`` through the runner with the request as its CGI input, and sends
back what git wrote. Only git's smart-HTTP paths of a repository that exists reach git;
anything else is a 404. Pushes are accepted (``http.receivepack``): that is what it is for.

It has no authentication: whoever reaches the address may push. It listens only on the
address it is given (a VM network's gateway) and only while one cluster test runs.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import io
import os
import re
import socketserver
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.lib.errors import signals_interrupt
from tasks.lib.tools.runner import GB, MB, Command, run_one

#: The paths git's smart HTTP protocol asks for, of a repository ``NAME.git``.
GIT_PATH = re.compile(
    r"^/(?P<repo>[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.git)/(?P<service>info/refs|HEAD|git-upload-pack|git-receive-pack)$"
)
#: The largest request body accepted (a push of the whole repository fits many times over).
MAX_BODY = 256 * MB
#: How long a client may take to send its request before the connection is dropped.
REQUEST_TIMEOUT = 120.0
#: How long one ``git http-backend`` may run, and the memory it may use.
BACKEND_DEADLINE = 300.0
BACKEND_MEMORY = 2 * GB
#: How long the server runs unless stopped first, by default.
DEFAULT_DEADLINE = 6 * 3600.0
#: Children (requests in progress) at most; more wait for one to finish.
MAX_CHILDREN = 32


class BadRequest(Exception):
    """A request this server refuses before git runs: its HTTP status and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class DeadlinePassed(Exception):
    """The server ran for as long as it was allowed to."""


# --------------------------------------------------------------------------- pure parts


def read_body(stream: io.BufferedIOBase, headers: Any, limit: int = MAX_BODY) -> bytes:
    """The request body: ``Content-Length`` bytes, or the chunks of a ``Transfer-Encoding:
    chunked`` request (git sends a large push in chunks). Larger than ``limit``: refused."""
    if str(headers.get("Transfer-Encoding", "")).strip().lower() == "chunked":
        return read_chunked(stream, limit)
    length_text = str(headers.get("Content-Length") or "0").strip()
    if not length_text.isdigit():
        raise BadRequest(400, f"Content-Length {length_text[:20]!r} is not a number")
    length = int(length_text)
    if length > limit:
        raise BadRequest(413, f"request body of {length} bytes is over the {limit} byte limit")
    body = stream.read(length)
    if len(body) != length:
        raise BadRequest(400, "the request body ended early")
    return body


def read_chunked(stream: io.BufferedIOBase, limit: int) -> bytes:
    body = bytearray()
    while True:
        line = stream.readline(1024)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest(400, "a malformed chunk size") from None
        if size < 0 or len(body) + size > limit:
            raise BadRequest(413, f"request body over the {limit} byte limit")
        if size == 0:
            while stream.readline(1024).strip():  # trailer fields, then the empty line
                pass
            return bytes(body)
        chunk = stream.read(size)
        if len(chunk) != size or stream.readline(1024).strip():
            raise BadRequest(400, "a chunk ended early")
        body += chunk


@dataclass(frozen=True)
class CgiResponse:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def parse_cgi(output: bytes) -> CgiResponse:
    """What a CGI program wrote: header lines (``Status:`` among them, else 200), an empty
    line, the body."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = output.partition(separator)
        if found:
            break
    else:
        raise BadRequest(502, "git http-backend wrote no header")
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    for raw in head.decode("latin-1").splitlines():
        name, colon, value = raw.partition(":")
        if not colon:
            continue
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            code, _, text = value.partition(" ")
            if code.isdigit():
                status, reason = int(code), text or reason
        else:
            headers.append((name, value))
    return CgiResponse(status, reason, tuple(headers), body)


def cgi_env(
    root: Path, method: str, path: str, query: str, headers: Any, body: bytes, client: str
) -> dict[str, str]:
    """The CGI variables ``git http-backend`` reads, pushes enabled (``http.receivepack``
    through git's environment configuration, whatever the repository's own config says)."""
    env = {
        "GIT_PROJECT_ROOT": str(root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.receivepack",
        "GIT_CONFIG_VALUE_0": "true",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": client,
        "CONTENT_TYPE": str(headers.get("Content-Type") or ""),
        "CONTENT_LENGTH": str(len(body)),
    }
    for header, variable in (
        ("Git-Protocol", "HTTP_GIT_PROTOCOL"),
        ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
    ):
        value = headers.get(header)
        if value:
            env[variable] = str(value)
    return env


def git_request(root: Path, path: str) -> str:
    """The repository a request path is for (``NAME.git``), or BadRequest 404."""
    match = GIT_PATH.match(path)
    if match is None or not (root / match["repo"]).is_dir():
        raise BadRequest(404, "not a git repository path")
    return match["repo"]


# --------------------------------------------------------------------------- the server


class Server(socketserver.ForkingMixIn, http.server.HTTPServer):
    """One child process per request; the parent only accepts and reaps."""

    allow_reuse_address = True
    block_on_close = False  # children end by their own deadlines; closing never waits on one
    max_children = MAX_CHILDREN

    def __init__(self, address: tuple[str, int], root: Path, log: Path | None, deadline_at: float) -> None:
        self.root = root
        self.log = log
        self.deadline_at = deadline_at
        super().__init__(address, Handler)

    def service_actions(self) -> None:
        super().service_actions()  # reaps finished children
        if time.monotonic() > self.deadline_at:
            raise DeadlinePassed()

    def note(self, line: str) -> None:
        if self.log is None:
            return
        with contextlib.suppress(OSError), self.log.open("a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {line}\n")


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.0"  # one request per connection: nothing to keep track of

    def do_GET(self) -> None:
        self.serve_git()

    def do_POST(self) -> None:
        self.serve_git()

    def serve_git(self) -> None:
        path, _, query = self.path.partition("?")
        try:
            git_request(self.server.root, path)
            body = read_body(self.rfile, self.headers) if self.command == "POST" else b""
            response = self.backend(path, query, body)
        except BadRequest as error:
            self.send_error(error.status, error.reason)
            return
        self.send_response(response.status, response.reason)
        for name, value in response.headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def backend(self, path: str, query: str, body: bytes) -> CgiResponse:
        env = cgi_env(self.server.root, self.command, path, query, self.headers, body, self.client_address[0])
        command = Command(
            ("git", "http-backend"),
            stdin=body,
            env=env,
            deadline=BACKEND_DEADLINE,
            memory=BACKEND_MEMORY,
            what=f"serving {self.command} {path}",
        )
        outcome = run_one(command)
        for line in outcome.stderr.strip().splitlines():
            self.server.note(f"git http-backend: {line}")
        if outcome.limit or not outcome.data:
            raise BadRequest(502, outcome.problem)
        return parse_cgi(outcome.data)

    def log_message(self, format: str, *args: Any) -> None:
        self.server.note(f"{self.client_address[0]} {format % args}")


def write_ready(path: Path, host: str, port: int) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{host}:{port}\n", encoding="utf-8")
    partial.replace(path)


def serve(root: Path, host: str, port: int, ready: Path | None, log: Path | None, deadline: float) -> int:
    """Serve until SIGTERM/SIGHUP/Ctrl-C or ``deadline`` seconds; 0, or 1 when it cannot listen."""
    with signals_interrupt():
        try:
            server = Server((host, port), root, log, time.monotonic() + deadline)
        except OSError as error:
            print(f"cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
            return 1
        bound = server.server_address[1]
        server.note(f"serving {root} on http://{host}:{bound}/")
        if ready is not None:
            write_ready(ready, host, int(bound))
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            server.note("stopped")
        except DeadlinePassed:
            server.note(f"stopped: its {deadline:g} s deadline passed")
        finally:
            server.server_close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve bare git repositories over smart HTTP.")
    parser.add_argument("--root", required=True, help="directory holding the bare repositories (NAME.git)")
    parser.add_argument("--listen", required=True, help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument("--ready", help="file to write ADDR:PORT into once listening")
    parser.add_argument("--log", help="file to append the requests and git's messages to")
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE, help="seconds to run at most")
    args = parser.parse_args(argv)
    log = Path(args.log).resolve() if args.log else None
    if log is not None:  # nothing goes to a pipe nobody may be reading
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    ready = Path(args.ready).resolve() if args.ready else None
    return serve(Path(args.root).resolve(), args.listen, args.port, ready, log, args.deadline)


if __name__ == "__main__":
    sys.exit(main())
