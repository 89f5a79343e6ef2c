"""Keys made and read: age identities, deploy keys, push tokens, a SOPS file's recipients."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.errors import UserError
from tasks.lib.secrets import keys


def test_a_new_age_key_file_reads_back_to_its_public_key(tmp_path: Path) -> None:
    content, public = keys.age_key_file()
    path = tmp_path / "age.key"
    path.write_text(content)
    identity, read_public = keys.read_age_identity(path, "age.key")
    assert read_public == public and public.startswith("age1")
    assert identity.startswith("AGE-SECRET-KEY-") and identity in content


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# only a comment\n", "no AGE-SECRET-KEY line"),
        ("AGE-SECRET-KEY-1NOTAKEY\n", "not a valid age key"),
    ],
)
def test_bad_age_key_files_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "age.key").write_text(text)
    with pytest.raises(UserError, match=message):
        keys.read_age_identity(tmp_path / "age.key", "age.key")
    with pytest.raises(UserError, match="run `inv init`"):
        keys.read_age_identity(tmp_path / "absent", "absent")


def test_a_deploy_key_pair_is_openssh_without_a_passphrase() -> None:
    private, public = keys.deploy_key_pair("test")
    assert keys.openssh_cipher(private) == "none"
    assert public == f"{keys.openssh_public_key(private, 'k')} test\n"
    assert keys.openssh_cipher("not a key") is None
    with pytest.raises(UserError, match="k: not an OpenSSH private key"):
        keys.openssh_public_key("-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n", "k")


def test_push_tokens_are_256_random_bits() -> None:
    first, second = keys.push_token(), keys.push_token()
    assert first != second and len(first.strip()) == 64 and int(first, 16) >= 0


def test_recipients_from_the_metadata_or_none(tmp_path: Path) -> None:
    path = tmp_path / "s.sops.yaml"
    path.write_text(
        "a: ENC[x]\nsops:\n  age:\n    - recipient: age1one\n    - recipient: age1two\n    - other: x\n"
    )
    assert keys.age_recipients_of(path) == ["age1one", "age1two"]
    for text in ("a: 1\n", "sops: [\n", "- list\n"):
        path.write_text(text)
        assert keys.age_recipients_of(path) == []
    assert keys.age_recipients_of(tmp_path / "absent") == []
