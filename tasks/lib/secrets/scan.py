"""The secret guard behind ``inv sops.check``, its pre-commit hook and CI: one definition.

**What it checks** (:func:`in_scope`): every file git tracks or would add (not ignored),
except the paths a global allowlist of ``.gitleaks.toml`` names — the test data that must
hold plaintext, each entry saying why. The task takes all of them, the hook the files a
commit stages, CI runs the task: the same files, the same checks.

**The checks**, each finding naming file, line and the command that fixes it:

- a ``*.sops.*`` file is encrypted by sops's own rules: its metadata with a MAC, and every
  value its rule (or the matching rule of ``.sops.yaml``) encrypts is ciphertext
  (:mod:`.structure`); fix: ``inv sops.encrypt --path FILE``;
- a Kubernetes ``Secret`` with plaintext ``data``/``stringData``, in any YAML or JSON shape
  Kubernetes accepts (a ``List`` item, flow style, quoted keys, JSON, indented whole); fix:
  ``inv sops.encrypt --path FILE`` (a file not named ``*.sops.*`` becomes ``FILE.sops.yaml``);
- ``cluster.yaml`` holds no key that belongs in ``cluster.sops.yaml``; fix:
  ``inv sops.encrypt --path cluster.yaml`` moves it there;
- any token or key shape in any file: gitleaks (:mod:`.gitleaks`), the field's scanner, with
  its own rules; a reviewed false positive carries ``gitleaks:allow`` on its line.

Standard library, PyYAML and the runner only, so the pre-commit hook can load it.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths
from tasks.lib.problems import Problem
from tasks.lib.secrets import gitleaks, structure
from tasks.lib.secrets.sopsfile import SECRET_ROOTS, creation_rule_of, is_sops_name, store_for
from tasks.lib.tools.runner import Command, find_tool, run_one

#: The plaintext configuration files that are committed, and their keys that are secrets
#: (they belong in cluster.sops.yaml; a test keeps this in line with the schema).
CONFIG_SECRETS: dict[str, tuple[str, ...]] = {"cluster.yaml": ("cloudflare_token",), "nodes.yaml": ()}
PLAINTEXT_CONFIGS = tuple(CONFIG_SECRETS)
#: Where the secret keys of the plaintext configs belong.
SECRETS_FILE = "cluster.sops.yaml"
#: gitleaks' inline marker; the structural checks honour it too (on a Secret's lines).
ALLOW_MARKER = "gitleaks:allow"
#: The repository's gitleaks configuration: its global allowlists' ``paths`` are the scope's exceptions.
GITLEAKS_CONFIG = ".gitleaks.toml"
#: Files larger than this are not text a person wrote (not parsed; gitleaks still reads them).
MAX_SCAN_BYTES = 2 * 1024 * 1024
#: Suffixes of the files that may hold a Kubernetes object.
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: Directories never searched for the operator's ``*.sops.*`` files (sops.encrypt and
#: sops.rotate act on those): templates and test fixtures are not the operator's secrets.
SKIP_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "templates", "tests", "__pycache__"})

#: What ``inv sops.encrypt --path FILE`` does about a finding.
ENCRYPT = "encrypt"  # a plaintext *.sops.* file: encrypt it
REENCRYPT = "reencrypt"  # a *.sops.* file with plaintext values: encrypt them too
RENAME = "rename"  # a plaintext Secret in another file: into FILE.sops.yaml, encrypted
MOVE = "move"  # a secret key of cluster.yaml: into cluster.sops.yaml


@dataclass(frozen=True, order=True)
class Finding(Problem):
    """One problem, located by file and (when known) line; never carries the secret.
    ``action`` is what ``inv sops.encrypt --path FILE`` does about it ("" when it cannot)."""

    file: str
    line: int
    message: str
    action: str = field(default="", compare=False)
    end_line: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def encrypt_command(label: str) -> str:
    return f"`inv sops.encrypt --path {label}`"


def sops_name(label: str) -> str:
    """Where ``inv sops.encrypt`` puts a plaintext Secret: ``x.yaml``/``x.json`` -> ``x.sops.yaml``."""
    stem, _, _ = label.rpartition(".")
    return f"{stem or label}.sops.yaml"


# --------------------------------------------------------------------------- scope


def exclusions(root: Path) -> list[re.Pattern[str]]:
    """The ``paths`` of the global allowlists of ``.gitleaks.toml`` (``[[allowlists]]``, or the
    older ``[allowlist]``) that exempt whole files: no ``targetRules``, and no other
    criterion they must hold together with (``condition = "AND"``)."""
    try:
        config = tomllib.loads((root / GITLEAKS_CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    lists = config.get("allowlists") or []
    if isinstance(config.get("allowlist"), dict):
        lists = [*lists, config["allowlist"]]
    patterns: list[re.Pattern[str]] = []
    for entry in lists if isinstance(lists, list) else []:
        if not isinstance(entry, dict) or entry.get("targetRules"):
            continue
        narrowed = str(entry.get("condition", "OR")).upper() == "AND" and any(
            entry.get(key) for key in ("regexes", "stopwords", "commits")
        )
        if narrowed:
            continue
        for path in entry.get("paths") or []:
            try:
                patterns.append(re.compile(str(path)))
            except re.error:
                continue
    return patterns


def in_scope(label: str, excluded: Sequence[re.Pattern[str]]) -> bool:
    """Whether the guard checks ``label`` (a path relative to the repository root)."""
    return not any(pattern.search(label) for pattern in excluded)


def repository_files(root: Path) -> list[str]:
    """The files git tracks, plus the untracked ones it would add (not ignored), relative
    to ``root``; every file outside ``.git`` and virtualenvs where ``root`` is not a git
    repository."""
    argv = ("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    outcome = run_one(Command(argv, cwd=root, deadline=60)) if find_tool("git") else None
    if outcome is not None and outcome.ok:
        return sorted({name for name in outcome.stdout.split("\0") if name})
    files = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", ".venv", "venv", "node_modules"))
        files += [(Path(directory) / name).relative_to(root).as_posix() for name in sorted(filenames)]
    return files


def sops_files(root: Path) -> list[Path]:
    """The operator's ``*.sops.*`` files (what ``sops.encrypt`` and ``sops.rotate`` act on):
    at the repository root and under the rendered trees; never templates or test fixtures."""
    found = [p for p in sorted(root.iterdir()) if p.is_file() and is_sops_name(p)]
    for top in SECRET_ROOTS:
        for directory, dirnames, filenames in os.walk(root / top):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
            found += [Path(directory) / name for name in sorted(filenames) if is_sops_name(name)]
    return found


def readable_text(root: Path, label: str) -> str | None:
    """The text of a regular file inside the repository, or None: a symlink, something
    outside the repository, too large, binary or unreadable is not parsed."""
    path = root / label
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SCAN_BYTES:
            return None
        if root.resolve() not in path.resolve().parents:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- structural checks


def check_sops_text(text: str, label: str, root: Path) -> list[Finding]:
    """A ``*.sops.*`` file that is not (or not completely) encrypted, by sops's rules."""
    rule = creation_rule_of(root / ".sops.yaml", label)
    problems = structure.sops_problems(text, store_for(label), rule)
    if problems == [(0, "not encrypted")]:
        return [Finding(label, 0, f"not encrypted — {encrypt_command(label)} encrypts it", ENCRYPT)]
    findings = []
    for line, message in problems:
        if message.startswith("not valid") or "too large" in message or "nested" in message:
            findings.append(Finding(label, line, f"{message}; fix the file, then run `inv sops.check`"))
        else:
            findings.append(
                Finding(label, line, f"{message} — {encrypt_command(label)} re-encrypts it", REENCRYPT)
            )
    return findings


