"""Secrets by their structure: which values of a sops document must be ciphertext (by sops's
own rules), and where a Kubernetes ``Secret`` hides in any YAML or JSON shape.

sops's rules, as its source has them (``sops.go``, ``aes/cipher.go``, ``stores/``):

- A value is encrypted unless the file's rule says otherwise: ``unencrypted_suffix`` (the
  default, ``_unencrypted``) leaves a value whose path has a key ending with it;
  ``encrypted_suffix`` / ``encrypted_regex`` encrypt only values under a key that ends with /
  matches it; ``unencrypted_regex`` leaves those under a matching key;
  ``encrypted_comment_regex`` / ``unencrypted_comment_regex`` decide by the comments above a
  value. At most one of them per file. A path is every mapping key from the top down
  (list positions are not part of it); a regex matches anywhere in a key.
- An encrypted value is ``ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]``. Empty strings and nulls
  are never encrypted.
- The metadata is the ``sops`` key of the first YAML document or of the JSON object (dotenv:
  ``sops_*`` keys, INI: the ``[sops]`` section); its ``mac`` is itself an ``ENC[…]`` value.

Everything is parsed with PyYAML's composer (nodes with line numbers, no object built), so
aliases are never expanded and every walk has a node budget. Standard library and PyYAML
only: the commit hook loads this without the task library's other dependencies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

#: sops's own pattern for an encrypted value (aes/cipher.go).
ENC_VALUE = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
#: The metadata key of the YAML and JSON stores; the prefix of the flattened dotenv keys.
METADATA_KEY = "sops"
#: The default rule when a file names none (sops.DefaultUnencryptedSuffix).
DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"
RULE_KEYS = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)
#: Where sops keeps the data key for each kind of master key (any one is enough).
KEY_SOURCES = ("age", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms", "key_groups")
#: Nodes visited per file before giving up (aliases can make a small file a huge tree).
MAX_NODES = 200_000
#: A value that names where the secret comes from instead of holding it: Flux's post-build
#: substitution (``${SECRET_X}``, from an encrypted Secret), a 1Password secret reference
#: (``op://vault/item/field``, filled in by ``op inject``), a template expression.
REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-=+?][^}]*)?\}|\bop://[^\s'\"]+|\{\{.*?\}\}")
#: Plain scalars that are null (YAML 1.2 core, as Go's YAML reads them).
NULLS = frozenset({"", "~", "null", "Null", "NULL"})


class Unreadable(Exception):
    """The text is not YAML/JSON we can walk (syntax, depth, size of the tree)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


# --------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class Rule:
    """Which values sops encrypts (``sops.Tree.shouldBeEncrypted``)."""

    unencrypted_suffix: str = ""
    encrypted_suffix: str = ""
    unencrypted_regex: str = ""
    encrypted_regex: str = ""
    unencrypted_comment_regex: str = ""
    encrypted_comment_regex: str = ""

    @classmethod
    def of(cls, settings: dict[str, Any]) -> Rule:
        """The rule a metadata block or a ``.sops.yaml`` creation rule names; the default
        (``unencrypted_suffix: _unencrypted``) when it names none."""
        given = {key: str(settings[key]) for key in RULE_KEYS if settings.get(key) not in (None, "")}
        return cls(**given) if given else cls(unencrypted_suffix=DEFAULT_UNENCRYPTED_SUFFIX)

    @property
    def uses_comments(self) -> bool:
        return bool(self.unencrypted_comment_regex or self.encrypted_comment_regex)

    def encrypts(self, path: Sequence[str], comments: Sequence[str] = ()) -> bool:
        encrypted = True
        if self.unencrypted_suffix and any(k.endswith(self.unencrypted_suffix) for k in path):
            encrypted = False
        if self.encrypted_suffix:
            encrypted = any(k.endswith(self.encrypted_suffix) for k in path)
        if self.unencrypted_regex and any(_search(self.unencrypted_regex, k) for k in path):
            encrypted = False
        if self.encrypted_regex:
            encrypted = any(_search(self.encrypted_regex, k) for k in path)
        if self.unencrypted_comment_regex and any(
            _search(self.unencrypted_comment_regex, c) for c in comments
        ):
            encrypted = False
        if self.encrypted_comment_regex:
            encrypted = any(_search(self.encrypted_comment_regex, c) for c in comments)
        return encrypted


