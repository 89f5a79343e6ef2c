"""SOPS files by name and by content, the creation rule sops would pick, and the command
lines that feed sops on stdin."""

from __future__ import annotations

import pytest

from tasks.lib.secrets import sopsfile

ENCRYPTED = (
    "a: ENC[AES256_GCM,data:abc=,iv:x=,tag:y=,type:str]\n"
    "sops:\n  age:\n    - recipient: age1x\n      enc: x\n"
    "  lastmodified: '2025-01-01T00:00:00Z'\n  mac: ENC[AES256_GCM,data:m=,iv:x=,tag:y=,type:str]\n"
    "  version: 3.10.2\n"
)


@pytest.mark.parametrize(
    ("name", "sops", "store"),
    [
        ("cluster.sops.yaml", True, "yaml"),
        ("talos/talsecret.sops.yml", True, "yaml"),
        ("x.sops.json", True, "json"),
        ("app.sops.env", True, "dotenv"),
        ("cluster.yaml", False, "yaml"),
        ("sops.yaml", False, "yaml"),
        ("key.sops.bin", True, "binary"),
    ],
)
def test_names_and_stores(name: str, sops: bool, store: str) -> None:
    assert sopsfile.is_sops_name(name) is sops
    assert sopsfile.store_for(name) == store
    assert sopsfile.store_for("") == "yaml"


def test_encryption_state_by_sops_rules() -> None:
    assert sopsfile.encryption_state("a: 1\n", "x.yaml") == "plain"
    assert sopsfile.is_encrypted_text(ENCRYPTED, "x.sops.yaml")
    assert sopsfile.encryption_state(ENCRYPTED.replace("ENC[AES256_GCM,data:abc=", "1 #"), "x.sops.yaml") != (
        "encrypted"
    )


def test_creation_rule_is_the_first_match_as_sops_picks_it() -> None:
    config = (
        "creation_rules:\n"
        "  - path_regex: talos/.*\\.sops\\.ya?ml\n    age: age1talos\n"
        "  - path_regex: '[bad'\n    age: age1bad\n"
        "  - path_regex: .*\\.sops\\.ya?ml\n    age: age1all\n"
    )
    assert sopsfile.creation_rule(config, "talos/talsecret.sops.yaml")["age"] == "age1talos"  # type: ignore[index]
    assert sopsfile.creation_rule(config, "kubernetes/a.sops.yaml")["age"] == "age1all"  # type: ignore[index]
    assert sopsfile.creation_rule(config, "README.md") is None
    assert sopsfile.creation_rule("creation_rules: [", "x") is None


def test_command_lines_never_take_a_file_name_as_an_option() -> None:
    assert sopsfile.encrypt_argv("a.sops.json")[-5:] == [
        "--input-type",
        "json",
        "--output-type",
        "json",
        "/dev/stdin",
    ]
    assert sopsfile.decrypt_argv("-x.sops.yaml")[-1] == "./-x.sops.yaml"
    argv = sopsfile.encrypt_to_argv("a.sops.yaml", "age1me")
    assert argv[:4] == ["sops", "--encrypt", "--age", "age1me"]
