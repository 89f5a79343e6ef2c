"""Three-way merges of the user's edits into a new render, with git.

The base of a merge is the last *pure* render of the file (the templates' output before the
user's edits were merged in). Its git blob id is in the manifest, and configure writes that
object into git's object database when it swaps a render in (``git hash-object -w``), so
the base is there even before the user commits; when it is not (an older manifest, a
pruned object), the committed ``HEAD`` version serves if its SHA-256 is the manifest's.
``git merge-file`` does the merge. Everything runs through the runner; secrets are never
merged (their text is ciphertext).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.lib.config import manifest as mf
from tasks.lib.tools.runner import Command, find_tool, run_one

#: How long one git command may take (they are local and small).
GIT_TIMEOUT = 60.0
MARKERS = (b"<<<<<<< ", b"=======", b">>>>>>> ")
LABELS = ("yours", "last render", "new render")
#: At most this many diff lines per file in a message (the rest is counted).
MAX_SHOWN = 60


def has_git(root: Path) -> bool:
    return find_tool("git") is not None and (root / ".git").exists()


def git(root: Path, *args: str, stdin: bytes | None = None) -> tuple[bool, bytes]:
    outcome = run_one(Command(("git", *args), stdin=stdin, cwd=root, deadline=GIT_TIMEOUT))
    return outcome.ok, outcome.data


def blob_ids(root: Path, files: Mapping[str, Path], write: bool) -> dict[str, str]:
    """name -> git blob id of the file at ``files[name]`` (stored in git's object database
    when ``write``); empty without git or outside a git repository."""
    names = [name for name in sorted(files) if "\n" not in str(files[name])]
    if not names or not has_git(root):
        return {}
    args = ["hash-object", *(["-w"] if write else []), "--no-filters", "--stdin-paths"]
    ok, out = git(root, *args, stdin="".join(f"{files[name]}\n" for name in names).encode())
    ids = out.decode(errors="replace").split()
    if not ok or len(ids) != len(names) or not all(mf.BLOB_ID.match(i) for i in ids):
        return {}
    return dict(zip(names, ids, strict=True))


def store(root: Path, path: Path) -> str | None:
    """Put one file into git's object database; its blob id, or None without git."""
    return blob_ids(root, {"file": path}, write=True).get("file")


def read_objects(root: Path, specs: Sequence[str]) -> dict[str, bytes]:
    """``git cat-file --batch``: spec -> object content, for the specs git has."""
    if not specs or not has_git(root):
        return {}
    ok, out = git(root, "cat-file", "--batch", stdin="".join(f"{spec}\n" for spec in specs).encode())
    if not ok:
        return {}
    found: dict[str, bytes] = {}
    position = 0
    for spec in specs:
        end = out.find(b"\n", position)
        if end < 0:
            break
        header = out[position:end].split()
        position = end + 1
        if len(header) != 3 or not header[2].isdigit():
            continue  # "<spec> missing" or "ambiguous"
        size = int(header[2])
        found[spec] = out[position : position + size]
        position += size + 1
    return found


def bases(root: Path, entries: Mapping[str, mf.Entry]) -> dict[str, bytes]:
    """name -> the last pure render of that file, from git, checked against the manifest's
    SHA-256 (so a wrong or tampered id never becomes a base). Missing ones are left out."""
    specs = {name: entry.blob for name, entry in entries.items() if entry.blob}
    specs.update({name: f"HEAD:./{name}" for name in entries if name not in specs})
    found = read_objects(root, sorted(set(specs.values())))
    result = {
        name: found[spec]
        for name, spec in specs.items()
        if spec in found and mf.sha256(found[spec]) == entries[name].sha256
    }
    retry = {name: f"HEAD:./{name}" for name in entries if name not in result and entries[name].blob}
    if retry:
        again = read_objects(root, sorted(retry.values()))
        result.update(
            {
                name: again[spec]
                for name, spec in retry.items()
                if spec in again and mf.sha256(again[spec]) == entries[name].sha256
            }
        )
    return result


@dataclass(frozen=True)
class Merged:
    text: bytes
    conflicts: int

    @property
    def clean(self) -> bool:
        return self.conflicts == 0


def merge(scratch: Path, name: str, ours: bytes, base: bytes, theirs: bytes) -> Merged | None:
    """``git merge-file`` of ``ours`` (the tree's file) and ``theirs`` (the new render) on
    ``base`` (the last render), in ``scratch``; None when git failed."""
    scratch.mkdir(parents=True, exist_ok=True)
    files = []
    for label, data in zip(("ours", "base", "theirs"), (ours, base, theirs), strict=True):
        path = scratch / label
        path.write_bytes(data)
        files.append(str(path))
    labels = [f"{LABELS[0]}: {name}", LABELS[1], LABELS[2]]
    argv = ["git", "merge-file", "-p", "-L", labels[0], "-L", labels[1], "-L", labels[2], *files]
    outcome = run_one(Command(tuple(argv), cwd=scratch, deadline=GIT_TIMEOUT, what=f"merging {name}"))
    if outcome.limit or outcome.returncode < 0 or outcome.returncode > 127:
        return None
    return Merged(outcome.data, outcome.returncode)


def conflict_hunks(merged: bytes) -> list[tuple[int, list[str]]]:
    """Each conflict of a merge result: (its line in your file, the marked lines)."""
    hunks: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    ours_line = 0
    side = ""
    start = 0
    for raw in merged.decode(errors="replace").splitlines():
        if current is None and raw.startswith("<<<<<<< "):
            current, side, start = [raw], "ours", ours_line + 1
            continue
        if current is None:
            ours_line += 1
            continue
        current.append(raw)
        if raw.startswith("=======") and side == "ours":
            side = "theirs"
        elif raw.startswith(">>>>>>> "):
            hunks.append((start, current))
            current = None
        elif side == "ours":
            ours_line += 1
    return hunks


def diff_lines(name: str, before: bytes, after: bytes, labels: tuple[str, str]) -> list[str]:
    """A unified diff, at most :data:`MAX_SHOWN` lines (then how many more)."""
    lines = [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            before.decode(errors="replace").splitlines(keepends=True),
            after.decode(errors="replace").splitlines(keepends=True),
            f"{labels[0]}/{name}",
            f"{labels[1]}/{name}",
        )
    ]
    if len(lines) > MAX_SHOWN:
        lines = [*lines[:MAX_SHOWN], f"... {len(lines) - MAX_SHOWN} more lines"]
    return lines