def _search(pattern: str, text: str) -> bool:
    """Go's ``regexp.Match`` (unanchored); a pattern Python cannot read matches everything,
    so an unreadable rule never lets a value pass unchecked."""
    try:
        return re.search(go_pattern(pattern), text) is not None
    except re.error:
        return True


_INLINE_FLAGS = re.compile(r"\(\?([ims]+)\)")


def go_pattern(pattern: str) -> str:
    """A Go (RE2) pattern as Python reads it: RE2 lets ``(?i)`` stand anywhere and apply to
    the rest of its group (``((?i)pass|key)``), Python only at the very start, so each later
    one becomes a scoped group ``(?i:...)`` closed where its enclosing group ends."""
    out: list[str] = []
    extra = [0]  # scoped groups to close, per open group
    index = 0
    while index < len(pattern):
        char = pattern[index]
        flags = _INLINE_FLAGS.match(pattern, index) if char == "(" else None
        if char == "\\":
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if char == "[":
            end = index + 1
            end += pattern[end] == "^" if end < len(pattern) else 0
            end += pattern[end] == "]" if end < len(pattern) else 0
            while end < len(pattern) and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            out.append(pattern[index : end + 1])
            index = end + 1
            continue
        if flags is not None and index > 0:
            out.append(f"(?{flags.group(1)}:")
            extra[-1] += 1
            index = flags.end()
            continue
        if char == "(":
            extra.append(0)
        elif char == ")" and len(extra) > 1:
            out.append(")" * extra.pop())
        out.append(char)
        index += 1
    out.append(")" * extra[0])
    return "".join(out)


# --------------------------------------------------------------------------- YAML nodes


def compose(text: str) -> list[Any]:
    """The documents of a YAML (or JSON) text as PyYAML nodes; :class:`Unreadable` if it is
    not YAML."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return [doc for doc in yaml.compose_all(text, Loader=loader) if doc is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise Unreadable(f"not valid YAML ({reason})", line) from None
    except RecursionError:
        raise Unreadable("nested too deeply to read") from None


def is_null(node: Any) -> bool:
    # A plain scalar's style is None from PyYAML's Python parser and "" from libyaml's.
    return node.id == "scalar" and not node.style and node.value in NULLS


def scalar(node: Any) -> str | None:
    """The text of a scalar node (None for anything else)."""
    return str(node.value) if node.id == "scalar" else None


@dataclass
class Budget:
    """Counts node visits; a tree bigger than :data:`MAX_NODES` (an alias bomb) is refused."""

    left: int = MAX_NODES

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise Unreadable(f"more than {MAX_NODES} values (aliases?) — too large to check")


def to_python(node: Any, budget: Budget) -> Any:
    """A small node (the sops metadata) as plain Python values; scalars stay strings."""
    budget.spend()
    if node.id == "mapping":
        return {str(scalar(k) if k.id == "scalar" else ""): to_python(v, budget) for k, v in node.value}
    if node.id == "sequence":
        return [to_python(item, budget) for item in node.value]
    return None if is_null(node) else str(node.value)


# --------------------------------------------------------------------------- sops documents


@dataclass(frozen=True)
class Leaf:
    """One value of a document: where it is, what it is (text, or None for null/empty)."""

    path: tuple[str, ...]
    text: str | None
    line: int
    end_line: int

    @property
    def dotted(self) -> str:
        return ".".join(self.path) or "(top level)"

    @property
    def is_ciphertext(self) -> bool:
        return self.text is None or self.text == "" or ENC_VALUE.match(self.text) is not None


@dataclass
class SopsDocument:
    """A parsed ``*.sops.*`` file: its metadata (None when it has none) and its values, each
    with the comments sops would see above it."""

    metadata: dict[str, Any] | None
    metadata_line: int
    leaves: list[tuple[Leaf, tuple[str, ...]]] = field(default_factory=list)


def comments_above(lines: Sequence[str], line: int) -> list[str]:
    """The comment lines directly above 0-based ``line`` and the comment at its end, without
    their ``#`` (as sops's YAML store hands them to the rule)."""
    found: list[str] = []
    above = line - 1
    while above >= 0 and lines[above].lstrip().startswith("#"):
        found.insert(0, lines[above].lstrip()[1:])
        above -= 1
    if line < len(lines) and (inline := re.search(r"\s#(.*)$", lines[line])):
        found.append(inline.group(1))
    return found


