"""The secret guard behind ``inv sops.check``, its pre-commit hook and CI.

Four questions about every file git tracks (or would add), answered without running any
tool other than ``git ls-files`` and without printing any secret:

- Is every ``*.sops.*`` file actually encrypted? (A file whose name promises encryption
  but holds plaintext is the classic way a secret reaches git.)
- Does any YAML file hold a Kubernetes ``Secret`` with ``data``/``stringData`` without
  being sops-encrypted? (Flux would apply it; git would publish it.)
- Does any file hold a credential with a well-known shape: GitHub, GitLab, Slack and AWS
  tokens, private key blocks, age secret keys?
- Does ``cluster.yaml`` or ``nodes.yaml`` hold something that looks like a secret? They are
  committed in plaintext, so secrets belong in ``cluster.sops.yaml`` instead.

Exceptions are explicit: the test-only example keys under ``tests/fixtures/example-operator/``
(marked TEST-ONLY in its README), and a line (or, for a ``Secret``, a document) carrying the
comment ``secret-guard: allow`` — visible in every review.

Standard library only (plus :mod:`tasks.sopsfile`, itself standard library only), so the
pre-commit hook can load it without installing the task library's dependencies.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.lib.problems import Problem
from tasks.lib.secrets.sopsfile import SECRET_ROOTS, is_encrypted_text, is_sops_name

#: The plaintext configuration files that are committed and must stay secret-free.
PLAINTEXT_CONFIGS = ("cluster.yaml", "nodes.yaml")

#: Where the operator's secrets belong, and how to put them there.
SECRETS_HOME = "move it into cluster.sops.yaml (`inv sops.edit cluster.sops.yaml`)"

#: Key names whose value is a secret whatever it looks like.
SECRET_KEY = re.compile(
    r"(^|_)(token|secret|password|passwd|credentials?|private_?key|api_?key|tunnelsecret)$",
    re.IGNORECASE,
)
#: Keys whose values are long identifiers by design, never secrets.
NOT_SECRET_KEYS = frozenset({"schematic_id", "mac_addr", "disk", "repository_name", "cloudflare_domain"})

AGE_SECRET = re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{20,}")
PRIVATE_KEY_BLOCK = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
#: Tokens with a well-known shape: GitHub, Slack, AWS, JWTs (1Password Connect tokens).
KNOWN_TOKENS = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{20,}"
    r"|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
)
#: What the whole-tree scan looks for in every file: (pattern, what it is). Only shapes that
#: never occur by chance (a prefix plus enough random characters). Cloudflare API tokens
#: have no fixed prefix, so only the plaintext-config scan (by key name and randomness)
#: catches them.
TREE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}"), "GitHub token"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{60,}"), "GitHub fine-grained token"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), "GitLab token"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{20,}"), "Slack token"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "AWS access key id"),
    (AGE_SECRET, "age secret key"),
    (PRIVATE_KEY_BLOCK, "private key block"),
)
#: The comment that marks a deliberate, reviewed exception.
ALLOW_MARKER = "secret-guard: allow"
#: Directories of public, test-only keys: allowed when their README says TEST-ONLY.
TEST_ONLY_DIRS = ("tests/fixtures/example-operator",)
#: Files larger than this are not text a person wrote (and are not scanned).
MAX_SCAN_BYTES = 2 * 1024 * 1024
KEY_VALUE = re.compile(r"^\s*(?:-\s+)?(?P<key>[A-Za-z_][\w.-]*)\s*:(?:\s+(?P<value>.*?))?\s*$")
TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_+/=.-]+$")
HEX = re.compile(r"^[0-9a-fA-F]+$")

#: Directories never searched for ``*.sops.*`` files: templates and test fixtures are not secrets.
SKIP_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "templates", "tests", "__pycache__"})
#: The same, as path prefixes: their ``*.sops.*`` files are not checked for encryption
#: (test fixtures of unencrypted files on purpose) — the token and Secret checks still apply.
SKIPPED_PREFIXES = ("templates/", "tests/")


@dataclass(frozen=True, order=True)
class Finding(Problem):
    """One problem, located by file and (when known) line; never carries the secret."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    counts = {ch: text.count(ch) for ch in set(text)}
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_like_token(value: str) -> bool:
    """A long, random-looking string without spaces: an API token, a password, a secret.

    Addresses, CIDRs, paths, host names and plain words are never token-like; long hex
    strings count only when they are not a known identifier (checked by the caller).
    """
    if len(value) < 24 or not TOKEN_CHARS.match(value):
        return False
    if HEX.match(value):
        return len(value) >= 32
    if value.startswith("/") or re.fullmatch(r"[a-z0-9.-]+", value):  # paths, host names
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes >= 2 and entropy(value) >= 3.5