def check_manifest_text(text: str, label: str, root: Path) -> list[Finding]:
    """Kubernetes Secrets with plaintext data in a YAML or JSON file (unparseable text is
    not a manifest Kubernetes would take: nothing to report here)."""
    try:
        hits = structure.secrets_in(text)
    except structure.Unreadable:
        return []
    lines = text.splitlines()
    findings = []
    for hit in hits:
        if any(ALLOW_MARKER in line for line in lines[hit.line - 1 : hit.end_line]):
            continue
        what = (
            f"Secret {hit.name}".rstrip()
            + f": {', '.join(hit.keys[:3])}"
            + (" ..." if len(hit.keys) > 3 else "")
        )
        findings.append(secret_finding(label, hit, what, root))
    return findings


def secret_finding(label: str, hit: structure.SecretHit, what: str, root: Path) -> Finding:
    """The finding for a plaintext Secret, with the fix that works for this file."""
    target = label if is_sops_name(label) else sops_name(label)
    rule = creation_rule_of(root / ".sops.yaml", target)
    covered = rule is not None and all(rule.encrypts(key.split(".", 1)[:1]) for key in hit.keys)
    if not covered:
        return Finding(
            label,
            hit.line,
            f"{what} in plaintext, and no rule of .sops.yaml would encrypt it as {target}: keep Secrets "
            "under kubernetes/ or bootstrap/ (`inv configure` renders their rules)",
            end_line=hit.end_line,
        )
    if is_sops_name(label):
        message = (
            f"{what} left in plaintext by the rule it was encrypted with — "
            f"{encrypt_command(label)} re-encrypts it"
        )
        return Finding(label, hit.line, message, REENCRYPT, hit.end_line)
    message = f"{what} in plaintext — {encrypt_command(label)} encrypts it into {target}"
    return Finding(label, hit.line, message, RENAME, hit.end_line)