def yaml_leaves(
    node: Any, path: tuple[str, ...], comments: tuple[str, ...], lines: Sequence[str] | None, budget: Budget
) -> Iterator[tuple[Leaf, tuple[str, ...]]]:
    """Every value under ``node`` with its key path and the comments that apply to it."""
    budget.spend()
    if node.id == "mapping":
        for key, value in node.value:
            name = scalar(key) if key.id == "scalar" else "?"
            own = tuple(comments_above(lines, key.start_mark.line)) if lines is not None else ()
            yield from yaml_leaves(value, (*path, str(name)), comments + own, lines, budget)
    elif node.id == "sequence":
        for item in node.value:
            own = tuple(comments_above(lines, item.start_mark.line)) if lines is not None else ()
            yield from yaml_leaves(item, path, comments + own, lines, budget)
    else:
        text = None if is_null(node) else str(node.value)
        yield Leaf(path, text, node.start_mark.line + 1, node.end_mark.line + 1), comments


def parse_yaml_sops(text: str, want_comments: bool) -> SopsDocument:
    documents = compose(text)
    budget = Budget()
    lines = text.splitlines() if want_comments else None
    metadata: dict[str, Any] | None = None
    metadata_line = 0
    leaves: list[tuple[Leaf, tuple[str, ...]]] = []
    for index, document in enumerate(documents):
        if document.id != "mapping":
            leaves += yaml_leaves(document, (), (), lines, budget)
            continue
        for key, value in document.value:
            name = scalar(key) if key.id == "scalar" else None
            if name == METADATA_KEY:
                if index == 0 and metadata is None:
                    found = to_python(value, budget)
                    metadata = found if isinstance(found, dict) else {}
                    metadata_line = key.start_mark.line + 1
                continue
            own = tuple(comments_above(lines, key.start_mark.line)) if lines is not None else ()
            leaves += yaml_leaves(value, (str(name),), own, lines, budget)
    return SopsDocument(metadata, metadata_line, leaves)


def parse_json_sops(text: str) -> SopsDocument:
    """JSON is YAML to the composer (line numbers kept); what PyYAML's YAML 1.1 cannot read
    falls back to the json module, without line numbers."""
    try:
        return parse_yaml_sops(text, want_comments=False)
    except Unreadable:
        pass
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise Unreadable(f"not valid JSON ({error.msg})", error.lineno) from None
    metadata = data.pop(METADATA_KEY, None) if isinstance(data, dict) else None
    none: tuple[str, ...] = ()
    leaves = [(leaf, none) for leaf in python_leaves(data, (), Budget())]
    return SopsDocument(metadata if isinstance(metadata, dict) else None, 1 if metadata else 0, leaves)


