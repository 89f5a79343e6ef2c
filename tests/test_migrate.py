"""`inv init --from PATH`: a checkout of the Taskfile-era template moves over in one step.

The checkouts are written here, in the template's own format (quoted strings, the token in
cluster.yaml, ASNs and the VLAN tag as strings), from its own test configurations; every
key is generated per test and thrown away.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import struct
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invoke import Config, Context
from ruamel.yaml import YAML

from tasks import root
from tasks import sops as sops_tasks
from tasks.lib import swap
from tasks.lib.config import migrate
from tasks.lib.errors import UserError
from tasks.lib.secrets import keys
from tasks.lib.secrets.keys import age_recipients_of, read_age_identity
from tests.conftest import exit_code, git

# The template's "public" and "private" test configurations (its e2e matrix), as the
# template's users write them: every value a quoted string.
PUBLIC = {
    "node_cidr": "10.10.10.0/24",
    "node_default_gateway": "10.10.10.1",
    "node_vlan_tag": "100",
    "cluster_pod_cidr": "10.42.0.0/16",
    "cluster_svc_cidr": "10.43.0.0/16",
    "node_dns_servers": ["1.1.1.1"],
    "node_ntp_servers": ["162.159.200.123"],
    "cluster_api_addr": "10.10.10.254",
    "cluster_api_tls_sans": ["example.com"],
    "cluster_gateway_addr": "10.10.10.252",
    "cluster_dns_gateway_addr": "10.10.10.253",
    "repository_name": "onedr0p/cluster-template",
    "repository_branch": "main",
    "repository_visibility": "public",
    "cloudflare_domain": "example.com",
    "cloudflare_gateway_addr": "10.10.10.251",
    "cilium_loadbalancer_mode": "dsr",
    "cilium_bgp_router_addr": "10.10.1.1",
    "cilium_bgp_router_asn": "64513",
    "cilium_bgp_node_asn": "64514",
}
PRIVATE = {
    "node_cidr": "10.10.10.0/24",
    "cluster_api_addr": "10.10.10.254",
    "cluster_gateway_addr": "10.10.10.252",
    "cluster_dns_gateway_addr": "10.10.10.253",
    "repository_name": "onedr0p/cluster-template",
    "repository_visibility": "private",
    "cloudflare_domain": "example.com",
    "cloudflare_gateway_addr": "10.10.10.251",
}
#: What the template's sample leaves for "use the default": commented or empty.
SAMPLE_BLANKS = {"node_default_gateway": "", "cilium_loadbalancer_mode": ""}
SCHEMATIC = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
NODES = [
    {
        "name": "k8s-0",
        "address": "10.10.10.100",
        "controller": True,
        "disk": "/dev/sdfake",
        "mac_addr": "00:00:00:00:00:00",
        "schematic_id": SCHEMATIC,
    },
    {
        "name": "k8s-1",
        "address": "10.10.10.101",
        "controller": False,
        "disk": "/dev/sdfake",
        "mac_addr": "00:00:00:00:00:01",
        "schematic_id": SCHEMATIC,
        "mtu": 1500,
        "secureboot": True,
        "encrypt_disk": True,
        "kernel_modules": ["nvidia", "nvidia_uvm"],
    },
]
OPERATOR_FILES = ("age.key", "github-deploy.key", "github-deploy.key.pub", "github-push-token.txt")


@dataclass
class Checkout:
    """A template checkout on disk and the secrets it holds (fresh for each test)."""

    path: Path
    token: str
    tunnel: dict[str, str]
    age_identity: str
    age_public: str
    deploy_private: str
    push_token: str | None

    @property
    def secret_values(self) -> list[str]:
        """Every secret that must never appear in plaintext in the repository's tree."""
        values = [self.token, self.tunnel["TunnelSecret"], self.age_identity, self.deploy_key_body]
        return values + ([self.push_token] if self.push_token else [])

    @property
    def deploy_key_body(self) -> str:
        return "".join(self.deploy_private.strip().splitlines()[1:-1])


def yaml_text(data: object) -> str:
    import io

    stream = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = None
    yaml.dump(data, stream)
    return stream.getvalue()