def check_config_text(text: str, label: str) -> list[Finding]:
    """A committed plaintext config holding a key that belongs in ``cluster.sops.yaml``."""
    secrets = CONFIG_SECRETS.get(label, ())
    if not secrets:
        return []
    try:
        documents = structure.compose(text)
    except structure.Unreadable:
        return []  # configure reports the syntax error
    findings = []
    for document in documents[:1]:
        if document.id != "mapping":
            continue
        for key, value in document.value:
            name = structure.scalar(key)
            if name in secrets and not structure.is_null(value):
                findings.append(
                    Finding(
                        label,
                        key.start_mark.line + 1,
                        f"{name}: a secret in a file git commits — {encrypt_command(label)} moves it "
                        f"into {SECRETS_FILE}",
                        MOVE,
                        value.end_mark.line + 1,
                    )
                )
    return findings


def structural_findings(root: Path, label: str) -> list[Finding]:
    """Every structural check of one file in scope."""
    text = readable_text(root, label)
    if text is None:
        return []
    findings: list[Finding] = []
    if is_sops_name(label) and not label.endswith(".j2"):
        findings += check_sops_text(text, label, root)
    if label.lower().endswith(MANIFEST_SUFFIXES) and not findings:
        findings += check_manifest_text(text, label, root)
    if label in CONFIG_SECRETS:
        findings += check_config_text(text, label)
    return findings


def check_text(root: Path, label: str) -> list[Finding]:
    """The structural findings of one file (``sops.encrypt`` decides its fix by them)."""
    return structural_findings(root, label)


# --------------------------------------------------------------------------- the whole guard


def covered(leak_file: str, line: int, findings: Iterable[Finding]) -> bool:
    """Whether a structural finding already covers this line (its fix removes the plaintext)."""
    for finding in findings:
        if finding.file != leak_file or not finding.action:
            continue
        if finding.line == 0 or finding.line <= line <= max(finding.end_line, finding.line):
            return True
    return False


def warn_on_stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def check_files(
    labels: Iterable[str], root: Path, warn: Callable[[str], None] = warn_on_stderr
) -> list[Finding]:
    """The guard over ``labels`` (paths relative to ``root``) that are in scope. When gitleaks
    could not run (a workstation without it; in CI that is an error), ``warn`` is told so."""
    excluded = exclusions(root)
    chosen = sorted({label for label in labels if in_scope(label, excluded) and scannable(root, label)})
    findings: list[Finding] = []
    for label in chosen:
        findings += structural_findings(root, label)
    leaks = gitleaks.scan(root, chosen)
    if leaks is None:
        warn(f"{gitleaks.missing_line()}: token and key shapes were NOT checked here (CI checks them)")
        leaks = []
    for leak in leaks:
        if leak.file in chosen and not covered(leak.file, leak.line, findings):
            findings.append(
                Finding(
                    leak.file,
                    leak.line,
                    f"{leak.what} in plaintext (gitleaks rule {leak.rule}) — remove it and revoke it "
                    "where it was issued; a value the cluster needs goes into a *.sops.yaml file",
                )
            )
    return sorted(set(findings))


def scannable(root: Path, label: str) -> bool:
    """A regular file (not a symlink) inside the repository."""
    path = root / label
    try:
        return not path.is_symlink() and path.is_file() and root.resolve() in path.resolve().parents
    except OSError:
        return False


def check_repository(root: Path, warn: Callable[[str], None] = warn_on_stderr) -> list[Finding]:
    """The whole repository: every file in scope."""
    return check_files(repository_files(root), root, warn)


def relative_label(name: str, root: Path) -> str:
    path = Path(name)
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        return absolute.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Pre-commit entry point: check the files named on the command line (the whole
    repository when none are), print one line per finding, exit 1 if there is any."""
    args = list(sys.argv[1:] if argv is None else argv)
    root = repo_paths().root
    try:
        if args:
            findings = check_files([label for a in args if (label := relative_label(a, root))], root)
        else:
            findings = check_repository(root)
    except UserError as error:
        for line in error.lines:
            print(line, file=sys.stderr)
        return 1
    for finding in findings:
        print(finding, file=sys.stderr)
    return 1 if findings else 0