def python_leaves(value: Any, path: tuple[str, ...], budget: Budget) -> Iterator[Leaf]:
    budget.spend()
    if isinstance(value, dict):
        for key, item in value.items():
            yield from python_leaves(item, (*path, str(key)), budget)
    elif isinstance(value, list):
        for item in value:
            yield from python_leaves(item, path, budget)
    else:
        text = None if value is None else value if isinstance(value, str) else json.dumps(value)
        yield Leaf(path, text, 0, 0)


def parse_dotenv_sops(text: str) -> SopsDocument:
    """``KEY=VALUE`` lines; the metadata is flattened into ``sops_*`` keys."""
    metadata: dict[str, Any] = {}
    leaves: list[tuple[Leaf, tuple[str, ...]]] = []
    comments: list[str] = []
    first_metadata = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        if line.startswith("#"):
            comments.append(line[1:])
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise Unreadable("not a dotenv line (KEY=VALUE)", number)
        if key.startswith(METADATA_KEY + "_"):
            metadata[key[len(METADATA_KEY) + 1 :]] = value
            first_metadata = first_metadata or number
            continue
        leaves.append((Leaf((key,), value, number, number), tuple(comments)))
        comments = []
    return SopsDocument(metadata or None, first_metadata, leaves)


def parse_ini_sops(text: str) -> SopsDocument:
    """``[section]`` and ``key = value`` lines; the metadata is the ``[sops]`` section."""
    metadata: dict[str, Any] | None = None
    metadata_line = 0
    leaves: list[tuple[Leaf, tuple[str, ...]]] = []
    section = ""
    comments: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line[0] in "#;":
            comments.append(line[1:])
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            if section == METADATA_KEY:
                metadata, metadata_line = {}, number
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise Unreadable("not an INI line (key = value)", number)
        if section == METADATA_KEY and metadata is not None:
            metadata[key.strip()] = value.strip()
            continue
        leaves.append((Leaf((section, key.strip()), value.strip(), number, number), tuple(comments)))
        comments = []
    return SopsDocument(metadata, metadata_line, leaves)


def parse_sops(text: str, store: str, want_comments: bool = False) -> SopsDocument:
    """A sops document in one of sops's stores (``yaml``, ``json``, ``dotenv``, ``ini``;
    ``binary`` files are JSON with one ``data`` value)."""
    if store == "dotenv":
        return parse_dotenv_sops(text)
    if store == "ini":
        return parse_ini_sops(text)
    if store in ("json", "binary"):
        return parse_json_sops(text)
    return parse_yaml_sops(text, want_comments)


def metadata_problems(metadata: dict[str, Any], line: int) -> list[tuple[int, str]]:
    """What sops itself would refuse, or what shows the block was not written by sops."""
    problems: list[tuple[int, str]] = []
    mac = metadata.get("mac")
    if not isinstance(mac, str) or not ENC_VALUE.match(mac):
        problems.append((line, "sops metadata without an encrypted MAC — not a file sops wrote"))
    flattened = [key for key in metadata if "__" in key]  # dotenv and INI: age__list_0__map_recipient
    named = any(metadata.get(source) for source in KEY_SOURCES) or any(
        key.split("__", 1)[0] in KEY_SOURCES for key in flattened
    )
    if not named:
        problems.append((line, "sops metadata names no key (age, pgp, kms, ...) — nobody could decrypt it"))
    if sum(1 for key in RULE_KEYS if metadata.get(key) not in (None, "")) > 1:
        problems.append(
            (line, "sops metadata names more than one encryption rule — sops refuses such a file")
        )
    return problems