def template_cluster_yaml(settings: dict[str, object], token: str) -> str:
    """cluster.yaml as the template wrote it: a comment per key, values double-quoted."""
    lines = ["---"]
    for key, value in {**settings, "cloudflare_token": token}.items():
        lines.append(f"# -- {key.replace('_', ' ')}")
        lines.append(f"{key}: {json.dumps(value)}")
    lines.append('# cilium_bgp_router_asn: ""  (commented out: the default)')
    return "\n".join(lines) + "\n"


def write_checkout(
    path: Path, settings: dict[str, object] = PUBLIC, *, push_token: bool = True, talsecret: bool = False
) -> Checkout:
    path.mkdir(parents=True)
    age_file, age_public = keys.age_key_file()
    (path / "age.key").write_text(age_file)
    private, public = keys.deploy_key_pair("deploy-key")
    (path / "github-deploy.key").write_text(private)
    (path / "github-deploy.key.pub").write_text(public)
    token_value = secrets.token_hex(16) if push_token else None
    if token_value:
        (path / "github-push-token.txt").write_text(token_value + "\n")
    tunnel = {
        "AccountTag": secrets.token_hex(16),
        "TunnelSecret": secrets.token_urlsafe(32),
        "TunnelID": str(uuid.uuid4()),
    }
    (path / "cloudflare-tunnel.json").write_text(json.dumps(tunnel))
    token = f"cf-{secrets.token_urlsafe(30)}"
    (path / "cluster.yaml").write_text(template_cluster_yaml(settings, token))
    (path / "nodes.yaml").write_text(yaml_text({"nodes": NODES}))
    (path / "kubernetes" / "apps" / "default").mkdir(parents=True)
    identity = next(line for line in age_file.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    checkout = Checkout(path, token, tunnel, identity, age_public, private, token_value)
    if talsecret:
        write_talsecret(checkout, age_public)
    return checkout


def sops(
    *args: str, stdin: str | None = None, key: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The real sops, run where no .sops.yaml is found (the flags say everything)."""
    env = {**os.environ, **({"SOPS_AGE_KEY_FILE": str(key)} if key else {})}
    env.pop("SOPS_CONFIG", None)
    return subprocess.run(
        ["sops", *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


def write_talsecret(checkout: Checkout, recipient: str) -> str:
    """talos/talsecret.sops.yaml encrypted as `task bootstrap:talos` left it."""
    secret = f"talos-bootstrap-token-{secrets.token_hex(8)}"
    encrypted = sops(
        "--encrypt",
        "--age",
        recipient,
        "--input-type",
        "yaml",
        "--output-type",
        "yaml",
        "/dev/stdin",
        stdin=f"secrets:\n  bootstraptoken: {secret}\n",
        cwd=checkout.path,
    )
    assert encrypted.returncode == 0, encrypted.stderr
    target = checkout.path / "talos" / "talsecret.sops.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(encrypted.stdout)
    return secret


@pytest.fixture
def repo(example_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh clone of this repository (the bundled example, no operator files yet)."""
    monkeypatch.delenv("HOME_OPS_OPERATOR_DIR")
    return example_repo


def context(repo: Path, dry: bool = False) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(repo)}, "run": {"dry": dry}}))


def load(path: Path) -> object:
    return YAML(typ="safe", pure=True).load(path.read_text())


def decrypt(path: Path, key: Path) -> object:
    result = sops("--decrypt", str(path), key=key)
    assert result.returncode == 0, result.stderr
    return YAML(typ="safe", pure=True).load(result.stdout)


def snapshot(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts and "__pycache__" not in p.parts
    }


def plaintext_hits(repo: Path, checkout: Checkout) -> list[str]:
    """Files of the tree (operator files aside, which hold their own key by design) or of
    the memory-backed temp directory that contain any of the checkout's secrets."""
    hits = []
    places = [p for p in repo.rglob("*") if p.is_file() and p.name not in OPERATOR_FILES]
    shm = Path("/dev/shm")
    if shm.is_dir():
        places += [p for p in shm.rglob("*") if p.is_file() and os.access(p, os.R_OK)]
    for path in places:
        try:
            text = path.read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        flat = text.replace("\n", "").replace(" ", "")
        if any(value in text or value in flat for value in checkout.secret_values):
            hits.append(str(path))
    return hits


# --------------------------------------------------------------------------- the whole flow


