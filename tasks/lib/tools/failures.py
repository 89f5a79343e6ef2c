"""Why talhelper or talosctl failed, in the user's words: every line that says something
(not only the last one), secrets masked, with the fix where the cause is known.

talhelper prints what is wrong with a config on stdout ("There are issues with your talhelper
config file:", then ``field: "…"`` and ``* reason`` lines) and ends with an empty log line
on stderr (``2026/12/03 12:26:02``): the last stderr line alone is a bare timestamp.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tasks.lib.tools.runner import redact

#: At most this many lines of a tool's output go into a message.
MAX_LINES = 40

_LOG_STAMP = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?\s*")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: (what the tool said, the fix) for causes a user can act on.
HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"is not a supported Talos version|compatibility with version \S+ is not supported"),
        "the installed talhelper is older than talenv.yaml's talosVersion: install the talhelper "
        "version .mise.toml pins (`mise install`, or `inv doctor` to see what is installed)",
    ),
    (
        re.compile(r"failed to decrypt|no identity matched|could not decrypt|Failed to get the data key"),
        "sops cannot decrypt talos/talsecret.sops.yaml with your age key: check SOPS_AGE_KEY_FILE "
        "and that age.key is the key the repository is encrypted to (`inv sops.check`)",
    ),
    (
        re.compile(r"connection refused|no route to host|i/o timeout|context deadline exceeded|connect: "),
        "the node does not answer on the Talos API (port 50000): is it powered on and reachable "
        "from here? (`inv talos.nodes` shows which nodes answer)",
    ),
    (
        re.compile(r"certificate signed by unknown authority|tls: |x509: "),
        "the node does not accept this talosconfig: still in maintenance mode (run `inv bootstrap.talos`), "
        "or reset with other secrets",
    ),
)


def reason_lines(*outputs: str, limit: int = MAX_LINES) -> list[str]:
    """The lines of ``outputs`` (stdout, stderr, …) that carry a message: log timestamps and
    colour codes stripped, blank and repeated lines dropped, secrets masked; the first
    ``limit`` of them, then a line saying how many more there were."""
    lines: list[str] = []
    seen: set[str] = set()
    for output in outputs:
        for raw in redact(output or "").splitlines():
            line = _LOG_STAMP.sub("", _ANSI.sub("", raw)).rstrip()
            if line.strip() and line not in seen:
                seen.add(line)
                lines.append(line)
    if len(lines) > limit:
        return [*lines[:limit], f"… {len(lines) - limit} more line(s)"]
    return lines


def hints(lines: Iterable[str]) -> list[str]:
    """The fix for every known cause among ``lines`` (each fix once)."""
    text = "\n".join(lines)
    return [f"fix: {fix}" for pattern, fix in HINTS if pattern.search(text)]


def explain(headline: str, *outputs: str, shown: str = "") -> list[str]:
    """A failure as message lines: ``headline``, every relevant line of ``outputs`` indented,
    the fixes (found in ``shown`` too: output the user saw streamed already)."""
    lines = reason_lines(*outputs)
    return [headline, *(f"  {line}" for line in lines), *hints([*lines, *reason_lines(shown)])]
