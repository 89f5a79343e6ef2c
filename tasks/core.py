"""Root tasks: ``inv init`` and ``inv configure``."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import task
from invoke.context import Context

from .errors import UserError, friendly
from .files import write_atomically
from .paths import Paths, paths_for
from .runner import is_dry, require, run
from .sopsfile import decrypt_argv, encrypt_to_argv

#: The bundled example's test-only key set (public on purpose, see its README).
EXAMPLE_OPERATOR = Path("tests/fixtures/example-operator")

PLACEHOLDER_SECRETS = """\
# Secrets the templates need, encrypted by SOPS. Edit with `inv sops.edit cluster.sops.yaml`.
# Cloudflare API token (Zone:DNS:Edit and Account:Cloudflare Tunnel:Read).
cloudflare_token: replace-me
# The contents of cloudflare-tunnel.json (`cloudflared tunnel create`).
cloudflare_tunnel:
  AccountTag: replace-me
  TunnelID: 00000000-0000-0000-0000-000000000000
  TunnelSecret: replace-me
# 1Password Connect: the 1password-credentials.json text and an access token.
onepassword_connect:
  credentials: '{"replace-me": true}'
  token: replace-me
"""


def create_operator_files(paths: Paths, dry: bool) -> list[str]:
    """Make the age key, deploy key pair and push token that do not exist yet."""
    from . import keys

    made: list[str] = []

    def create(path: Path, make: object) -> None:
        if path.exists():
            return
        if not dry:
            keys.write_private(path, make())  # type: ignore[operator]
        made.append(paths.rel(path))

    create(paths.age_key, lambda: keys.age_key_file()[0])
    if not paths.deploy_key.exists() and not paths.deploy_key_pub.exists():
        private, public = keys.deploy_key_pair()
        create(paths.deploy_key, lambda: private)
        create(paths.deploy_key_pub, lambda: public)
    create(paths.push_token, keys.push_token)
    return made


def public_key(paths: Paths, dry: bool) -> str:
    from .context import read_age_identity

    if dry and not paths.age_key.exists():
        return "<new age public key>"
    return read_age_identity(paths.age_key, paths.rel(paths.age_key))[1]


def seed_secrets(c: Context, paths: Paths) -> str | None:
    """Create cluster.sops.yaml with placeholders, or adopt the bundled example's copy by
    re-encrypting it to the operator's key. Returns what was done, if anything."""
    from .keys import age_recipients_of

    label = paths.rel(paths.secrets_config)
    recipient = public_key(paths, is_dry(c))
    if not paths.secrets_config.exists():
        require(c, "sops")
        result = run(c, encrypt_to_argv(label, recipient), stdin=PLACEHOLDER_SECRETS, cwd=paths.root)
        if not is_dry(c):
            write_atomically(paths.secrets_config, result.stdout)
        return f"{label} (placeholders: fill them in with `inv sops.edit {label}`)"
    example = paths.root / EXAMPLE_OPERATOR / "age.key"
    if not example.exists() or age_recipients_of(paths.secrets_config) == [recipient]:
        return None
    from .context import read_age_identity

    example_public = read_age_identity(example, paths.rel(example))[1]
    if age_recipients_of(paths.secrets_config) != [example_public]:
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
        write_atomically(paths.secrets_config, result.stdout)
    return f"{label} (the bundled example's secrets, re-encrypted to your age key)"


@task
@friendly
def init(c: Context) -> None:
    """Create the operator's local files: age key, deploy key pair, push token.

    Never overwrites an existing file; files are mode 0600 and git-ignored. Also creates
    cluster.sops.yaml (encrypted, with placeholders) when missing, and re-encrypts the
    bundled example's cluster.sops.yaml to your new key so the example renders. Running it
    twice changes nothing.
    """
    paths = paths_for(c)
    dry = is_dry(c)
    made = create_operator_files(paths, dry)
    seeded = seed_secrets(c, paths)
    verb = "would create" if dry else "created"
    for name in made:
        print(f"{verb} {name}")
    if seeded:
        print(f"{'would write' if dry else 'wrote'} {seeded}")
    if not made and not seeded:
        print("nothing to do: every operator file already exists")
        return
    if paths.deploy_key_pub.exists():
        print(f"next: add {paths.rel(paths.deploy_key_pub)} as a deploy key of your repository,")
    print("      edit cluster.yaml, nodes.yaml and (`inv sops.edit cluster.sops.yaml`) the secrets,")
    print("      then run `inv configure`. Back up age.key: without it the secrets cannot be decrypted.")


@task(
    help={
        "force": "Overwrite generated files that were edited by hand since configure wrote them.",
        "check": "Write nothing; exit 1 and show a diff when the tree differs from a fresh render.",
    }
)
@friendly
def configure(c: Context, force: bool = False, check: bool = False) -> None:
    """Render, encrypt and validate the cluster definition from cluster.yaml and nodes.yaml.

    Validates the config (every problem reported at once), renders the templates into a
    private staging directory, encrypts every *.sops.* file (unchanged secrets keep their
    ciphertext), builds every kustomization and validates the Talos config, and only then
    swaps the generated files into the tree; files the templates no longer produce are
    removed, files edited by hand are protected. A failure leaves the tree as it was.
    """
    from . import pipeline

    paths = paths_for(c)
    if not paths.cluster_config.exists():
        raise UserError("cluster.yaml not found — did you run `inv init`? (see README: Quick start)")
    require(c, "sops")
    if not pipeline.find_tool("kustomize"):
        require(c, "kubectl")
    options = pipeline.Options(
        force=force, check=check, dry=is_dry(c), say=lambda line: print(f"configure: {line}")
    )
    summary = pipeline.configure(paths, options)
    if check:
        print("configure --check: the tree is exactly what configure produces")
    elif not options.dry:
        print(f"configure: done — {pipeline.describe(summary)}")
    sys.stdout.flush()
