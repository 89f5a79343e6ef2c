"""Values that still need replacing: the bundled example's, and ``inv init``'s placeholders.

One definition for everything that asks: ``configure`` warns while any is in place, and
``bootstrap.talos`` / ``bootstrap.apps`` refuse to build a cluster from them unless told
``--yes``. An example value is

- a domain reserved for examples (``example.com``, ``.net``, ``.org``, a subdomain of one, or
  anything under ``.example``) as ``cloudflare_domain``;
- the example repository: owner ``example`` in ``repository_name``;
- one of the bundled example's fake secrets in ``cluster.sops.yaml`` (its Cloudflare token,
  tunnel, 1Password Connect credentials and token; :data:`EXAMPLE_SECRETS`);
- a placeholder ``inv init`` wrote into a new ``cluster.sops.yaml`` (``replace-me``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Second-level domains reserved for documentation (RFC 2606), and the reserved TLD.
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
EXAMPLE_TLD = "example"
#: The owner of the example repository (``example/home-ops``).
EXAMPLE_OWNER = "example"
#: The bundled example's fake secrets: dotted key in cluster.sops.yaml -> value.
EXAMPLE_SECRETS = {
    "cloudflare_token": "example-cloudflare-api-token-not-real",
    "cloudflare_tunnel.AccountTag": "0123456789abcdef0123456789abcdef",
    "cloudflare_tunnel.TunnelID": "00000000-0000-4000-8000-000000000001",
    "cloudflare_tunnel.TunnelSecret": "ZXhhbXBsZS10dW5uZWwtc2VjcmV0LW5vdC1yZWFs",
    "onepassword_connect.token": "example-onepassword-connect-token-not-real",
}
#: What marks the example's 1Password credentials (every field of them reads "example").
EXAMPLE_DEVICE = "example"
#: What ``inv init`` writes for each secret it cannot know.
PLACEHOLDER_MARK = "replace-me"


@dataclass(frozen=True)
class ExampleValue:
    file: str
    key: str
    what: str

    def line(self) -> str:
        return f"{self.file}: {self.key}: {self.what}"


def is_example_domain(domain: str) -> bool:
    name = domain.strip().lower().rstrip(".")
    return name.split(".")[-1] == EXAMPLE_TLD or any(
        name == base or name.endswith(f".{base}") for base in EXAMPLE_DOMAINS
    )


def in_config(cluster: Mapping[str, Any], label: str = "cluster.yaml") -> list[ExampleValue]:
    """Example values among the validated cluster settings."""
    found = []
    domain = str(cluster.get("cloudflare_domain") or "")
    if domain and is_example_domain(domain):
        found.append(ExampleValue(label, "cloudflare_domain", f"{domain} is a domain reserved for examples"))
    repository = str(cluster.get("repository_name") or "")
    if repository and repository_owner(repository) == EXAMPLE_OWNER:
        found.append(ExampleValue(label, "repository_name", f"{repository} is the example repository"))
    return found


def repository_owner(repository: str) -> str:
    """The first path segment of a repository (``owner`` of ``owner/repo`` or of a URL)."""
    from tasks.lib.gitremote import parse_repository

    try:
        path = parse_repository(repository).path
    except ValueError:
        path = repository
    return path.strip("/").split("/")[0].casefold()


def leaves(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from leaves(f"{prefix}.{key}" if prefix else str(key), inner)
    else:
        yield prefix, value


def example_credentials(value: Any) -> bool:
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("deviceUuid") == EXAMPLE_DEVICE


def in_secrets(secrets: Mapping[str, Any], label: str = "cluster.sops.yaml") -> list[ExampleValue]:
    """Example values and placeholders among the decrypted secrets (named, never shown)."""
    found = []
    for key, value in leaves("", dict(secrets)):
        if key == "sops" or key.startswith("sops."):
            continue
        if key in EXAMPLE_SECRETS and value == EXAMPLE_SECRETS[key]:
            found.append(ExampleValue(label, key, "still the bundled example's fake value"))
        elif key == "onepassword_connect.credentials" and example_credentials(value):
            found.append(ExampleValue(label, key, "still the bundled example's fake credentials"))
        elif isinstance(value, str) and PLACEHOLDER_MARK in value:
            found.append(ExampleValue(label, key, "still a placeholder from `inv init`"))
    return found


def advice(found: list[ExampleValue]) -> str:
    files = list(dict.fromkeys(value.file for value in found))
    how = [f"`inv sops.edit {f}`" if f.endswith(".sops.yaml") else f for f in files]
    return f"replace them ({', '.join(how)}), then run `inv configure`"
