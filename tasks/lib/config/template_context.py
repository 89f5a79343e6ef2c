"""Everything the templates see: the validated config, its derived values and the secrets.

Secrets never come from plaintext files in the repository:

- ``cluster.sops.yaml`` (committed, SOPS-encrypted whole) holds the values the operator
  brings: the Cloudflare API token, the Cloudflare tunnel credentials, optionally the
  1Password Connect credentials (without them no Connect server and no ClusterSecretStore
  are rendered) and the operator's own variables for the ``cluster-secrets`` Secret that
  Flux substitutes (``cluster_secrets``). It is decrypted in memory (``sops --decrypt`` to a
  pipe).
- The operator's local, git-ignored files made by ``inv init`` hold the rest: the age key,
  the deploy key and the push token.

The result is a plain dict handed to makejinja; it is never written anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from tasks.lib.config import examples
from tasks.lib.config.checks import load_config
from tasks.lib.config.constraints import is_set, plain
from tasks.lib.config.document import Document, key_position, read_yaml
from tasks.lib.config.examples import ExampleValue
from tasks.lib.config.schema import ClusterConfig
from tasks.lib.errors import UserError
from tasks.lib.paths import Paths
from tasks.lib.problems import ConfigProblem
from tasks.lib.secrets.keys import OperatorFiles, read_operator_files

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

#: Keys of cluster.sops.yaml: name -> check returning an error or None.
SecretCheck = Callable[[Any], str | None]


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def _tunnel(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be the mapping from cloudflare-tunnel.json (AccountTag, TunnelID, TunnelSecret)"
    missing = [k for k in ("AccountTag", "TunnelID", "TunnelSecret") if not is_set(value.get(k))]
    if missing:
        return f"is missing {', '.join(missing)} (copy them from cloudflare-tunnel.json)"
    if not UUID.match(str(value["TunnelID"])):
        return f"TunnelID {value['TunnelID']!r} is not a tunnel UUID"
    unknown = sorted(set(value) - {"AccountTag", "TunnelID", "TunnelSecret", "Endpoint"})
    return f"has unknown keys {', '.join(unknown)}" if unknown else None


def _onepassword(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a mapping with credentials (1password-credentials.json) and token"
    missing = [k for k in ("credentials", "token") if not is_set(value.get(k))]
    if missing:
        return f"is missing {', '.join(missing)}"
    credentials = value["credentials"]
    if isinstance(credentials, str):
        try:
            json.loads(credentials)
        except ValueError:
            return "credentials must be the JSON text of 1password-credentials.json"
    elif not isinstance(credentials, dict):
        return "credentials must be the JSON of 1password-credentials.json"
    unknown = sorted(set(value) - {"credentials", "token"})
    return f"has unknown keys {', '.join(unknown)}" if unknown else None


WEBHOOK_TOKEN = re.compile(r"[!-~]{16,512}")


def _webhook_token(value: Any) -> str | None:
    if isinstance(value, str) and WEBHOOK_TOKEN.fullmatch(value):
        return None
    return "must be 16 to 512 printable characters without spaces (e.g. the output of `openssl rand -hex 32`)"


#: A Flux substitution variable's name (``${NAME}``): what ``postBuild`` accepts.
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Variables of cluster-secrets that configure sets itself.
RESERVED_VARIABLES = frozenset({"SECRET_DOMAIN"})


def _variables(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a mapping of NAME: value (the variables Flux substitutes as ${NAME})"
    for name, inner in value.items():
        if not isinstance(name, str) or not VARIABLE_NAME.match(name):
            return f"{name!r} is not a variable name (letters, digits and _, not starting with a digit)"
        if name in RESERVED_VARIABLES:
            return f"{name} is set by configure (from cluster.yaml); choose another name"
        if not isinstance(inner, str):
            return f"{name} must be a string (quote numbers and booleans)"
    return None


SECRET_CHECKS: dict[str, SecretCheck] = {
    "cloudflare_token": _string,
    "cloudflare_tunnel": _tunnel,
    "flux_webhook_token": _webhook_token,
    "onepassword_connect": _onepassword,
    "cluster_secrets": _variables,
}
#: Keys of cluster.sops.yaml that may be left out (the feature is then not rendered).
OPTIONAL_SECRETS = frozenset({"onepassword_connect", "cluster_secrets"})
#: Webhook providers whose secret must be in cluster.sops.yaml (GitHub's may still be the
#: operator's github-push-token.txt, as before the choice existed).
WEBHOOK_SECRET_REQUIRED = frozenset({"gitlab", "gitea", "forgejo", "generic-hmac"})


def secret_needs(config: ClusterConfig | None) -> dict[str, str | None]:
    """Each choice-bound secret: the reason it is needed, or None when the configuration
    does not use it. Without a configuration, every Cloudflare secret is needed."""
    if config is None:
        return {"cloudflare_token": "", "cloudflare_tunnel": "", "flux_webhook_token": ""}
    settings = config.settings
    webhook = settings.repository_webhook or "none"
    return {
        "cloudflare_token": "" if settings.dns_provider == "cloudflare" else "dns_provider is none",
        "cloudflare_tunnel": (
            "" if settings.ingress_mode == "cloudflare-tunnel" else f"ingress_mode is {settings.ingress_mode}"
        ),
        "flux_webhook_token": "" if webhook != "none" else "repository_webhook is none",
    }


def validate_secrets(
    decrypted: Any, encrypted: Document, config: ClusterConfig | None = None
) -> list[ConfigProblem]:
    """Problems in the decrypted secrets, located by the key positions of the encrypted
    file (sops keeps keys in place, so lines match what ``sops edit`` shows). With
    ``config``, the secrets its choices need are required and the ones they leave unused
    refused."""
    label = encrypted.label
    if not isinstance(decrypted, dict):
        return [ConfigProblem(label, None, None, "", "expected a mapping of secrets")]
    problems: list[ConfigProblem] = []
    where = encrypted.data if isinstance(encrypted.data, dict) else {}
    needs = secret_needs(config)

    def problem(key: Any, message: str) -> None:
        line, column = key_position(where, key)
        problems.append(ConfigProblem(label, line, column, str(key), message))

    for key in decrypted:
        if key == "sops":
            continue
        if key not in SECRET_CHECKS:
            problem(key, "unknown key")
        elif needs.get(key):
            problem(key, f"is not used ({needs[key]}) — remove it with `inv sops.edit {label}`")
        elif (message := SECRET_CHECKS[key](decrypted[key])) is not None:
            problem(key, message)
    for key in SECRET_CHECKS:
        if key in decrypted or key in OPTIONAL_SECRETS or needs.get(key):
            continue
        fix = f"add it with `inv sops.edit {label}`"
        if key == "flux_webhook_token":
            webhook = config.settings.repository_webhook if config else "github"
            if webhook not in WEBHOOK_SECRET_REQUIRED:
                continue  # GitHub's webhook falls back to the operator's push token
            fix = f"the {webhook} webhook's secret: {fix}, or set repository_webhook: none"
        problems.append(ConfigProblem(label, None, None, key, f"required secret is missing — {fix}"))
    return problems


def tunnel_values(tunnel: dict[str, Any]) -> dict[str, str]:
    return {
        "cloudflare_tunnel_account_tag": str(tunnel["AccountTag"]),
        "cloudflare_tunnel_id": str(tunnel["TunnelID"]),
        "cloudflare_tunnel_secret": str(tunnel["TunnelSecret"]),
    }


def onepassword_values(connect: dict[str, Any]) -> dict[str, str]:
    credentials = connect["credentials"]
    if not isinstance(credentials, str):
        credentials = json.dumps(credentials, separators=(",", ":"))
    return {"onepassword_credentials": credentials.strip(), "onepassword_token": str(connect["token"])}


def load_secrets(
    paths: Paths, decrypt: Callable[[Path], str], config: ClusterConfig | None = None
) -> dict[str, Any]:
    """Decrypt, parse and validate ``cluster.sops.yaml``. The encrypted file is read first
    (a bounded, regular file), so sops never blocks on a pipe or reads a device."""
    label = paths.rel(paths.secrets_config)
    encrypted = read_yaml(paths.secrets_config, label)
    decrypted_text = decrypt(paths.secrets_config)
    try:
        decrypted = YAML(typ="safe", pure=True).load(decrypted_text)
    except YAMLError:
        raise UserError(f"{label}: decrypts to invalid YAML — fix it with `inv sops.edit {label}`") from None
    problems = validate_secrets(decrypted, encrypted, config)
    if problems:
        raise UserError.from_problems(problems)
    return {k: plain(v) for k, v in decrypted.items() if k != "sops"}


def secret_template_data(secrets: dict[str, Any], push_token: str = "") -> dict[str, str]:
    """The secrets as templates see them; the webhook's is ``flux_webhook_token``, else the
    operator's push token."""
    connect = secrets.get("onepassword_connect")
    tunnel = secrets.get("cloudflare_tunnel")
    token = secrets.get("cloudflare_token")
    return {
        **({"cloudflare_token": str(token)} if token is not None else {}),
        **(tunnel_values(tunnel) if tunnel is not None else {}),
        **(onepassword_values(connect) if connect is not None else {}),
        "webhook_token": str(secrets.get("flux_webhook_token") or push_token),
    }


