"""SOPS documents read by sops' own rules, and plaintext Kubernetes Secrets found wherever
they sit. The real sops' files and the hostile shapes: tests/test_secret_guard.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.lib.secrets import structure
from tasks.lib.secrets.structure import Rule

CIPHERTEXT = "ENC[AES256_GCM,data:a=,iv:b=,tag:c=,type:str]"
KEY = st.text(alphabet="abcdefgh_", min_size=1, max_size=12)


def test_the_default_rule_leaves_unencrypted_suffixes_alone() -> None:
    rule = Rule.of({})
    assert rule == Rule(unencrypted_suffix="_unencrypted")
    assert rule.encrypts(["data", "password"]) and not rule.encrypts(["data", "note_unencrypted"])


def test_an_encrypted_regex_encrypts_only_matching_keys_and_a_broken_one_everything() -> None:
    rule = Rule.of({"encrypted_regex": "^(data|stringData)$"})
    assert rule.encrypts(["stringData", "x"]) and not rule.encrypts(["metadata", "name"])
    assert Rule(encrypted_regex="[").encrypts(["metadata"])  # unreadable: never lets a value pass


@given(st.lists(KEY, min_size=1, max_size=4))
def test_suffix_rules_follow_sops(path: list[str]) -> None:
    assert Rule(encrypted_suffix="_enc").encrypts(path) == any(k.endswith("_enc") for k in path)
    assert Rule(unencrypted_suffix="_plain").encrypts(path) == (not any(k.endswith("_plain") for k in path))


def test_no_metadata_is_plain_and_an_empty_text_too() -> None:
    assert structure.sops_state("a: 1\n", "yaml") == "plain"
    assert structure.sops_state("  \n", "yaml") == "plain"
    assert structure.sops_state("sops:\n  version: 3\na: 1\n", "yaml") == "partial"


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("kind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2\n", ("stringData.password",)),
        ('{"kind": "Secret", "data": {"a": "aGk=", "b": ""}}', ("data.a",)),
        (
            f"kind: List\nitems:\n  - kind: Secret\n    data:\n      x: {CIPHERTEXT}\n",
            None,
        ),
        ("kind: List\nitems:\n  - kind: Secret\n    data:\n      x: eA==\n", ("data.x",)),
        ("kind: ConfigMap\ndata:\n  password: hunter2\n", None),
        ("kind: Secret\nstringData:\n  a:\n  b: ~\n  c: null\n  d: ''\n", None),
    ],
)
def test_plaintext_secrets_are_found_with_their_keys(text: str, keys: tuple[str, ...] | None) -> None:
    hits = structure.secrets_in(text)
    assert [hit.keys for hit in hits] == ([keys] if keys else [])


def test_a_hit_names_its_secret_and_lines() -> None:
    (hit,) = structure.secrets_in(
        "---\nother: 1\n---\nkind: Secret\nmetadata:\n  name: db\ndata:\n  pw: eA==\n"
    )
    assert (hit.line, hit.name) == (4, "db")


def test_not_yaml_is_unreadable() -> None:
    with pytest.raises(structure.Unreadable):
        structure.secrets_in("a: [\n")
