"""Fake executables for tools that talk to real nodes and clusters.

``FakeTools(bin_dir)`` installs scripts named like the real tools (talosctl, talhelper,
kubectl, helmfile, flux, helm, ...) into a directory put first on ``PATH``. Each call is
appended to a JSON-lines log with its argv, stdin and working directory. Behaviour is
scripted per tool with rules: the first rule whose ``match`` (a substring of the
space-joined argv, or None for any call) fits decides the response; the Nth call matching
a rule gets ``responses[N-1]`` (the last one repeats). A response is a dict with ``exit``,
``stdout``, ``stderr`` and ``sleep`` (seconds, to simulate a hang). ``succeed_on(n)``
builds the "fail n-1 times, then succeed" list.

A fake reads stdin only when its argv asks for it (``-``, ``-f -`` or ``/dev/stdin``), as the
real tools do, so a caller that never closes stdin cannot make it hang.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = r"""#!{python}
import json, os, sys, time, fcntl
from pathlib import Path
here = Path(__file__).resolve().parent
name = Path(sys.argv[0]).name
args = sys.argv[1:]
stdin = ""
if "-" in args or "/dev/stdin" in args or os.environ.get("FAKE_READ_STDIN") == "1":
    stdin = sys.stdin.read()
rules = json.loads((here / (name + ".rules.json")).read_text()) if (here / (name + ".rules.json")).exists() else []
joined = " ".join(args)
with open(here / "calls.lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    state_file = here / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {{}}
    response = {{"exit": 0, "stdout": "", "stderr": ""}}
    for index, rule in enumerate(rules):
        if rule.get("match") is None or rule["match"] in joined:
            key = name + ":" + str(index)
            count = state.get(key, 0)
            state[key] = count + 1
            responses = rule["responses"]
            response = responses[min(count, len(responses) - 1)]
            break
    state_file.write_text(json.dumps(state))
    with open(here / "calls.jsonl", "a") as log:
        log.write(json.dumps({{"tool": name, "argv": args, "stdin": stdin, "cwd": os.getcwd()}}) + "\n")
if response.get("sleep"):
    time.sleep(response["sleep"])
sys.stdout.write(response.get("stdout", ""))
sys.stderr.write(response.get("stderr", ""))
sys.exit(response.get("exit", 0))
"""


def ok(stdout: str = "") -> dict[str, Any]:
    return {"exit": 0, "stdout": stdout, "stderr": ""}


def fail(stderr: str = "error: not ready", code: int = 1) -> dict[str, Any]:
    return {"exit": code, "stdout": "", "stderr": stderr}


def hang(seconds: float = 3600) -> dict[str, Any]:
    return {"exit": 0, "stdout": "", "stderr": "", "sleep": seconds}


def succeed_on(n: int, stdout: str = "", stderr: str = "error: not ready") -> list[dict[str, Any]]:
    return [fail(stderr)] * (n - 1) + [ok(stdout)]


@dataclass(frozen=True)
class Call:
    tool: str
    argv: list[str]
    stdin: str
    cwd: str

    @property
    def line(self) -> str:
        return " ".join([self.tool, *self.argv])


class FakeTools:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        bin_dir.mkdir(parents=True, exist_ok=True)

    def install(self, *names: str) -> FakeTools:
        for name in names:
            path = self.bin_dir / name
            path.write_text(SCRIPT.format(python=sys.executable))
            path.chmod(0o755)
        return self

    def script(self, name: str, *rules: tuple[str | None, list[dict[str, Any]] | dict[str, Any]]) -> None:
        """Replace ``name``'s rules: each is (match, responses)."""
        payload = [
            {"match": match, "responses": responses if isinstance(responses, list) else [responses]}
            for match, responses in rules
        ]
        (self.bin_dir / f"{name}.rules.json").write_text(json.dumps(payload))

    def calls(self, tool: str | None = None) -> list[Call]:
        log = self.bin_dir / "calls.jsonl"
        if not log.exists():
            return []
        calls = [Call(**json.loads(line)) for line in log.read_text().splitlines() if line]
        return [call for call in calls if tool is None or call.tool == tool]

    def lines(self, tool: str | None = None) -> list[str]:
        return [call.line for call in self.calls(tool)]

    def reset(self) -> None:
        for name in ("calls.jsonl", "state.json"):
            (self.bin_dir / name).unlink(missing_ok=True)

    def path_env(self) -> str:
        return f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
