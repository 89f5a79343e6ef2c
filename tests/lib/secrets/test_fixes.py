"""What sops.encrypt changes in memory before sops runs: documents kept as they were
written, values located, a kustomization repointed, a secret key cut out of cluster.yaml."""

from __future__ import annotations

from pathlib import Path

from tasks.lib.secrets import fixes

CIPHERTEXT = "ENC[AES256_GCM,data:a=,iv:b=,tag:c=,type:str]"


def test_yaml_documents_round_trip_with_their_comments() -> None:
    text = "# head\na: 1  # why\nlist:\n  - x\n---\nb: 2\n"
    assert fixes.dump_documents(fixes.load_documents(text, "yaml"), "yaml") == text
    assert fixes.load_documents('{"a": [1]}', "json") == [{"a": [1]}]


def test_leaves_locate_every_scalar_and_set_at_changes_one() -> None:
    documents = fixes.load_documents("data:\n  a: x\n  list:\n    - y\n", "yaml")
    found = list(fixes.leaves(documents[0], (0,), ()))
    assert found == [((0, "data", "a"), ("data", "a"), "x"), ((0, "data", "list", 0), ("data", "list"), "y")]
    fixes.set_at(documents, (0, "data", "list", 0), CIPHERTEXT)
    assert documents[0]["data"]["list"] == [CIPHERTEXT]


def test_is_ciphertext() -> None:
    assert fixes.is_ciphertext(CIPHERTEXT) and fixes.is_ciphertext("") and fixes.is_ciphertext(None)
    assert not fixes.is_ciphertext("hunter2") and not fixes.is_ciphertext(1)


def test_a_kustomization_is_repointed_at_the_encrypted_file(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources:\n  - ./db.yaml  # the database\n  - 'db.yaml'\n  - ./other-db.yaml\n"
    )
    found = fixes.repoint_kustomization(tmp_path, "db.yaml", "db.sops.yaml")
    assert found == (
        tmp_path / "kustomization.yaml",
        "resources:\n  - ./db.sops.yaml  # the database\n  - 'db.sops.yaml'\n  - ./other-db.yaml\n",
    )
    assert fixes.repoint_kustomization(tmp_path, "absent.yaml", "x") is None


def test_without_keys_drops_only_their_lines() -> None:
    token = "cloudflare_token: >-\n  abc\n  def\n"
    text = f"# settings\nnode_cidr: 10.0.0.0/24\n{token}repository_name: a/b  # mine\n"
    assert fixes.without_keys(text, {"cloudflare_token"}) == (
        "# settings\nnode_cidr: 10.0.0.0/24\nrepository_name: a/b  # mine\n"
    )
    assert fixes.without_keys(text, {"absent"}) == text
