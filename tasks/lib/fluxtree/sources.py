"""Which sources serve this repository, and where objects sit in their files.

A Flux Kustomization is built from this repository only when its source is the entry's own
(``flux-system``, made by the bootstrap or the FluxInstance) or a ``GitRepository`` whose URL
is one of this repository's git remotes; anything else (another Git repository, an
``OCIRepository``, an ``ExternalArtifact``, a ``Bucket``) is reported as external, not built.
"""

from __future__ import annotations

import re
from pathlib import Path

_SCHEME = re.compile(r"^[a-z+]+://")


def normalize_url(url: str) -> str:
    """``host/owner/name`` of a git URL in any spelling (https, ssh, scp-like), lower case."""
    text = url.strip().lower()
    text = _SCHEME.sub("", text)
    text = text.split("@", 1)[-1] if "@" in text.split("/", 1)[0] else text
    if ":" in text.split("/", 1)[0]:  # scp-like git@host:owner/name, or host:port/...
        host, _, rest = text.partition(":")
        rest = rest.split("/", 1)[1] if rest.split("/", 1)[0].isdigit() and "/" in rest else rest
        text = f"{host}/{rest}"
    return text.removesuffix("/").removesuffix(".git")


def repository_urls(root: Path) -> set[str]:
    """This repository's git remotes, normalised (empty without git or remotes)."""
    from tasks.lib.tools.runner import Command, find_tool, run_one

    if find_tool("git") is None or not (root / ".git").exists():
        return set()
    outcome = run_one(Command(("git", "remote", "-v"), cwd=root))
    if not outcome.ok:
        return set()
    urls = set()
    for line in outcome.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            urls.add(normalize_url(parts[1]))
    return urls


def same_repository(url: str, remotes: set[str]) -> bool:
    return bool(url) and normalize_url(url) in remotes


class LineFinder:
    """The line where an object (kind, name) starts in a repository file, memoised."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._docs: dict[str, list[tuple[int, str, str]]] = {}

    def _index(self, file: str) -> list[tuple[int, str, str]]:
        if file not in self._docs:
            entries: list[tuple[int, str, str]] = []
            try:
                text = (self.root / file).read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            line = 1
            for part in re.split(r"(?m)^(---[ \t]*\n)", text):
                if part.startswith("---"):
                    line += 1
                    continue
                kind = re.search(r"(?m)^kind:\s*['\"]?([\w.-]+)", part)
                name = re.search(r"(?m)^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]+name:\s*['\"]?([^'\"\s#]+)", part)
                lead = len(part) - len(part.lstrip("\n"))
                entries.append((line + lead, kind.group(1) if kind else "", name.group(1) if name else ""))
                line += part.count("\n")
            self._docs[file] = entries
        return self._docs[file]

    def find(self, file: str, kind: str, name: str) -> int | None:
        entries = self._index(file)
        for line, k, n in entries:
            if k == kind and n == name:
                return line
        kinds = [line for line, k, _n in entries if k == kind]
        return kinds[0] if len(kinds) == 1 else None


__all__ = ["LineFinder", "normalize_url", "repository_urls", "same_repository"]