def clean_value(raw: str | None) -> str:
    """The scalar of a ``key: value`` line: comment and quotes removed."""
    if not raw:
        return ""
    value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value


def scan_line(key: str | None, value: str) -> str | None:
    """Why one ``key: value`` holds a plaintext secret, or None."""
    if key and SECRET_KEY.search(key) and value and value not in ("null", "~", "''", '""', "[]", "{}"):
        return f"{key}: plaintext secret — {SECRETS_HOME}"
    if key in NOT_SECRET_KEYS:
        return None
    if value and looks_like_token(value):
        return f"{key or 'value'}: looks like a token or password — {SECRETS_HOME}"
    return None


def scan_config_text(text: str, label: str) -> list[Finding]:
    """Plaintext secrets in one committed configuration file (``cluster.yaml``, ``nodes.yaml``)."""
    findings: list[Finding] = []
    block_key: str | None = None  # inside `key: |` the following lines belong to key
    block_indent = -1
    for number, line in enumerate(text.splitlines(), start=1):
        if AGE_SECRET.search(line):
            findings.append(
                Finding(label, number, f"age secret key — keep it only in age.key; {SECRETS_HOME}")
            )
            continue
        if PRIVATE_KEY_BLOCK.search(line):
            findings.append(Finding(label, number, f"private key block — {SECRETS_HOME}"))
            continue
        if KNOWN_TOKENS.search(line):
            findings.append(Finding(label, number, f"token — {SECRETS_HOME}"))
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if block_key is not None and indent > block_indent:
            if (message := scan_line(block_key, stripped)) is not None:
                findings.append(Finding(label, number, message))
                block_key = None  # one finding per block is enough
            continue
        block_key = None
        match = KEY_VALUE.match(line)
        if match is None:
            value = clean_value(stripped.removeprefix("- "))
            if (message := scan_line(None, value)) is not None:
                findings.append(Finding(label, number, message))
            continue
        key, value = match["key"], clean_value(match["value"])
        if value in ("|", ">", "|-", ">-", "|+", ">+"):
            block_key, block_indent = key, indent
            continue
        if (message := scan_line(key, value)) is not None:
            findings.append(Finding(label, number, message))
    return findings


def check_sops_text(text: str, label: str) -> list[Finding]:
    """A ``*.sops.*`` file that is not (or not fully) encrypted."""
    if not text.strip():
        return []
    if not is_encrypted_text(text):
        return [Finding(label, 0, "not encrypted — run `inv sops.encrypt " + label + "`")]
    return []


def sops_files(root: Path) -> Iterator[Path]:
    """Every ``*.sops.*`` file of the repository: at its root and under the rendered trees."""
    for path in sorted(root.iterdir()):
        if path.is_file() and is_sops_name(path) and not path.name.endswith(".j2"):
            yield path
    for top in SECRET_ROOTS:
        base = root / top
        if not base.is_dir():
            continue
        for directory, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
            for name in sorted(filenames):
                if is_sops_name(name) and not name.endswith(".j2"):
                    yield Path(directory) / name


def relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def is_test_only(label: str, root: Path) -> bool:
    for directory in TEST_ONLY_DIRS:
        if label.startswith(directory + "/"):
            readme = read(root / directory / "README.md")
            return "TEST-ONLY" in readme
    return False


def scan_tokens(text: str, label: str) -> list[Finding]:
    """Credentials with a well-known shape, anywhere in a file."""
    findings = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if ALLOW_MARKER in line:
            continue
        for pattern, what in TREE_PATTERNS:
            if pattern is PRIVATE_KEY_BLOCK and not key_body_follows(lines, number):
                continue  # a bare header (code that recognises keys), not a key
            if pattern.search(line):
                findings.append(
                    Finding(label, number, f"{what} in plaintext — remove it and rotate it; {SECRETS_HOME}")
                )
                break
    return findings


KEY_BODY = re.compile(r"^[\s\"']*[A-Za-z0-9+/=]{40,}[\s\"',\\n]*$")