def test_import_then_configure_renders_with_the_same_keys(
    repo: Path, tmp_path: Path, gitleaks: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The template's public test config moves over and `inv configure` renders it: the
    cluster's sops-age and deploy key Secrets hold the very keys of the checkout, the token
    and tunnel reach the rendered secrets, and no secret is in plaintext anywhere."""
    checkout = write_checkout(tmp_path / "template", talsecret=True)
    c = context(repo)
    root.init(c, from_=str(checkout.path))
    out = capsys.readouterr().out
    assert f"imported age.key: your age key ({checkout.age_public})" in out
    assert "imported talos/talsecret.sops.yaml" in out
    assert "next: run `inv configure`" in out

    root.configure(c)
    assert "configure: done" in capsys.readouterr().out
    key = repo / "age.key"
    sops_age = decrypt(repo / "bootstrap" / "sops-age.sops.yaml", key)
    assert checkout.age_identity in json.dumps(sops_age)
    deploy = json.dumps(decrypt(repo / "bootstrap" / "github-deploy-key.sops.yaml", key))
    assert checkout.deploy_key_body[:40] in deploy.replace("\\n", "")
    rendered = "".join(json.dumps(decrypt(p, key)) for p in sorted(repo.glob("kubernetes/**/*.sops.yaml")))
    assert checkout.token in rendered and checkout.tunnel["TunnelSecret"] in rendered
    assert {str(r) for r in age_recipients_of(repo / "bootstrap" / "sops-age.sops.yaml")} == {
        checkout.age_public
    }
    # the cluster's existing Talos secrets came over as they were and still decrypt
    assert (repo / "talos" / "talsecret.sops.yaml").read_bytes() == (
        checkout.path / "talos" / "talsecret.sops.yaml"
    ).read_bytes()
    assert decrypt(repo / "talos" / "talsecret.sops.yaml", key)
    assert plaintext_hits(repo, checkout) == []
    sops_tasks.check(c)  # the repository's own secret scan agrees
    git(repo, "add", "-A")
    staged = git(repo, "diff", "--cached", "--name-only").split()
    assert not set(OPERATOR_FILES) & set(staged)


# --------------------------------------------------------------------------- what is written


@pytest.mark.parametrize(("settings", "name"), [(PUBLIC, "public"), (PRIVATE, "private")])
def test_the_template_test_configs_map_onto_ours(
    repo: Path, tmp_path: Path, settings: dict[str, object], name: str, capsys
) -> None:
    blanks = {key: value for key, value in SAMPLE_BLANKS.items() if key not in settings}
    checkout = write_checkout(tmp_path / name, {**settings, **blanks})
    root.init(context(repo), from_=str(checkout.path))
    out = capsys.readouterr().out
    assert "not mapped" not in out
    expected = dict(settings)
    for key in ("node_vlan_tag", "cilium_bgp_router_asn", "cilium_bgp_node_asn"):
        if key in expected:
            expected[key] = int(str(expected[key]))  # numbers, no longer strings
    cluster = load(repo / "cluster.yaml")
    assert cluster == expected
    assert "cloudflare_token" not in (repo / "cluster.yaml").read_text()
    assert load(repo / "nodes.yaml") == {"nodes": NODES}
    secrets_plain = decrypt(repo / "cluster.sops.yaml", repo / "age.key")
    assert secrets_plain == {"cloudflare_token": checkout.token, "cloudflare_tunnel": checkout.tunnel}
    for operator_file in ("age.key", "github-deploy.key", "github-deploy.key.pub", "github-push-token.txt"):
        assert (repo / operator_file).read_bytes() == (checkout.path / operator_file).read_bytes()
        assert (repo / operator_file).stat().st_mode & 0o777 == 0o600
    assert read_age_identity(repo / "age.key", "age.key")[1] == checkout.age_public
    assert age_recipients_of(repo / "cluster.sops.yaml") == [checkout.age_public]
    assert plaintext_hits(repo, checkout) == []


@pytest.mark.parametrize(
    ("era", "expected_lines"),
    [
        (
            {  # spring 2025: ingress-nginx
                "cluster_ingress_addr": "10.10.10.252",
                "cloudflare_ingress_addr": "10.10.10.251",
                "cluster_dns_gateway_addr": "10.10.10.253",
            },
            [
                "renamed: {src}/cluster.yaml:13: cluster_ingress_addr → cluster_gateway_addr",
                "renamed: {src}/cluster.yaml:15: cloudflare_ingress_addr → cloudflare_gateway_addr",
            ],
        ),
        (
            {  # before March 2025: the tunnel's own ingress key, cloudflare_-prefixed DNS gateway
                "cloudflare_ingress_addr": "10.10.10.252",
                "cloudflare_tunnel_ingress_addr": "10.10.10.251",
                "cloudflare_dns_gateway_addr": "10.10.10.253",
                "cloudflare_cluster_issuer": "production",
            },
            [
                "renamed: {src}/cluster.yaml:13: cloudflare_ingress_addr → cluster_gateway_addr",
                "renamed: {src}/cluster.yaml:15: cloudflare_tunnel_ingress_addr → cloudflare_gateway_addr",
                "renamed: {src}/cluster.yaml:17: cloudflare_dns_gateway_addr → cluster_dns_gateway_addr",
                "not mapped: {src}/cluster.yaml:19: cloudflare_cluster_issuer: this repository always issues "
                "Let's Encrypt production certificates",
            ],
        ),
    ],
)
def test_renamed_and_dropped_keys_of_older_templates(
    repo: Path, tmp_path: Path, era: dict[str, str], expected_lines: list[str], capsys
) -> None:
    base = {k: v for k, v in PRIVATE.items() if not k.endswith("gateway_addr")}
    checkout = write_checkout(tmp_path / "old", {**base, **era})
    root.init(context(repo), from_=str(checkout.path))
    out = capsys.readouterr().out.splitlines()
    for line in expected_lines:
        assert line.format(src=checkout.path) in out
    cluster = load(repo / "cluster.yaml")
    assert isinstance(cluster, dict)
    assert (cluster["cluster_gateway_addr"], cluster["cloudflare_gateway_addr"]) == (
        "10.10.10.252",
        "10.10.10.251",
    )
    assert cluster["cluster_dns_gateway_addr"] == "10.10.10.253"


def test_keys_this_repository_does_not_have_are_reported_one_line_each(
    repo: Path, tmp_path: Path, capsys
) -> None:
    checkout = write_checkout(tmp_path / "t", {**PRIVATE, "my_own_setting": "x"})
    nodes = [dict(NODES[0], labels={"zone": "a"}), NODES[1]]
    (checkout.path / "nodes.yaml").write_text(yaml_text({"nodes": nodes}))
    root.init(context(repo), from_=str(checkout.path))
    out = capsys.readouterr().out.splitlines()
    src = checkout.path
    assert f"not mapped: {src}/cluster.yaml:19: my_own_setting: no such setting here, left out" in out
    assert any(
        line.startswith(f"not mapped: {src}/nodes.yaml:") and "nodes[0].labels" in line for line in out
    )
    assert f"not imported: {src}/kubernetes/apps — `inv configure` renders the apps here" in "\n".join(out)
    assert "my_own_setting" not in (repo / "cluster.yaml").read_text()
    assert "labels" not in (repo / "nodes.yaml").read_text()


def test_a_checkout_without_push_token_gets_a_new_one_and_keeps_it(
    repo: Path, tmp_path: Path, capsys
) -> None:
    checkout = write_checkout(tmp_path / "t", PRIVATE, push_token=False)
    root.init(context(repo), from_=str(checkout.path))
    assert "created github-push-token.txt" in capsys.readouterr().out
    token = (repo / "github-push-token.txt").read_text()
    assert len(token.strip()) == 64
    root.init(context(repo), from_=str(checkout.path))  # a re-run keeps it, no --force needed
    assert "kept github-push-token.txt" in capsys.readouterr().out
    assert (repo / "github-push-token.txt").read_text() == token


def test_config_archived_by_template_tidy_is_found(repo: Path, tmp_path: Path, capsys) -> None:
    checkout = write_checkout(tmp_path / "t", PRIVATE)
    archive = checkout.path / ".private" / "1746000000"
    archive.mkdir(parents=True)
    for name in ("cluster.yaml", "nodes.yaml"):
        (checkout.path / name).rename(archive / name)
    root.init(context(repo), from_=str(checkout.path))
    out = capsys.readouterr().out
    assert f"imported cluster.yaml: settings from {checkout.path}/.private/1746000000/cluster.yaml" in out
    assert load(repo / "cluster.yaml") == PRIVATE


# --------------------------------------------------------------------------- refusing, forcing, re-running


def test_refuses_to_replace_the_operators_own_files_unless_forced(repo: Path, tmp_path: Path, capsys) -> None:
    root.init(context(repo))  # the operator already made this repository theirs
    capsys.readouterr()
    before = snapshot(repo)
    checkout = write_checkout(tmp_path / "t", PRIVATE)
    assert exit_code(lambda: root.init(context(repo), from_=str(checkout.path))) == 1
    err = capsys.readouterr().err.splitlines()
    for name in (*OPERATOR_FILES, "cluster.yaml", "nodes.yaml", "cluster.sops.yaml"):
        assert f"{name}: exists and differs from what the import would write" in err
    assert err[-1].startswith("nothing was imported; to replace these files, run again with --force")
    assert snapshot(repo) == before

    root.init(context(repo), from_=str(checkout.path), force=True)
    assert (repo / "age.key").read_bytes() == (checkout.path / "age.key").read_bytes()
    assert load(repo / "cluster.yaml") == PRIVATE


def test_rerun_changes_nothing(repo: Path, tmp_path: Path, capsys) -> None:
    checkout = write_checkout(tmp_path / "t", PUBLIC, talsecret=True)
    root.init(context(repo), from_=str(checkout.path))
    before = snapshot(repo)
    capsys.readouterr()
    root.init(context(repo), from_=str(checkout.path))
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line.startswith(("imported", "created"))]
    assert "unchanged cluster.sops.yaml: already what the import would write" in out
    assert snapshot(repo) == before


def test_dry_run_writes_nothing_and_runs_nothing(
    repo: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = write_checkout(tmp_path / "t", PUBLIC)
    before = snapshot(repo)
    monkeypatch.setattr("tasks.lib.config.migrate.run_many", lambda *a, **k: pytest.fail("ran a command"))
    root.init(context(repo, dry=True), from_=str(checkout.path))
    out = capsys.readouterr().out
    assert "would import age.key" in out and "would import cluster.sops.yaml" in out
    assert snapshot(repo) == before


def test_a_failure_while_writing_puts_every_file_back(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = write_checkout(tmp_path / "t", PUBLIC)
    before = snapshot(repo)
    real_replace = os.replace
    calls: list[str] = []

    def flaky_replace(src: str, dst: str) -> None:
        if "/swap/new/" in str(src):
            calls.append(str(dst))
            if len(calls) == 5:
                raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(swap.os, "replace", flaky_replace)
    with pytest.raises(UserError) as error:
        migrate.import_checkout(str(checkout.path), migrate.Paths(repo), force=False, dry=False)
    (line,) = error.value.lines
    assert line.startswith("could not write the new files, so nothing was changed: ")
    assert line.endswith("No space left on device (the disk is full)")
    assert len(calls) == 5
    assert snapshot(repo) == before  # the four already in place were put back, new ones removed
    assert not swap.pending(repo) and list(swap.scratch(repo).iterdir()) == []


# --------------------------------------------------------------------------- bad or missing inputs


def break_file(name: str, content: str | None):
    def apply(checkout: Checkout) -> None:
        path = checkout.path / name
        if content is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)

    return apply


def passphrase_key(checkout: Checkout) -> None:
    """A deploy key protected by a passphrase (its header names the cipher; the rest of
    the blob does not matter, nothing may try to decrypt it)."""
    name = b"aes256-ctr"
    blob = b"openssh-key-v1\0" + struct.pack(">I", len(name)) + name + os.urandom(64)
    body = base64.b64encode(blob).decode()
    text = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + body + "\n-----END OPENSSH PRIVATE KEY-----\n"
    (checkout.path / "github-deploy.key").write_text(text)
    (checkout.path / "github-deploy.key.pub").unlink()


def other_key_talsecret(checkout: Checkout) -> None:
    write_talsecret(checkout, keys.age_key_file()[1])


def bad_cidr(checkout: Checkout) -> None:
    path = checkout.path / "cluster.yaml"
    path.write_text(path.read_text().replace('"10.10.10.0/24"', '"10.10.10.5/24"'))


def no_token(checkout: Checkout) -> None:
    path = checkout.path / "cluster.yaml"
    path.write_text(
        "\n".join(line for line in path.read_text().splitlines() if "cloudflare_token:" not in line)
    )


@pytest.mark.parametrize(
    ("damage", "line"),
    [
        (
            break_file("cluster.yaml", None),
            "{src}/cluster.yaml not found — is {src} a checkout of the Taskfile template?",
        ),
        (
            break_file("nodes.yaml", None),
            "{src}/nodes.yaml not found — `task init` of the template creates it",
        ),
        (
            break_file("cloudflare-tunnel.json", None),
            "{src}/cloudflare-tunnel.json not found — create it with",
        ),
        (break_file("cloudflare-tunnel.json", "{nope"), "{src}/cloudflare-tunnel.json: not JSON:"),
        (
            break_file(
                "cloudflare-tunnel.json", '{"AccountTag":"fake","TunnelSecret":"fake","TunnelID":"fake"}'
            ),
            "{src}/cloudflare-tunnel.json: TunnelID 'fake' is not a tunnel UUID",
        ),
        (
            break_file(
                "cloudflare-tunnel.json", json.dumps({"AccountTag": "a", "TunnelID": str(uuid.uuid4())})
            ),
            "{src}/cloudflare-tunnel.json: is missing TunnelSecret",
        ),
        (break_file("age.key", None), "{src}/age.key not found — without the age key"),
        (break_file("age.key", "# public key: age1xyz\n"), "{src}/age.key: no AGE-SECRET-KEY line"),
        (
            break_file("github-deploy.key", "not a key\n"),
            "{src}/github-deploy.key: not an OpenSSH private key",
        ),
        (passphrase_key, "{src}/github-deploy.key: has a passphrase — Flux needs a deploy key without one"),
        (
            break_file(
                "github-deploy.key.pub",
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDifferentKeyXXXXXXXXXXXXXXXXXXXXXXXXXXXXX x\n",
            ),
            "{src}/github-deploy.key.pub: not the public half of {src}/github-deploy.key",
        ),
        (
            bad_cidr,
            "{src}/cluster.yaml:3:12: node_cidr: '10.10.10.5/24' has host bits set — use 10.10.10.0/24",
        ),
        (no_token, "{src}/cluster.yaml: cloudflare_token: missing — the Cloudflare API token is required"),
        (
            other_key_talsecret,
            "{src}/talos/talsecret.sops.yaml: encrypted to another age key than {src}/age.key",
        ),
        (
            break_file("talos/talsecret.sops.yaml", "cluster:\n  id: plain\n"),
            "{src}/talos/talsecret.sops.yaml: not encrypted — encrypt it with sops in the checkout first",
        ),
    ],
)
def test_bad_or_missing_input_is_one_line_and_nothing_is_written(
    repo: Path, tmp_path: Path, damage, line: str, capsys
) -> None:
    checkout = write_checkout(tmp_path / "t", PUBLIC)
    damage(checkout)
    before = snapshot(repo)
    assert exit_code(lambda: root.init(context(repo), from_=str(checkout.path))) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    expected = line.format(src=checkout.path)
    assert [candidate for candidate in lines if candidate.startswith(expected)], err
    assert len(lines) <= 2, err  # the problem, and "nothing was imported" after input problems
    assert snapshot(repo) == before


def test_every_input_problem_is_reported_at_once(repo: Path, tmp_path: Path, capsys) -> None:
    checkout = write_checkout(tmp_path / "t", PUBLIC)
    bad_cidr(checkout)
    (checkout.path / "cloudflare-tunnel.json").unlink()
    (checkout.path / "age.key").write_text("garbage\n")
    assert exit_code(lambda: root.init(context(repo), from_=str(checkout.path))) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and err[-1] == "nothing was imported"


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda p: None, "--from {src}: not a directory"),
        (
            lambda p: (p.mkdir(), (p / "cluster.toml").write_text("")),
            "{src}/cluster.toml: the template's newer TOML format",
        ),
        (
            lambda p: (p.mkdir(), (p / "config.yaml").write_text("")),
            "{src}/config.yaml: the template's format before 2025",
        ),
    ],
)
def test_not_a_taskfile_template_checkout(repo: Path, tmp_path: Path, prepare, message: str, capsys) -> None:
    source = tmp_path / "elsewhere"
    prepare(source)
    assert exit_code(lambda: root.init(context(repo), from_=str(source))) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(message.format(src=source))


def test_force_without_from_is_refused(repo: Path, capsys) -> None:
    assert exit_code(lambda: root.init(context(repo), force=True)) == 1
    assert "--force only applies to --from" in capsys.readouterr().err
    assert not (repo / "age.key").exists()


def test_inv_command_line(repo: Path, tmp_path: Path) -> None:
    """`inv init --from PATH` as a user types it, in a subprocess: exit codes, no traceback."""
    checkout = write_checkout(tmp_path / "t", PRIVATE)
    env = {k: v for k, v in os.environ.items() if k != "HOME_OPS_OPERATOR_DIR"}
    run = lambda *args: subprocess.run(  # noqa: E731
        ["inv", "init", *args], cwd=repo, capture_output=True, text=True, env=env, check=False
    )
    done = run("--from", str(checkout.path))
    assert done.returncode == 0, done.stderr
    assert "imported cluster.sops.yaml" in done.stdout
    (checkout.path / "cluster.yaml").write_text(
        (checkout.path / "cluster.yaml").read_text().replace("10.10.10.254", "10.10.10.250")
    )
    refused = run("--from", str(checkout.path))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "cluster.yaml: exists and differs" in refused.stderr
    assert run("--from", str(checkout.path), "--force").returncode == 0
    assert load(repo / "cluster.yaml")["cluster_api_addr"] == "10.10.10.250"  # type: ignore[index]


# --------------------------------------------------------------------------- properties (no tools)

ERAS = {
    "cluster_gateway_addr": ["cluster_gateway_addr", "cluster_ingress_addr"],
    "cloudflare_gateway_addr": ["cloudflare_gateway_addr", "cloudflare_ingress_addr"],
    "cluster_dns_gateway_addr": ["cluster_dns_gateway_addr", "cloudflare_dns_gateway_addr"],
}
OPTIONAL = sorted(set(PUBLIC) - set(PRIVATE))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    optional=st.lists(st.sampled_from(OPTIONAL), unique=True),
    names=st.fixed_dictionaries({key: st.sampled_from(old) for key, old in ERAS.items()}),
    order=st.randoms(use_true_random=False),
)
def test_any_mix_of_old_key_names_and_optional_keys_maps_onto_ours(
    tmp_path_factory: pytest.TempPathFactory, optional: list[str], names: dict[str, str], order
) -> None:
    """Whatever subset of the public config a user set, in whatever order, with the key
    names of any template era: the imported cluster.yaml holds exactly those settings under
    our names (numbers as numbers), and nothing needs a tool to decide it."""
    chosen = {**PRIVATE, **{key: PUBLIC[key] for key in optional}}
    if "cilium_bgp_router_addr" in chosen or any(key.startswith("cilium_bgp") for key in optional):
        chosen.update({key: PUBLIC[key] for key in PUBLIC if key.startswith("cilium_bgp")})
    items = [(names.get(key, key), value) for key, value in chosen.items()]
    order.shuffle(items)
    folder = tmp_path_factory.mktemp("checkout")
    (folder / "cluster.yaml").write_text(template_cluster_yaml(dict(items), "token-value"))
    (folder / "nodes.yaml").write_text(yaml_text({"nodes": NODES}))
    out = migrate.Import()
    cluster_text, nodes_text = migrate.read_config(migrate.locate(str(folder)), out)
    expected = {
        key: int(value) if key in migrate.INTEGER_SETTINGS else value for key, value in chosen.items()
    }
    assert YAML(typ="safe", pure=True).load(cluster_text) == expected
    assert YAML(typ="safe", pure=True).load(nodes_text) == {"nodes": NODES}
    assert out.secrets == {"cloudflare_token": "token-value"}
    renamed = {old for key, old in names.items() if old != key}
    assert {
        line.split(": ")[2].split(" → ")[0] for line in out.notes if line.startswith("renamed")
    } == renamed


@given(st.text(max_size=300))
def test_openssh_cipher_never_raises(text: str) -> None:
    cipher = keys.openssh_cipher(text)  # any text: an answer, never an exception
    assert cipher is None or isinstance(cipher, str)


def test_openssh_cipher_of_a_new_key_is_none() -> None:
    private, _ = keys.deploy_key_pair()
    assert keys.openssh_cipher(private) == "none"
    assert keys.openssh_cipher(private.replace("OPENSSH", "RSA")) is None
