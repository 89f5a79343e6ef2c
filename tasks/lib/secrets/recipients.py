"""Which age keys can open which SOPS files, and what to tell the operator when none can.

Pure Python (pyrage and ruamel.yaml, imported lazily): nothing here runs sops. The
``sops`` collection asks these questions *before* running sops, so a missing or wrong key
becomes one line naming the file and what to do, instead of sops' wall of text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyrage

from tasks.lib.errors import UserError
from tasks.lib.paths import Paths
from tasks.lib.secrets.keys import age_recipients_of
from tasks.lib.secrets.sopsfile import creation_rule

#: Fragments of sops' stderr that mean "none of your keys fits".
WRONG_KEY_HINTS = (
    "failed to get the data key",
    "did not match any of the recipients",
    "no identity matched",
    "0 successful groups",
)


@dataclass(frozen=True)
class Identities:
    """The age identities available to sops, and the public keys they answer to."""

    secret_keys: tuple[str, ...]
    public_keys: tuple[str, ...]


def parse_identities(text: str) -> Identities:
    """Every ``AGE-SECRET-KEY-`` line of an age key file (invalid lines are skipped)."""
    secrets: list[str] = []
    publics: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("AGE-SECRET-KEY-"):
            continue
        try:
            identity = pyrage.x25519.Identity.from_str(line)
        except Exception:  # noqa: S112 - pyrage raises an untyped error for malformed keys
            continue
        secrets.append(line)
        publics.append(str(identity.to_public()))
    return Identities(tuple(secrets), tuple(publics))


def available_identities(paths: Paths, extra: Iterable[Path] = ()) -> Identities:
    """Identities from the operator's age key, ``SOPS_AGE_KEY`` and any ``extra`` key files."""
    texts = [os.environ.get("SOPS_AGE_KEY", "")]
    for path in (paths.age_key, *extra):
        try:
            texts.append(path.read_text())
        except (OSError, UnicodeDecodeError):
            continue
    return parse_identities("\n".join(texts))


def missing_key_line(paths: Paths, label: str) -> str:
    return (
        f"{label}: cannot decrypt — {paths.rel(paths.age_key)} not found: run `inv init`, or point "
        "SOPS_AGE_KEY_FILE (or HOME_OPS_OPERATOR_DIR) at the age key this repository is encrypted to"
    )


def wrong_key_line(paths: Paths, label: str, recipients: list[str], have: tuple[str, ...]) -> str:
    holds = ", ".join(have) if have else "no valid AGE-SECRET-KEY line"
    return (
        f"{label}: cannot decrypt — it is encrypted to {', '.join(recipients)}, but "
        f"{paths.rel(paths.age_key)} holds {holds}: use the matching key (SOPS_AGE_KEY_FILE=...), "
        "or, on a machine that has it, `inv sops.rotate`"
    )


def key_problem(paths: Paths, path: Path, identities: Identities | None = None) -> str | None:
    """Why the available keys cannot open ``path`` (one line), or None when one of them can
    (or when the file names no age recipient, so sops must decide)."""
    label = paths.rel(path)
    identities = identities or available_identities(paths)
    if not identities.secret_keys and not paths.age_key.exists():
        return missing_key_line(paths, label)
    recipients = age_recipients_of(path)
    if not recipients or set(recipients) & set(identities.public_keys):
        return None
    return wrong_key_line(paths, label, recipients, identities.public_keys)


def require_keys(paths: Paths, files: Iterable[Path], extra: Iterable[Path] = ()) -> Identities:
    """Stop with one line per file that no available key can open."""
    identities = available_identities(paths, extra)
    lines = [line for f in files if (line := key_problem(paths, f, identities)) is not None]
    if lines:
        raise UserError(*lines)
    return identities


def explain_sops_error(paths: Paths, label: str, stderr: str) -> str:
    """sops' stderr as one line that says what to do."""
    text = stderr.lower()
    if any(hint in text for hint in WRONG_KEY_HINTS):
        return (
            f"{label}: cannot decrypt with the age key in {paths.rel(paths.age_key)} — use the key this "
            "file is encrypted to (SOPS_AGE_KEY_FILE=...), or `inv sops.rotate` on a machine that has it"
        )
    if "sops metadata not found" in text:
        return f"{label}: not encrypted — run `inv sops.encrypt --path {label}`"
    if "no creation rules" in text or "no matching creation rules" in text:
        return (
            f"{label}: no rule in {paths.rel(paths.sops_config)} matches this file — run `inv configure` "
            "to render .sops.yaml, or rename the file to match a rule"
        )
    first = next((line.strip() for line in stderr.splitlines() if line.strip()), "sops failed")
    return f"{label}: {first}"


def creation_rule_recipients(sops_config: Path, filename: str) -> list[str] | None:
    """The age recipients ``.sops.yaml`` would encrypt ``filename`` to (its first matching
    creation rule, as sops picks it); None when no rule matches or the file is unreadable."""
    try:
        rule = creation_rule(sops_config.read_text(), filename)
    except (OSError, UnicodeDecodeError):
        return None
    if rule is None:
        return None
    age = rule.get("age") or []
    entries = age if isinstance(age, list) else str(age).split(",")
    return [str(entry).strip() for entry in entries if str(entry).strip()]
