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

import os
import re
import stat
from pathlib import Path
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


#: Bounds on what one file may cost: kustomize-controller has no such limits, but nothing a
#: Kubernetes API server accepts comes near them (an object is at most about 1.5 MB).
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_DOCUMENTS = 10_000
#: Nodes a document may have once every alias is expanded (a "billion laughs" has 10^9).
MAX_EXPANDED_NODES = 1_000_000


class LimitExceeded(yaml.YAMLError):
    """A YAML text over one of the bounds above: refused before it costs memory."""


class FileRefused(OSError):
    """A file the validator will not read: not a regular file, or too big."""


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """A repository text file, read without following it into a FIFO or a device and never
    more than ``limit`` bytes (:class:`FileRefused` otherwise)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    descriptor = os.open(path, flags)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{path}: not a regular file")
        if info.st_size > limit:
            raise FileRefused(f"{path}: {info.st_size} bytes, over the limit of {limit} bytes")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise FileRefused(f"{path}: over the limit of {limit} bytes")
    return data.decode("utf-8", "replace")


def _check_expansion(data: Any) -> None:
    """Refuse ``data`` when expanding its shared (aliased) nodes would exceed
    :data:`MAX_EXPANDED_NODES`, or when an alias contains itself (Go's YAML refuses that)."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = list(node.values()) if isinstance(node, dict) else node
        if done:
            visiting.discard(key)
            size = 1 + sum(sizes.get(id(c), 1) for c in children)
            if size > MAX_EXPANDED_NODES:
                raise LimitExceeded(
                    f"more than {MAX_EXPANDED_NODES} nodes once its aliases are expanded (a YAML bomb?)"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in visiting:
            raise LimitExceeded("an alias contains itself (a recursive YAML structure)")
        visiting.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, (dict, list)) and id(c) not in sizes)


_ALIAS = re.compile(r"(?:^|[\s\[{,:-])\*[^\s,\]}]+")
#: Fewer aliases than this cannot multiply a file's size much.
FEW_ALIASES = 32


def many_aliases(text: str) -> bool:
    """Whether ``text`` holds enough alias references to be a YAML bomb."""
    return may_alias(text) and len(_ALIAS.findall(text, 0)) >= FEW_ALIASES


def may_alias(text: str) -> bool:
    """Whether ``text`` may use aliases (an anchor and an alias character both appear)."""
    return "&" in text and "*" in text


def _load_with(text: str, loader: type[Any]) -> Any:
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - safe loaders (CSafeLoader/SafeLoader subclasses)
    except RecursionError:
        raise LimitExceeded("nested too deeply") from None


def load(text: str) -> Any:
    """One YAML document, read as Go's YAML reads it, within the bounds above."""
    try:
        data = _load_with(text, Loader)
    except yaml.YAMLError as error:
        if not _redefined_anchor(error):
            raise
        data = _load_with(text, _RedefiningLoader)
    if may_alias(text):
        _check_expansion(data)
    return data


def _load_all_with(text: str, loader: type[Any]) -> list[Any]:
    out: list[Any] = []
    try:
        for count, doc in enumerate(yaml.load_all(text, Loader=loader), 1):
            if count > MAX_DOCUMENTS:
                raise LimitExceeded(f"more than {MAX_DOCUMENTS} documents in one file")
            if doc is not None:
                out.append(doc)
    except RecursionError:
        raise LimitExceeded("nested too deeply") from None
    return out


def load_all(text: str) -> list[Any]:
    """Every non-empty document of a multi-document YAML text, within the bounds above."""
    try:
        docs = _load_all_with(text, Loader)
    except yaml.YAMLError as error:
        if not _redefined_anchor(error):
            raise
        docs = _load_all_with(text, _RedefiningLoader)
    if may_alias(text):
        for doc in docs:
            _check_expansion(doc)
    return docs


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


def _scalars(node: yaml.Node) -> list[yaml.ScalarNode]:
    """Every scalar below ``node``, in document order (iterative: no recursion limit)."""
    out: list[yaml.ScalarNode] = []
    stack: list[yaml.Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.ScalarNode):
            out.append(current)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(reversed(current.value))
        elif isinstance(current, yaml.MappingNode):
            for key, value in reversed(current.value):
                stack += [value, key]
    return out


def _documents(text: str) -> list[yaml.Node]:
    try:
        return [node for node in yaml.compose_all(text, Loader=Loader) if node is not None]
    except (yaml.YAMLError, RecursionError):
        return []


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                found: yaml.Node = v
                return found
    return None


def _scalar_of(node: yaml.Node, *keys: str) -> str:
    for key in keys:
        found = _child(node, key)
        if found is None:
            return ""
        node = found
    return str(node.value) if isinstance(node, yaml.ScalarNode) else ""


def value_line(
    text: str, keys: tuple[str, ...], wanted: str, *, kind: str = "", name: str = "", near: str = ""
) -> int | None:
    """The 1-based line of the scalar ``wanted`` (or ``KEY=wanted``) under the path ``keys``
    of the document of ``kind``/``name`` (any document when not given) in ``text``; with
    ``near``, the scalar must sit in the same mapping as a ``name: near`` entry (a
    ``dependsOn`` item, a generator)."""
    documents = _documents(text)
    if kind:
        named = [
            d
            for d in documents
            if _scalar_of(d, "kind") == kind and _scalar_of(d, "metadata", "name") == name
        ]
        # a name written as a ${VARIABLE}: any document of the kind
        documents = named or [d for d in documents if _scalar_of(d, "kind") == kind]
    for document in documents:
        node: yaml.Node | None = document
        for key in keys:
            node = _child(node, key) if node is not None else None
        if node is None:
            continue
        scopes = [node]
        if near and isinstance(node, yaml.SequenceNode):
            scopes = [item for item in node.value if _scalar_of(item, "name") == near] or scopes
        for scope in scopes:
            for scalar in _scalars(scope):
                value = str(scalar.value)
                if value == wanted or value.endswith("=" + wanted):
                    return int(scalar.start_mark.line) + 1
    return None