def sops_problems(text: str, store: str, creation_rule: Rule | None = None) -> list[tuple[int, str]]:
    """Why ``text`` is not a completely encrypted sops document, as (line, message) pairs;
    empty when it is. A value must be ciphertext when the file's own rule or ``creation_rule``
    (the matching rule of ``.sops.yaml``) says sops encrypts it. Never includes a value."""
    if not text.strip():
        return []
    try:
        document = parse_sops(text, store, want_comments=True)
    except Unreadable as error:
        return [(error.line, f"{error.message}: sops cannot read it either")]
    if document.metadata is None:
        return [(0, "not encrypted")]
    file_rule = Rule.of(document.metadata)
    problems = metadata_problems(document.metadata, document.metadata_line)
    plaintext = [
        leaf
        for leaf, comments in document.leaves
        if not leaf.is_ciphertext
        and (
            file_rule.encrypts(leaf.path, comments)
            or (creation_rule and creation_rule.encrypts(leaf.path, comments))
        )
    ]
    problems += [(leaf.line, f"{leaf.dotted}: plaintext value in an encrypted file") for leaf in plaintext]
    return problems


def sops_state(text: str, store: str, creation_rule: Rule | None = None) -> str:
    """``plain`` (no sops metadata), ``encrypted`` (every value that must be is ciphertext,
    the MAC present) or ``partial`` (sops metadata, but something is plaintext or missing)."""
    if not text.strip():
        return "plain"
    problems = sops_problems(text, store, creation_rule)
    if not problems:
        return "encrypted"
    return "plain" if problems == [(0, "not encrypted")] else "partial"


# --------------------------------------------------------------------------- Kubernetes Secrets


@dataclass(frozen=True)
class SecretHit:
    """A Kubernetes Secret holding plaintext data: where its ``kind`` is, its name, the
    lines it spans, and the keys under data/stringData whose values are plaintext."""

    line: int
    end_line: int
    name: str
    keys: tuple[str, ...]


def secrets_in(text: str) -> list[SecretHit]:
    """Every ``kind: Secret`` object with a plaintext value under ``data`` or ``stringData``,
    wherever it sits: a document of its own, an item of a ``List``, flow style, JSON,
    quoted keys, any indentation. :class:`Unreadable` when the text is not YAML."""
    budget = Budget()
    hits: list[SecretHit] = []
    seen: set[int] = set()
    for document in compose(text):
        hits += find_secrets(document, budget, seen)
    return hits


def find_secrets(node: Any, budget: Budget, seen: set[int]) -> list[SecretHit]:
    budget.spend()
    if id(node) in seen:  # an alias of a node already searched
        return []
    seen.add(id(node))
    hits: list[SecretHit] = []
    if node.id == "mapping":
        fields = {scalar(k): (k, v) for k, v in node.value if k.id == "scalar"}
        if "kind" in fields and scalar(fields["kind"][1]) == "Secret":
            hit = plaintext_secret(node, fields)
            if hit is not None:
                hits.append(hit)
        for _, value in node.value:
            hits += find_secrets(value, budget, seen)
    elif node.id == "sequence":
        for item in node.value:
            hits += find_secrets(item, budget, seen)
    return hits


def is_plaintext_value(node: Any) -> bool:
    """A value of data/stringData that holds its secret: not null or empty, not ciphertext,
    not a reference to where the secret comes from (a nested mapping or list counts)."""
    if is_null(node):
        return False
    text = scalar(node)
    if text is None:
        return True
    return bool(text) and not ENC_VALUE.match(text) and not REFERENCE.search(text)


def plaintext_secret(node: Any, fields: dict[str | None, tuple[Any, Any]]) -> SecretHit | None:
    keys: list[str] = []
    for section in ("data", "stringData"):
        if section not in fields:
            continue
        values = fields[section][1]
        if values.id != "mapping":
            if not is_null(values):
                keys.append(section)
            continue
        for key, value in values.value:
            if not is_plaintext_value(value):
                continue
            keys.append(f"{section}.{scalar(key)}")
    if not keys:
        return None
    metadata = fields.get("metadata")
    name = ""
    if metadata is not None and metadata[1].id == "mapping":
        name = next((scalar(v) or "" for k, v in metadata[1].value if scalar(k) == "name"), "")
    kind_key = fields["kind"][0]
    return SecretHit(kind_key.start_mark.line + 1, node.end_mark.line + 1, name, tuple(keys))
