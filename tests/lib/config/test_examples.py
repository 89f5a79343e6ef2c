"""What counts as the example's value: one definition behind configure's warning and
bootstrap's refusal (tests/lib/provision/test_ready.py). Checked against the bundled example
itself (real sops, the example's test key) and `inv init`'s placeholders, so neither can drift
from the definition."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tasks.lib.config import examples
from tasks.lib.secrets.operator import PLACEHOLDER_SECRETS
from tests.conftest import EXAMPLE_OPERATOR, ROOT
from tests.fakes import sops_path

EXAMPLE_SECRETS_FILE = ROOT / "tests" / "fixtures" / "example" / "cluster.sops.yaml"


def decrypted_example() -> dict[str, object]:
    env = {"SOPS_AGE_KEY_FILE": str(EXAMPLE_OPERATOR / "age.key"), "PATH": "/usr/bin:/bin"}
    text = subprocess.run(
        [sops_path(), "--decrypt", str(EXAMPLE_SECRETS_FILE)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    data: dict[str, object] = yaml.safe_load(text)
    return data


def test_every_secret_of_the_bundled_example_is_an_example_value() -> None:
    secrets = decrypted_example()
    flagged = {value.key for value in examples.in_secrets(secrets)}
    leaves = {key for key, _ in examples.leaves("", {k: v for k, v in secrets.items() if k != "sops"})}
    assert flagged == leaves  # the definition and the example cannot drift apart
    assert all("fake" in value.what for value in examples.in_secrets(secrets))


def test_every_placeholder_of_init_is_an_example_value() -> None:
    secrets = yaml.safe_load(PLACEHOLDER_SECRETS)
    flagged = {value.key for value in examples.in_secrets(secrets)}
    assert flagged == {"cloudflare_token", "cloudflare_tunnel.AccountTag", "cloudflare_tunnel.TunnelSecret"}


def test_placeholders_are_found_at_any_depth() -> None:
    secrets = {"a": "replace-me", "b": {"c": "x", "d": f"<{examples.PLACEHOLDER_MARK}>"}, "e": 1}
    assert [value.key for value in examples.in_secrets(secrets)] == ["a", "b.d"]


@pytest.mark.parametrize(
    ("domain", "example"),
    [
        ("example.com", True),
        ("lab.example.org", True),
        ("Example.NET.", True),
        ("home.example", True),
        ("example.community", False),
        ("myexample.com", False),
        ("homelab.test", False),
    ],
)
def test_example_domains(domain: str, example: bool) -> None:
    assert examples.is_example_domain(domain) is example


@pytest.mark.parametrize(
    ("repository", "example"),
    [
        ("example/home-ops", True),
        ("https://github.com/example/home-ops.git", True),
        ("ssh://git@git.lan:2222/example/cluster.git", True),
        ("octo/home-ops", False),
        ("https://git.lan/examples/home-ops", False),
    ],
)
def test_example_repository(repository: str, example: bool) -> None:
    found = examples.in_config({"repository_name": repository, "cloudflare_domain": "homelab.test"})
    assert bool(found) is example


def test_a_config_of_ones_own_has_no_example_value_and_an_unset_key_is_not_one() -> None:
    assert examples.in_config({"repository_name": "octo/home-ops", "cloudflare_domain": "homelab.test"}) == []
    assert examples.in_config({}) == []


def test_config_values_are_named_by_file_and_key() -> None:
    found = examples.in_config({"cloudflare_domain": "example.org"}, label="my/cluster.yaml")
    assert [value.line() for value in found] == [
        "my/cluster.yaml: cloudflare_domain: example.org is a domain reserved for examples"
    ]


def test_the_owner_of_an_unparsable_repository_is_its_first_segment() -> None:
    assert examples.repository_owner("Example/home-ops") == "example"
    assert examples.repository_owner("/example/") == "example"


def test_sops_metadata_is_never_a_secret_and_a_changed_value_is_ones_own() -> None:
    secrets = {
        "sops": {"mac": "replace-me"},
        "cloudflare_token": "my-own-token",
        "onepassword_connect": {"credentials": json.dumps({"deviceUuid": "mine"}), "token": "t"},
    }
    assert examples.in_secrets(secrets) == []


def test_the_example_credentials_are_known_by_their_device() -> None:
    credentials = json.dumps({"deviceUuid": "example"})
    found = examples.in_secrets({"onepassword_connect": {"credentials": credentials}})
    assert [value.key for value in found] == ["onepassword_connect.credentials"]
    assert examples.example_credentials({"deviceUuid": "example"})
    assert not examples.example_credentials("{not json")
    assert not examples.example_credentials(json.dumps(["example"]))


def test_advice_names_each_file_once_with_the_way_to_edit_it() -> None:
    found = [
        examples.ExampleValue("cluster.yaml", "cloudflare_domain", "x"),
        examples.ExampleValue("cluster.sops.yaml", "cloudflare_token", "y"),
        examples.ExampleValue("cluster.yaml", "repository_name", "z"),
    ]
    assert examples.advice(found) == (
        "replace them (cluster.yaml, `inv sops.edit cluster.sops.yaml`), then run `inv configure`"
    )
