"""YAML for the validator, read the way kustomize and Flux read it (Go's YAML), fast.

PyYAML follows YAML 1.1, where ``=`` is the ``value`` tag (a crash: no constructor), ``<<``
merges, ``y``/``n``/``on``/``off`` are booleans, ``2024-01-01`` is a date, ``1:20`` is a
base-60 integer and ``0755`` octal. Go's YAML (``sigs.k8s.io/yaml``, ``go-yaml`` v3), which
kustomize writes and Flux reads, knows only the YAML 1.2 core schema: ``true``/``false``,
``null``/``~``, decimal/``0o``/``0x`` integers and floats; everything else plain is a
string. :class:`Loader` resolves scalars that way (a number with a leading zero stays a
string, as Go would never read it back as octal), and it is the only loader in
:mod:`tasks.lib.fluxtree`. :class:`Dumper` quotes every string either dialect could read
as something else, so what we write means the same to kustomize.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

try:  # pragma: no cover - depends on how PyYAML was built
    from yaml import CSafeDumper as _BaseDumper
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

YAMLError = yaml.YAMLError
#: A document separator line (``---``, maybe followed by content) and a document end (``...``).
_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$")
_DOC_END = re.compile(r"^\.\.\.[ \t]*$")
_CONTENT = re.compile(r"^[^\s#]")

#: The YAML 1.2 core schema, as go-yaml v3 resolves plain scalars.
_CORE: list[tuple[str, re.Pattern[str], str]] = [
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    (
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0o[0-7_]+|0x[0-9a-fA-F_]+)$"),
        "-+0123456789",
    ),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9_]*)(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+.0123456789",
    ),
]


def _core_resolvers() -> dict[str | None, list[tuple[str, re.Pattern[str]]]]:
    table: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}
    for tag, pattern, first in _CORE:
        for char in first:
            table.setdefault(char, []).append((tag, pattern))
    table.setdefault(None, []).append(("tag:yaml.org,2002:null", _CORE[1][1]))
    return table


class Loader(_BaseLoader):
    """libyaml's parser with Go YAML's (YAML 1.2 core) scalar resolution."""

    yaml_implicit_resolvers = _core_resolvers()


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.startswith("0x") else int(text)


Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _RedefiningLoader(yaml.SafeLoader):
    """The pure-Python twin of :class:`Loader` for the rare text that defines an anchor twice:
    Go's YAML lets the later definition win, libyaml's composer refuses."""

    yaml_implicit_resolvers = Loader.yaml_implicit_resolvers

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        anchor = getattr(event, "anchor", None)
        if anchor is not None and not isinstance(event, yaml.AliasEvent):
            self.anchors.pop(anchor, None)
        return super().compose_node(parent, index)


_RedefiningLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _redefined_anchor(error: yaml.YAMLError) -> bool:
    return isinstance(error, yaml.composer.ComposerError) and "duplicate anchor" in str(error)


class Dumper(_BaseDumper):
    """The safe dumper, also quoting strings only Go's YAML reads as numbers (``0o17``)."""


Dumper.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:0o[0-7_]+|[-+]?0[0-9_]+)$"), list("0-+")
)


def load(text: str) -> Any:
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a safe loader (CSafeLoader subclass)
    except yaml.YAMLError as error:
        if not _redefined_anchor(error):
            raise
        return yaml.load(text, Loader=_RedefiningLoader)  # noqa: S506 - a SafeLoader subclass


def load_all(text: str) -> list[Any]:
    """Every non-empty document of a multi-document YAML text."""
    try:
        return [doc for doc in yaml.load_all(text, Loader=Loader) if doc is not None]
    except yaml.YAMLError as error:
        if not _redefined_anchor(error):
            raise
        return [doc for doc in yaml.load_all(text, Loader=_RedefiningLoader) if doc is not None]


def split_documents(text: str) -> list[str]:
    """The documents of a YAML stream (kustomize output, a rendered file, a helm template),
    each as its original text (separators dropped, comments kept). Documents that hold
    nothing but comments and blank lines are dropped. The one splitter of the project."""
    documents: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if _SEPARATOR.match(bare) or _DOC_END.match(bare):
            documents.append([])
            if _SEPARATOR.match(bare) and bare[3:].strip() and not bare[3:].strip().startswith("#"):
                documents[-1].append(bare[3:].strip() + "\n")  # content on the '---' line
            continue
        documents[-1].append(line)
    texts = ["".join(lines) for lines in documents]
    return [doc for doc in texts if any(_CONTENT.match(line) for line in doc.splitlines())]


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True)


def error_position(error: Exception) -> tuple[int | None, int | None, str]:
    """(line, column, short message) of a YAML error, 1-based."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return None, None, str(problem)
    return mark.line + 1, mark.column + 1, str(problem)
