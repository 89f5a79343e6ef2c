"""Which sources serve this repository, and where objects sit in their files.

A Flux Kustomization is built from this repository only when its source is the entry's own
(``flux-system``, made by the bootstrap or the FluxInstance) or a ``GitRepository`` whose URL
is one of this repository's git remotes; anything else (another Git repository, an
``OCIRepository``, an ``ExternalArtifact``, a ``Bucket``) is reported as external, not built.
"""

from __future__ import annotations

import re
from pathlib import Path

from tasks.lib.gitremote import parse_remote, remotes
from tasks.lib.tools.runner import Command, find_tool, run_one

from .yamlio import read_text


def normalize_url(url: str) -> str:
    """``host/owner/name`` of a git URL in any spelling (https, ssh, scp-like, with ``.git``
    or credentials), case-folded: one key per repository (:mod:`tasks.lib.gitremote`)."""
    parsed = parse_remote(url)
    if parsed is None:
        return url.strip().casefold().removesuffix("/").removesuffix(".git")
    host, path = parsed.identity()
    return f"{host}/{path}"


def repository_urls(root: Path) -> set[str]:
    """The remotes of the checkout ``root`` belongs to, normalised: empty without git, and
    when ``root`` is only a folder inside some other checkout that does not track it (an
    extracted archive under a home directory kept in git)."""
    if find_tool("git") is None:
        return set()
    if not (root / ".git").exists():
        outcome = run_one(Command(("git", "ls-files", "-z", "--", "."), cwd=root, deadline=60))
        if not outcome.ok or not outcome.data:
            return set()
    return {normalize_url(url) for url in remotes(root).values()}


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
                text = read_text(self.root / file)
            except (OSError, ValueError):
                text = ""
            line = 1
            for part in re.split(r"(?m)^(---[ \t]*\n)", text):
                if part.startswith("---"):
                    line += 1
                    continue
                kind = re.search(r"(?m)^kind:\s*['\"]?([\w.-]+)", part)
                name = re.search(r"(?m)^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]+name:\s*['\"]?([^'\"\s#]+)", part)
                # the object's first line: blank lines and leading comments skipped
                rows = part.split("\n")
                lead = next(
                    (i for i, r in enumerate(rows) if r.strip() and not r.lstrip().startswith("#")), 0
                )
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
