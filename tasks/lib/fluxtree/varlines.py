"""Where a ``${VARIABLE}`` of a built object is written, to report it at the line to edit.

A built object knows the file it came from (kustomize's origin annotation). The variable is
looked for, in order: in that file, within the object's own document; in the files of the
generator that made it (``configMapGenerator``/``secretGenerator`` ``files``/``envs``, when
the origin is a kustomization); in the Flux Kustomization's own file (an inline patch); in
the files of the kustomizations the build loaded (a patch file).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import yamlio
from .kustfiles import KUSTOMIZATION_FILES, generator_files


def _pattern(name: str) -> re.Pattern[str]:
    # ${NAME}, ${NAME:=x}, ${NAME^^}, ...; not the escape $${NAME}
    return re.compile(r"(?<!\$)\$\{#?" + re.escape(name) + r"(?![A-Za-z0-9_])")


class VariableFinder:
    """Memoised file texts of one repository, searched for variables."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._texts: dict[str, str] = {}

    def text(self, file: str) -> str:
        if file not in self._texts:
            try:
                self._texts[file] = yamlio.read_text(self.root / file)
            except (OSError, ValueError):
                self._texts[file] = ""
        return self._texts[file]

    def line_in(self, file: str, name: str, start: int = 1) -> int | None:
        """The first line at or after ``start`` of ``file`` that uses ``name``."""
        pattern = _pattern(name)
        for number, line in enumerate(self.text(file).splitlines()[start - 1 :], start):
            if pattern.search(line):
                return number
        return None

    def _generator_files(self, kustomization: str, body: dict[str, Any]) -> list[str]:
        """Repository files of the generators in ``kustomization`` that may have made ``body``."""
        try:
            data = yamlio.load(self.text(kustomization)) or {}
        except yamlio.YAMLError:
            return []
        if not isinstance(data, dict):
            return []
        name = str((body.get("metadata") or {}).get("name", ""))
        base = Path(kustomization).parent
        out = []
        for key in ("configMapGenerator", "secretGenerator"):
            for gen in data.get(key) or []:
                if isinstance(gen, dict) and name.startswith(str(gen.get("name", "\0"))):
                    out += [os.path.normpath(base / f) for f in generator_files(gen)]
        return out

    def locate(
        self, name: str, file: str, body: dict[str, Any], object_line: int | None, others: Iterable[str]
    ) -> tuple[str, int | None]:
        """(file, line) where ``name`` is written for the object ``body`` built from ``file``."""
        if object_line is not None and (line := self.line_in(file, name, object_line)) is not None:
            return file, line
        if (line := self.line_in(file, name)) is not None:
            return file, line
        if Path(file).name in KUSTOMIZATION_FILES:
            for source in self._generator_files(file, body):
                if (line := self.line_in(source, name)) is not None:
                    return source, line
        for other in others:
            if (line := self.line_in(other, name)) is not None:
                return other, line
        return file, object_line
