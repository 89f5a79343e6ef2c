"""Values that still need replacing: the bundled example's, and ``inv init``'s placeholders.

One definition for everything that asks: ``configure`` warns while any is in place, and
``bootstrap.talos`` / ``bootstrap.apps`` refuse to build a cluster from them unless told
``--yes``. An example value is

- a domain reserved for examples (``example.com``, ``.net``, ``.org``, a subdomain of one, or
  anything under ``.example``) as ``cloudflare_domain``;
- the example repository: owner ``example`` in ``repository_name``;
- one of the bundled example's fake secrets in ``cluster.sops.yaml`` (its Cloudflare token,
  tunnel, 1Password Connect credentials and token; :data:`EXAMPLE_SECRETS` knows them by
  digest);
- a placeholder ``inv init`` wrote into a new ``cluster.sops.yaml`` (``replace-me``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tasks.lib.gitremote import parse_repository

#: Second-level domains reserved for documentation (RFC 2606), and the reserved TLD.
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
EXAMPLE_TLD = "example"
#: The owner of the example repository (``example/home-ops``).
EXAMPLE_OWNER = "example"
#: The bundled example's fake secrets: dotted key in cluster.sops.yaml -> SHA-256 of its
#: value (the digest, so no file here looks like it holds a token).
EXAMPLE_SECRETS = {
    "cloudflare_token": "07e8637027c9235aac691563068431ac891758a9bbc24d6ac8ab0d3d247dfdf4",
    "cloudflare_tunnel.AccountTag": "3eb1bd439947eb762998e566ccc2e099c791118b2f40579cc4f7da2b5061b7f9",
    "cloudflare_tunnel.TunnelID": "11e594f481958c10e3015d0bf0447a22f068a8a647f475df15ce2c7ab4b8f3f1",
    "cloudflare_tunnel.TunnelSecret": "b08b2fbf5cee032f108b7864dbc4914fe5cd672f8aa6c93cf41611133bd186eb",
    "onepassword_connect.token": "66112d5dfabc6ca753a8d67af2281f7e46daca1ff5fcc5233205d3fefeff17e0",
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
    try:
        path = parse_repository(repository).path
    except ValueError:
        path = repository
    return path.strip("/").split("/")[0].casefold()


def digest(value: Any) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()


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
        if key in EXAMPLE_SECRETS and digest(value) == EXAMPLE_SECRETS[key]:
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
