"""cluster.sops.yaml's decrypted secrets: checked against what the configuration needs,
located on the encrypted file's keys, and turned into template data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.lib.config import template_context as tc
from tasks.lib.config.document import read_yaml

TUNNEL = {"AccountTag": "a", "TunnelID": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "TunnelSecret": "s"}
VALID: dict[str, Any] = {"cloudflare_token": "t", "cloudflare_tunnel": TUNNEL}


def encrypted(tmp_path: Path, keys: list[str]) -> Any:
    path = tmp_path / "cluster.sops.yaml"
    path.write_text("".join(f"{key}: ENC[...]\n" for key in keys) + "sops: {}\n")
    return read_yaml(path, "cluster.sops.yaml")


def problems(tmp_path: Path, secrets: dict[str, Any]) -> list[str]:
    return [str(p) for p in tc.validate_secrets(secrets, encrypted(tmp_path, list(secrets)))]


def test_the_bundled_shape_is_valid(tmp_path: Path) -> None:
    assert problems(tmp_path, VALID) == []


def test_each_problem_is_located_on_its_key(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "cloudflare_token": "",
            "cloudflare_tunnel": {**TUNNEL, "TunnelID": "x"},
            "surprise": 1,
            "cluster_secrets": {"SECRET_DOMAIN": "x"},
        },
    )
    assert found == [
        "cluster.sops.yaml:1:1: cloudflare_token: must be a non-empty string",
        "cluster.sops.yaml:2:1: cloudflare_tunnel: TunnelID 'x' is not a tunnel UUID",
        "cluster.sops.yaml:3:1: surprise: unknown key",
        "cluster.sops.yaml:4:1: cluster_secrets: SECRET_DOMAIN is set by configure (from cluster.yaml); "
        "choose another name",
    ]


def test_a_missing_required_secret_says_how_to_add_it(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, {"cloudflare_token": "t"})
    assert line == (
        "cluster.sops.yaml: cloudflare_tunnel: required secret is missing — "
        "add it with `inv sops.edit cluster.sops.yaml`"
    )
    assert [str(p) for p in tc.validate_secrets(["a"], encrypted(tmp_path, []))] == [
        "cluster.sops.yaml: expected a mapping of secrets"
    ]


def test_template_data_falls_back_to_the_push_token_for_the_webhook() -> None:
    data = tc.secret_template_data(VALID, push_token="push")
    assert data["webhook_token"] == "push"
    assert data["cloudflare_tunnel_id"] == TUNNEL["TunnelID"]
    assert "onepassword_token" not in data
    with_connect = {
        **VALID,
        "flux_webhook_token": "w" * 16,
        "onepassword_connect": {"credentials": " {} ", "token": 5},
    }
    data = tc.secret_template_data(with_connect, push_token="push")
    assert (data["webhook_token"], data["onepassword_credentials"], data["onepassword_token"]) == (
        "w" * 16,
        "{}",
        "5",
    )
