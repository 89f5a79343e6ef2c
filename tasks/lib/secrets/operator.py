"""The operator's own files: age key, deploy key pair, push token and ``cluster.sops.yaml``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from invoke.context import Context

from tasks.lib import swap
from tasks.lib.paths import Paths
from tasks.lib.secrets import keys
from tasks.lib.secrets.sopsfile import decrypt_argv, encrypt_to_argv
from tasks.lib.tools.runner import is_dry, require, run

#: The bundled example's test-only key set (public on purpose, see its README).
EXAMPLE_OPERATOR = Path("tests/fixtures/example-operator")

PLACEHOLDER_SECRETS = """\
# Secrets the templates need, encrypted by SOPS. Edit with `inv sops.edit cluster.sops.yaml`.
# Cloudflare API token (Zone:DNS:Edit and Account:Cloudflare Tunnel:Read); remove it with
# `dns_provider: none` in cluster.yaml.
cloudflare_token: replace-me
# The contents of cloudflare-tunnel.json (`cloudflared tunnel create`); remove it unless
# `ingress_mode` is `cloudflare-tunnel` (the default with Cloudflare).
cloudflare_tunnel:
  AccountTag: replace-me
  TunnelID: 00000000-0000-0000-0000-000000000000
  TunnelSecret: replace-me
# The secret your git host's push webhook signs with (`openssl rand -hex 32`): required for a
# GitLab, Gitea, Forgejo or generic-hmac webhook (`repository_webhook`); GitHub's uses
# github-push-token.txt when this is absent.
# flux_webhook_token: <a random secret>
# Optional: 1Password Connect for External Secrets (a Connect server and a ClusterSecretStore
# named onepassword are rendered only when this key is present). Uncomment and fill in the
# 1password-credentials.json text and a Connect access token to use it.
# onepassword_connect:
#   credentials: '<the text of 1password-credentials.json>'
#   token: <a Connect access token>
# Optional: your own variables for the cluster-secrets Secret, which Flux substitutes in
# every app (`${NAME}` in a manifest). Values are strings.
# cluster_secrets:
#   SMTP_PASSWORD: <a value>
"""


def create_operator_files(paths: Paths, dry: bool) -> list[str]:
    """Make the age key, deploy key pair and push token that do not exist yet: all of them
    or none, mode 0600 from the first byte, never replacing a file that exists."""
    made: dict[Path, Callable[[], str]] = {}
    if not paths.age_key.exists():
        made[paths.age_key] = lambda: keys.age_key_file()[0]
    if not paths.deploy_key.exists() and not paths.deploy_key_pub.exists():
        private, public = keys.deploy_key_pair()
        made[paths.deploy_key] = lambda: private
        made[paths.deploy_key_pub] = lambda: public
    if not paths.push_token.exists():
        made[paths.push_token] = keys.push_token
    if made and not dry:
        changes = [swap.Change(path, make().encode(), 0o600, exclusive=True) for path, make in made.items()]
        swap.write_files(paths.root, changes, "init", key_dirs=paths.key_dirs)
    return [paths.rel(path) for path in made]


def public_key(paths: Paths, dry: bool) -> str:
    if dry and not paths.age_key.exists():
        return "<new age public key>"
    return keys.read_age_identity(paths.age_key, paths.rel(paths.age_key))[1]


def seed_secrets(c: Context, paths: Paths) -> str | None:
    """Create cluster.sops.yaml with placeholders, or adopt the bundled example's copy by
    re-encrypting it to the operator's key. Returns what was done, if anything."""
    label = paths.rel(paths.secrets_config)
    recipient = public_key(paths, is_dry(c))
    if not paths.secrets_config.exists():
        require(c, "sops")
        result = run(c, encrypt_to_argv(label, recipient), stdin=PLACEHOLDER_SECRETS, cwd=paths.root)
        if not is_dry(c):
            write_secrets_config(paths, result.stdout)
        return f"{label} (placeholders: fill them in with `inv sops.edit {label}`)"
    example = paths.root / EXAMPLE_OPERATOR / "age.key"
    if not example.exists() or keys.age_recipients_of(paths.secrets_config) == [recipient]:
        return None

    example_public = keys.read_age_identity(example, paths.rel(example))[1]
    if keys.age_recipients_of(paths.secrets_config) != [example_public]:
        return None
    require(c, "sops")
    plaintext = run(c, decrypt_argv(label), cwd=paths.root, env={"SOPS_AGE_KEY_FILE": str(example)})
    result = run(
        c,
        encrypt_to_argv(label, recipient),
        stdin=plaintext.stdout,
        cwd=paths.root,
        secrets=[plaintext.stdout],
    )
    if not is_dry(c):
        write_secrets_config(paths, result.stdout)
    return f"{label} (the bundled example's secrets, re-encrypted to your age key)"


def write_secrets_config(paths: Paths, ciphertext: str) -> None:
    change = swap.Change(paths.secrets_config, ciphertext.encode())
    swap.write_files(paths.root, [change], "init", key_dirs=paths.key_dirs)