def key_body_follows(lines: list[str], number: int) -> bool:
    """Whether the line after line ``number`` (1-based) looks like a key's base64 body."""
    return number < len(lines) and bool(KEY_BODY.match(lines[number]))


TOP_LEVEL_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)\s*:(?P<rest>.*)$")


def scan_secret_documents(text: str, label: str) -> list[Finding]:
    """Kubernetes ``Secret`` documents with ``data``/``stringData`` in a file that sops has not
    encrypted, located at their ``kind: Secret`` line (plain text, no YAML parser needed)."""
    if is_encrypted_text(text):
        return []
    findings = []
    lines = text.splitlines()
    start = 0
    for end in [
        *(i for i, line in enumerate(lines) if line.rstrip() == "---" or line.startswith("--- ")),
        len(lines),
    ]:
        document = lines[start:end]
        finding = secret_in_document(document, start, label)
        if finding is not None:
            findings.append(finding)
        start = end + 1
    return findings


def secret_in_document(document: list[str], offset: int, label: str) -> Finding | None:
    kind_line = None
    has_data = False
    for index, line in enumerate(document):
        match = TOP_LEVEL_KEY.match(line)
        if match is None:
            continue
        key, rest = match["key"], clean_value(match["rest"])
        if key == "kind" and rest == "Secret":
            kind_line = offset + index + 1
        elif key in ("data", "stringData"):
            nested = index + 1 < len(document) and document[index + 1][:1] in (" ", "-")
            has_data = has_data or nested or rest not in ("", "{}", "null", "~")
    if kind_line is None or not has_data or any(ALLOW_MARKER in line for line in document):
        return None
    return Finding(
        label,
        kind_line,
        "Secret with data in plaintext — name the file *.sops.yaml and encrypt it "
        f"(`inv sops.encrypt --path {label}`)",
    )


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:8192]


def scan_tree_file(path: Path, label: str, root: Path) -> list[Finding]:
    """The whole-tree checks of one file (tokens everywhere, Secrets in YAML)."""
    if is_test_only(label, root):
        return []
    try:
        if not path.is_file() or path.stat().st_size > MAX_SCAN_BYTES:
            return []
        data = path.read_bytes()
    except OSError:
        return []
    if is_binary(data):
        return []
    text = data.decode("utf-8", errors="replace")
    findings = scan_tokens(text, label)
    if path.suffix in (".yaml", ".yml") and not is_sops_name(path):
        findings += scan_secret_documents(text, label)
    return findings


def repository_files(root: Path) -> list[Path]:
    """The files git tracks, plus the untracked ones it would add (not ignored); every file
    outside the skipped directories where ``root`` is not a git repository."""
    from tasks.lib.tools.runner import Command, find_tool, run_one

    if find_tool("git") is not None:
        argv = ("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        listed = run_one(Command(argv, cwd=root))
        if listed.ok:
            return [root / name for name in sorted(set(listed.stdout.split("\0"))) if name]
    files = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", ".venv", "venv", "node_modules"))
        files += [Path(directory) / name for name in sorted(filenames)]
    return files


def check_files(paths: Iterable[Path], root: Path) -> list[Finding]:
    """Check the given files: plaintext configs for secrets, ``*.sops.*`` for encryption.
    Other files are ignored, so a pre-commit hook can pass whatever changed."""
    findings: set[Finding] = set()
    for path in paths:
        label = relative(path, root)
        if not path.is_file():
            continue
        findings.update(scan_tree_file(path, label, root))
        if label.endswith(".j2") or label.startswith(SKIPPED_PREFIXES):
            continue
        if is_sops_name(path):
            findings.update(check_sops_text(read(path), label))
        elif label in PLAINTEXT_CONFIGS:
            findings.update(scan_config_text(read(path), label))
    return sorted(findings)


def check_repository(root: Path) -> list[Finding]:
    """The whole repository: every file git tracks or would add, both plaintext configs
    and every ``*.sops.*`` file."""
    paths = {*repository_files(root), *(root / name for name in PLAINTEXT_CONFIGS), *sops_files(root)}
    return check_files(sorted(paths), root)


def main(argv: Sequence[str] | None = None) -> int:
    """Pre-commit entry point: check the files named on the command line (the whole
    repository when none are), print one line per finding, exit 1 if there is any."""
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path.cwd()
    findings = check_files([Path(a) for a in args], root) if args else check_repository(root)
    for finding in findings:
        print(finding, file=sys.stderr)
    return 1 if findings else 0
