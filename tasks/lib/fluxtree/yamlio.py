"""Fast YAML for the validator: libyaml's C loader when present, pure Python otherwise."""

from __future__ import annotations

import re
from typing import Any

import yaml

try:  # pragma: no cover - depends on how PyYAML was built
    from yaml import CSafeDumper as _Dumper
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

YAMLError = yaml.YAMLError
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def load_all(text: str) -> list[Any]:
    """Every non-empty document of a multi-document YAML text."""
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


def split_documents(text: str) -> list[str]:
    """The documents of a kustomize output (which separates them with ``---`` lines)."""
    return [part for part in _SEPARATOR.split(text) if part.strip()]


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True)


def error_position(error: Exception) -> tuple[int | None, int | None, str]:
    """(line, column, short message) of a YAML error, 1-based."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return None, None, str(problem)
    return mark.line + 1, mark.column + 1, str(problem)
