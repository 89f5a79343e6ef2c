"""Which age keys can open which SOPS file, said in one line before sops is run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths
from tasks.lib.secrets import keys, recipients


@pytest.fixture
def operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(tmp_path / "operator"))
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    (tmp_path / "operator").mkdir()
    return tmp_path / "operator"


def encrypted_to(path: Path, *publics: str) -> Path:
    path.write_text("a: ENC[x]\nsops:\n  age:\n" + "".join(f"    - recipient: {p}\n" for p in publics))
    return path


def test_parse_identities_skips_what_is_not_a_key() -> None:
    content, public = keys.age_key_file()
    identities = recipients.parse_identities(f"{content}\nAGE-SECRET-KEY-1BROKEN\n")
    assert identities.public_keys == (public,) and len(identities.secret_keys) == 1


def test_key_problem_says_missing_wrong_or_nothing(tmp_path: Path, operator: Path) -> None:
    paths = repo_paths(tmp_path)
    mine, public = keys.age_key_file()
    _, other = keys.age_key_file()
    secret = encrypted_to(tmp_path / "s.sops.yaml", other)
    assert "not found: run `inv init`" in (recipients.key_problem(paths, secret) or "")
    paths.age_key.write_text(mine)
    problem = recipients.key_problem(paths, secret) or ""
    assert f"encrypted to {other}" in problem and f"holds {public}" in problem
    with pytest.raises(UserError):
        recipients.require_keys(paths, [secret])
    encrypted_to(secret, other, public)
    assert recipients.key_problem(paths, secret) is None
    assert recipients.require_keys(paths, [secret]).public_keys == (public,)


def test_sops_errors_become_what_to_do(tmp_path: Path, operator: Path) -> None:
    paths = repo_paths(tmp_path)
    assert recipients.explain_sops_error(paths, "x.sops.yaml", "Error: sops metadata not found") == (
        "x.sops.yaml: not encrypted — run `inv sops.encrypt --path x.sops.yaml`"
    )
    assert "matches this file" in recipients.explain_sops_error(
        paths, "x", "error: no matching creation rules found"
    )
    assert recipients.explain_sops_error(paths, "x", "\n  odd failure\nmore") == "x: odd failure"


def test_creation_rule_recipients(tmp_path: Path) -> None:
    config = tmp_path / ".sops.yaml"
    config.write_text(
        "creation_rules:\n"
        "  - path_regex: talos/.*\n    age: 'age1a, age1b'\n"
        "  - path_regex: k/.*\n    age: [age1c]\n"
    )
    assert recipients.creation_rule_recipients(config, "talos/x.sops.yaml") == ["age1a", "age1b"]
    assert recipients.creation_rule_recipients(config, "k/x.sops.yaml") == ["age1c"]
    assert recipients.creation_rule_recipients(config, "other") is None
    assert recipients.creation_rule_recipients(tmp_path / "absent", "x") is None