@dataclass(frozen=True)
class RenderContext:
    """Everything a render needs; ``data`` is what templates see as globals."""

    config: ClusterConfig
    data: dict[str, Any]
    secret_values: tuple[str, ...]  # masked in anything we print
    examples: tuple[ExampleValue, ...] = ()  # the example's values and placeholders still in place


def build_context(
    paths: Paths,
    decrypt: Callable[[Path], str],
    config: ClusterConfig | None = None,
    operator: OperatorFiles | None = None,
) -> RenderContext:
    """Load config, secrets and operator files; ``decrypt`` returns a sops file's plaintext.

    All problems in the two config files are reported together before any decryption.
    ``config`` and ``operator`` may be passed in when the caller already loaded them."""
    config = config or load_config(paths.cluster_config, paths.nodes_config, paths.root)
    operator = operator or read_operator_files(paths)
    label = paths.rel(paths.secrets_config)
    if not paths.secrets_config.exists():
        raise UserError(f"{label} not found — run `inv init` to create it, then `inv sops.edit {label}`")
    secrets = load_secrets(paths, decrypt, config)
    secret_data = secret_template_data(secrets, operator.push_token)
    if config.settings.cloudflare_token and "cloudflare_token" in secrets:
        # cluster.sops.yaml wins; the plaintext key is accepted only for compatibility.
        settings = replace(config.settings, cloudflare_token=secret_data["cloudflare_token"])
        config = replace(config, settings=settings)
    variables = {str(k): str(v) for k, v in (secrets.get("cluster_secrets") or {}).items()}
    data = {
        **config.template_data(),
        **secret_data,
        **operator.template_data(),
        "onepassword_enabled": "onepassword_token" in secret_data,
        "cluster_secrets": variables,
    }
    hidden = (
        *secret_data.values(),
        *variables.values(),
        operator.age_key,
        operator.deploy_key,
        operator.push_token,
    )
    found = [
        *examples.in_config(config.cluster, paths.rel(paths.cluster_config)),
        *examples.in_secrets(secrets, label),
    ]
    return RenderContext(config, data, tuple(v for v in hidden if v), tuple(found))
