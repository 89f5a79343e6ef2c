"""The templates render the whole stack: real makejinja, kustomize and yamlfmt on the output.

Configurations rendered once per module: the bundled example (one node), a multi-node one
(spegel, VLAN, disk serial, secure boot, disk encryption, a private repository), a BGP one,
the Taskfile template's public one, the example without 1Password, and the test
configurations of the template's choices: no Cloudflare, a self-hosted git server over ssh
with a Gitea webhook, and GitLab with its webhook and direct ingress.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tasks.lib.config.configure import sops_decrypt
from tasks.lib.config.render import render
from tasks.lib.config.template_context import build_context
from tasks.lib.paths import repo_paths
from tests.conftest import EXAMPLE_OPERATOR, ROOT, copy_repo, example_source

BIN = Path(sys.executable).parent
CONFIGS = ROOT / "tests" / "fixtures" / "configs"
YAMLFMT_CONFIG = ROOT / ".yamlfmt.yaml"
FLUX_SOURCE = {"kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"}
BOOTSTRAP_CHAIN = ["cilium", "coredns", "cert-manager", "flux-operator", "flux-instance"]
NAMESPACES = {
    "kube-system": {"cilium", "coredns", "metrics-server", "reloader"},
    "cert-manager": {"cert-manager"},
    "network": {"envoy-gateway", "cloudflared", "k8s-gateway", "cloudflare-dns"},
    "external-secrets": {"external-secrets", "onepassword"},
    "flux-system": {"flux-operator", "flux-instance"},
    "default": {"echo"},
}


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def is_secret_file(path: Path) -> bool:
    """A file sops encrypts (``*.sops.yaml``); not sops' own ``.sops.yaml`` configuration."""
    return path.name.endswith(".sops.yaml") and path.name != ".sops.yaml"


def fragments(secret: str) -> list[str]:
    """What of a secret must never show up elsewhere: the value, or for a multi-line value
    (a PEM/OpenSSH key, indented in a YAML block) each substantial line but the armour."""
    lines = [line.strip() for line in secret.strip().splitlines()]
    if len(lines) == 1:
        return lines
    return [line for line in lines if len(line) >= 16 and not line.startswith("-----")]


def yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in YAML(typ="safe", pure=True).load_all(path.read_text()) if doc is not None]


def scalars(value: Any) -> Iterator[str]:
    """Every string in a parsed YAML tree, keys included."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from scalars(key)
            yield from scalars(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from scalars(inner)
    elif isinstance(value, str):
        yield value


def yaml_doc(path: Path) -> Any:
    (doc,) = yaml_docs(path)
    return doc


@dataclass(frozen=True)
class Rendered:
    out: Path
    files: list[Path]
    data: dict[str, Any]
    secrets: tuple[str, ...]

    def doc(self, relative: str) -> Any:
        return yaml_doc(self.out / relative)

    def docs(self, relative: str) -> list[Any]:
        return yaml_docs(self.out / relative)

    def kinds(self, relative: str) -> list[str]:
        return [d["kind"] for d in self.docs(relative)]


def render_config(
    base: Path,
    cluster: dict[str, Any] | None = None,
    nodes: list[dict[str, Any]] | None = None,
    *,
    config_dir: Path | None = None,
    drop_secrets: tuple[str, ...] = (),
    mutate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Rendered:
    """Copy the repository to ``base``, apply overrides to cluster.yaml/nodes.yaml (or take
    both from ``config_dir``), drop keys of the decrypted cluster.sops.yaml, render.
    ``mutate`` rewrites the template data after validation (to feed values the config
    validation would refuse)."""
    repo = copy_repo(base / "repo")
    if config_dir is not None:
        for name in ("cluster.yaml", "nodes.yaml", "cluster.sops.yaml"):
            if (config_dir / name).is_file():  # its own secrets, encrypted to the test-only key
                shutil.copy(config_dir / name, repo / name)
    yaml = YAML()
    if cluster:
        document = yaml.load(repo / "cluster.yaml")
        document.update(cluster)
        with (repo / "cluster.yaml").open("w") as stream:
            yaml.dump(document, stream)
    if nodes is not None:
        with (repo / "nodes.yaml").open("w") as stream:
            yaml.dump({"nodes": nodes}, stream)
    out = base / "out"
    out.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("SOPS_AGE_KEY_FILE", "SOPS_CONFIG", "KUBECONFIG", "TALOSCONFIG"):
            patch.delenv(name, raising=False)
        patch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
        paths = repo_paths(repo)
        decrypt = sops_decrypt(paths)

        def decrypt_without(path: Path) -> str:
            secrets = YAML(typ="safe", pure=True).load(decrypt(path))
            stream = io.StringIO()
            YAML(typ="safe", pure=True).dump(
                {k: v for k, v in secrets.items() if k not in drop_secrets}, stream
            )
            return stream.getvalue()

        context = build_context(paths, decrypt_without if drop_secrets else decrypt)
        if mutate is not None:
            context = dataclasses.replace(context, data=mutate(context.data))
        files = render(paths, context, out)
    return Rendered(out, files, context.data, context.secret_values)


NODE = {
    "mac_addr": "00:00:5e:00:53:10",
    "schematic_id": "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba",
}
MULTI_NODES = [
    {**NODE, "name": "k8s-0", "address": "192.168.1.10", "controller": True, "disk": "/dev/nvme0n1"},
    {
        **NODE,
        "name": "k8s-1",
        "address": "192.168.1.11",
        "controller": True,
        "disk": "S4EWNX0R123456",
        "mac_addr": "00:00:5e:00:53:11",
        "secureboot": True,
        "encrypt_disk": True,
        "mtu": 9000,
    },
    {
        **NODE,
        "name": "k8s-2",
        "address": "192.168.1.12",
        "controller": True,
        "disk": "/dev/sda",
        "mac_addr": "00:00:5e:00:53:12",
        "kernel_modules": ["nvidia", "nvidia_uvm"],
    },
    {
        **NODE,
        "name": "k8s-3",
        "address": "192.168.1.13",
        "controller": False,
        "disk": "/dev/sda",
        "mac_addr": "00:00:5e:00:53:13",
    },
]
MULTI_CLUSTER = {
    "node_vlan_tag": 20,
    "cluster_api_tls_sans": ["k8s.example.com"],
    "repository_visibility": "private",
    "repository_branch": "dev",
    "node_dns_servers": ["192.168.1.1"],
}
BGP_CLUSTER = {
    "cilium_bgp_router_addr": "192.168.1.1",
    "cilium_bgp_router_asn": 64513,
    "cilium_bgp_node_asn": 64514,
    "cilium_loadbalancer_mode": "snat",
    # With BGP the load balancer addresses may lie outside the node network.
    "cluster_dns_gateway_addr": "10.99.0.53",
    "cluster_gateway_addr": "10.99.0.80",
    "cloudflare_gateway_addr": "10.99.0.81",
}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return render_config(tmp_path_factory.mktemp("example"))


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return render_config(tmp_path_factory.mktemp("multi"), MULTI_CLUSTER, MULTI_NODES)


@pytest.fixture(scope="module")
def bgp(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return render_config(tmp_path_factory.mktemp("bgp"), BGP_CLUSTER)


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The Taskfile template's own public test configuration (BGP, gateways in node_cidr)."""
    return render_config(tmp_path_factory.mktemp("public"), config_dir=CONFIGS / "template-public")


@pytest.fixture(scope="module")
def no_onepassword(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The example without 1Password Connect in cluster.sops.yaml."""
    return render_config(tmp_path_factory.mktemp("no-1password"), drop_secrets=("onepassword_connect",))


@pytest.fixture(scope="module")
def no_cloudflare(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """A LAN-only cluster: no Cloudflare, no external gateway, the cluster's own CA."""
    return render_config(tmp_path_factory.mktemp("no-cloudflare"), config_dir=CONFIGS / "no-cloudflare")


@pytest.fixture(scope="module")
def selfhosted(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """A self-hosted git server over ssh on port 2222, its host keys, a Gitea webhook."""
    return render_config(tmp_path_factory.mktemp("selfhosted"), config_dir=CONFIGS / "selfhosted-ssh")


@pytest.fixture(scope="module")
def gitlab(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """gitlab.com over https, GitLab's webhook, the external gateway without a tunnel."""
    return render_config(tmp_path_factory.mktemp("gitlab"), config_dir=CONFIGS / "gitlab-webhook")


RENDERS = ["example", "multi", "bgp", "public", "no_onepassword", "no_cloudflare", "selfhosted", "gitlab"]


@pytest.fixture(params=RENDERS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return request.getfixturevalue(request.param)


def expected_apps(rendered: Rendered) -> dict[str, set[str]]:
    """Namespace -> the apps (Flux Kustomizations) the configuration should render."""
    expected = {ns: set(apps) for ns, apps in NAMESPACES.items()}
    if rendered.data["spegel_enabled"]:
        expected["kube-system"].add("spegel")
    if not rendered.data["onepassword_enabled"]:
        expected["external-secrets"].discard("onepassword")
    if not rendered.data["cloudflare_tunnel_enabled"]:
        expected["network"].discard("cloudflared")
    if not rendered.data["cloudflare_dns_enabled"]:
        expected["network"].discard("cloudflare-dns")
    return expected


# --------------------------------------------------------------------------- every file


def test_every_file_is_yaml_with_a_document_start(rendered: Rendered) -> None:
    assert rendered.files, "nothing rendered"
    for relative in rendered.files:
        assert relative.suffix == ".yaml", relative
        text = (rendered.out / relative).read_text()
        assert text.startswith("---\n"), relative
        assert yaml_docs(rendered.out / relative), f"{relative} is empty"
        assert "#{" not in text and "#%" not in text, f"{relative} holds unrendered Jinja"


def test_no_template_leftovers(example: Rendered) -> None:
    names = {str(p) for p in example.files}
    assert not [n for n in names if "partial" in n or n.endswith(".j2")]
    assert "talos/x.yaml" not in names
    assert not (ROOT / "templates" / "config" / "talos" / "x.yaml.j2").exists()


def test_render_is_deterministic(example_repo: Path, example: Rendered, tmp_path: Path) -> None:
    paths = repo_paths(example_repo)
    context = build_context(
        paths,
        sops_decrypt(paths),
    )
    files = render(paths, context, tmp_path / "again")
    assert files == example.files
    for relative in files:
        assert (tmp_path / "again" / relative).read_bytes() == (example.out / relative).read_bytes(), relative


def test_flux_and_helm_templates_pass_through_jinja(example: Rendered) -> None:
    certificate = example.doc("kubernetes/apps/network/envoy-gateway/app/certificate.yaml")
    assert certificate["spec"]["dnsNames"] == ["${SECRET_DOMAIN}", "*.${SECRET_DOMAIN}"]
    echo = example.doc("kubernetes/apps/default/echo/app/helmrelease.yaml")
    assert echo["spec"]["values"]["route"]["app"]["hostnames"] == ["{{ .Release.Name }}.${SECRET_DOMAIN}"]
    talconfig = example.doc("talos/talconfig.yaml")
    assert talconfig["talosVersion"] == "${talosVersion}"
    assert talconfig["kubernetesVersion"] == "${kubernetesVersion}"


# --------------------------------------------------------------------------- formatting


def yamlfmt_lint(directory: Path, config: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("yamlfmt"), "-conf", str(config), "-lint", *targets],
        cwd=directory,
        capture_output=True,
        text=True,
    )


def test_rendered_tree_is_yamlfmt_clean(rendered: Rendered) -> None:
    result = yamlfmt_lint(rendered.out, YAMLFMT_CONFIG, ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_plaintext_secrets_are_yamlfmt_clean_too(rendered: Rendered, tmp_path: Path) -> None:
    """The repository config skips *.sops.yaml (sops owns their encrypted layout); before
    encryption they are formatted like everything else."""
    text = YAMLFMT_CONFIG.read_text()
    config = tmp_path / "no-exclude.yaml"
    config.write_text(text[: text.index("exclude:")])
    secrets = [str(p) for p in rendered.files if is_secret_file(p)]
    assert secrets
    result = yamlfmt_lint(rendered.out, config, *secrets)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamlfmt_lint_catches_misformatted_files(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("---\nkey:\n- unindented\n")
    (tmp_path / "nostart.yaml").write_text("key: value\n")
    for name in ("bad.yaml", "nostart.yaml"):
        assert yamlfmt_lint(tmp_path, YAMLFMT_CONFIG, name).returncode != 0, name


def test_yamlfmt_config_keeps_document_start_and_comments() -> None:
    formatter = yaml_doc(YAMLFMT_CONFIG)["formatter"]
    assert formatter["type"] == "basic"
    assert formatter["include_document_start"] is True
    assert formatter["retain_line_breaks_single"] is True


# --------------------------------------------------------------------------- kustomize


def kustomization_dirs(rendered: Rendered) -> list[Path]:
    return sorted({(rendered.out / p).parent for p in rendered.files if p.name == "kustomization.yaml"})


def kustomize_build(directory: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    return directory, result


@pytest.fixture(scope="module")
def builds(request: pytest.FixtureRequest) -> dict[Path, subprocess.CompletedProcess[str]]:
    renders = [request.getfixturevalue(name) for name in RENDERS]
    directories = [d for r in renders for d in kustomization_dirs(r)]
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        return dict(pool.map(kustomize_build, directories))


def built(builds: dict[Path, subprocess.CompletedProcess[str]], directory: Path) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe", pure=True).load_all(builds[directory].stdout) if d]


def test_every_kustomization_builds(rendered: Rendered, builds: dict[Path, Any]) -> None:
    directories = kustomization_dirs(rendered)
    apps = sum(len(a) for a in expected_apps(rendered).values())
    assert len(directories) == len(NAMESPACES) + apps + 1  # + components/sops
    failures = {
        str(d.relative_to(rendered.out)): builds[d].stderr for d in directories if builds[d].returncode
    }
    assert not failures


def kustomization_references(directory: Path) -> Iterator[Path]:
    """Files and directories a kustomization.yaml names."""
    document = yaml_doc(directory / "kustomization.yaml")
    for key in ("resources", "components", "configurations"):
        for entry in document.get(key) or []:
            yield (directory / entry).resolve()
    for generator in document.get("configMapGenerator") or []:
        for entry in generator.get("files") or []:
            yield (directory / entry.split("=", 1)[-1]).resolve()


def test_kustomizations_list_every_file(rendered: Rendered) -> None:
    """Nothing under kubernetes/ is left out: each file is named by a kustomization.yaml or
    is a Flux Kustomization's path."""
    referenced: set[Path] = set()
    for directory in kustomization_dirs(rendered):
        for target in kustomization_references(directory):
            assert target.exists(), f"{directory}: {target} does not exist"
            if target.is_dir():
                referenced.add(target / "kustomization.yaml")
            referenced.add(target)
    for relative in rendered.files:
        if relative.name == "ks.yaml" and relative.parts[:2] == ("kubernetes", "apps"):
            path = rendered.doc(str(relative))["spec"]["path"]
            referenced.add((rendered.out / path / "kustomization.yaml").resolve())
    entrypoint = Path("kubernetes/flux/cluster/ks.yaml")
    apps = (rendered.out / rendered.doc(str(entrypoint))["spec"]["path"] / "kustomization.yaml").resolve()
    # kubernetes/apps has no kustomization.yaml: Flux builds the namespace directories.
    assert not apps.exists()
    namespace_kustomizations = {
        (rendered.out / "kubernetes/apps" / ns / "kustomization.yaml").resolve() for ns in NAMESPACES
    }
    referenced |= namespace_kustomizations
    unreferenced = [
        str(p)
        for p in rendered.files
        if p.parts[0] == "kubernetes" and p != entrypoint and (rendered.out / p).resolve() not in referenced
    ]
    assert not unreferenced


def test_helmreleases_and_sources_match(rendered: Rendered, builds: dict[Path, Any]) -> None:
    releases = 0
    for directory in kustomization_dirs(rendered):
        documents = built(builds, directory)
        sources = {d["metadata"]["name"]: d for d in documents if d["kind"] == "OCIRepository"}
        config_maps = {d["metadata"]["name"] for d in documents if d["kind"] == "ConfigMap"}
        for release in (d for d in documents if d["kind"] == "HelmRelease"):
            releases += 1
            ref = release["spec"]["chartRef"]
            assert ref["kind"] == "OCIRepository"
            source = sources[ref["name"]]["spec"]
            assert source["url"].startswith("oci://")
            assert re.fullmatch(r"v?\d+\.\d+\.\d+", str(source["ref"]["tag"]))
            for values in release["spec"].get("valuesFrom") or []:
                # the generated ConfigMap's hashed name, rewritten by kustomizeconfig.yaml
                assert values["name"] in config_maps, values
                assert re.fullmatch(r".+-values-[a-z0-9]{10}", values["name"])
    assert releases == sum(len(apps) for apps in expected_apps(rendered).values())


def test_secret_files_are_stringdata_secrets(rendered: Rendered) -> None:
    secrets = [p for p in rendered.files if is_secret_file(p)]
    optional = (
        "onepassword_enabled",
        "cloudflare_dns_enabled",
        "cloudflare_tunnel_enabled",
        "webhook_enabled",
    )
    assert (
        len(secrets) >= 4 + sum(rendered.data[key] for key in optional) + rendered.data["cloudflare_enabled"]
    )
    for relative in secrets:
        for document in rendered.docs(str(relative)):
            assert document["kind"] == "Secret", relative
            assert "data" not in document, relative
            assert document["stringData"] and all(isinstance(v, str) for v in document["stringData"].values())


def test_sops_rules_cover_every_secret_file(rendered: Rendered) -> None:
    sops = rendered.doc(".sops.yaml")
    rules = sops["creation_rules"]
    assert [r["path_regex"] for r in rules] == [
        r"talos/.*\.sops\.ya?ml",
        r"(bootstrap|kubernetes)/.*\.sops\.ya?ml",
        r"(^|/)cluster\.sops\.ya?ml$",
    ]
    assert rules[1]["encrypted_regex"] == "^(data|stringData)$"
    assert all(r["age"] == rendered.data["age_public_key"] and r["mac_only_encrypted"] for r in rules)
    assert sops["stores"]["yaml"]["indent"] == 2
    for relative in (p for p in rendered.files if is_secret_file(p)):
        assert re.search(rules[1]["path_regex"], str(relative)), relative


def test_sops_config_matches_the_bundled_example(example: Rendered) -> None:
    assert (example.out / ".sops.yaml").read_text() == (example_source() / ".sops.yaml").read_text()


# --------------------------------------------------------------------------- secrets


def test_no_secret_outside_sops_files(rendered: Rendered) -> None:
    tunnel_id = rendered.data.get("cloudflare_tunnel_id")  # public: it is in DNS as <id>.cfargotunnel.com
    secrets = {s.strip() for s in rendered.secrets if s.strip() and s != tunnel_id}
    keys = ["age_key"]
    keys += ["webhook_token"] if rendered.data["webhook_enabled"] else []
    keys += ["onepassword_token"] if rendered.data["onepassword_enabled"] else []
    keys += ["cloudflare_token"] if rendered.data["cloudflare_enabled"] else []
    keys += ["cloudflare_tunnel_secret"] if rendered.data["cloudflare_tunnel_enabled"] else []
    for key in keys:
        assert rendered.data[key] in secrets, key
    found: dict[str, set[str]] = {secret: set() for secret in secrets}
    leaks = []
    for relative in rendered.files:
        # The text and every parsed scalar: the quoting filter escapes quotes and newlines.
        text = "\n".join(
            [(rendered.out / relative).read_text(), *scalars(yaml_docs(rendered.out / relative))]
        )
        for secret in secrets:
            pieces = fragments(secret)
            assert pieces, "a secret with nothing to look for"
            if is_secret_file(relative):
                if all(piece in text for piece in pieces):
                    found[secret].add(str(relative))
            elif any(piece in text for piece in pieces):
                leaks.append(f"{relative}: {secret[:6]}…")
    assert not leaks
    # and every secret the choices use does reach the cluster, in some secret file (the push
    # token only when it is the webhook's secret; it is masked in any case)
    used = {rendered.data[key].strip() for key in keys} | (secrets - {rendered.data["push_token"]})
    assert all(found[s] for s in used if s in found), [s[:6] for s in used if not found.get(s)]


def test_bootstrap_secrets(example: Rendered) -> None:
    age = example.doc("bootstrap/sops-age.sops.yaml")
    assert age["metadata"] == {
        "name": "sops-age",
        "namespace": "flux-system",
        # Flux listed it in every namespace before: it must survive that list's pruning.
        "annotations": {"kustomize.toolkit.fluxcd.io/prune": "disabled"},
    }
    assert age["stringData"]["age.agekey"] == example.data["age_key"]
    deploy = example.doc("bootstrap/github-deploy-key.sops.yaml")
    assert deploy["metadata"] == {"name": "github-deploy-key", "namespace": "flux-system"}
    assert deploy["stringData"]["identity"] == example.data["deploy_key"].strip() + "\n"
    assert deploy["stringData"]["known_hosts"].startswith("github.com ssh-ed25519 ")
    secrets = example.doc("bootstrap/cluster-secrets.sops.yaml")
    assert secrets["metadata"]["namespace"] == "flux-system"
    assert secrets["stringData"] == {"SECRET_DOMAIN": example.data["cloudflare_domain"]}
    component = example.doc("kubernetes/components/sops/cluster-secrets.sops.yaml")
    assert component["stringData"] == secrets["stringData"]
    assert "namespace" not in component["metadata"]


def test_app_secrets_carry_the_credentials(example: Rendered) -> None:
    tunnel = example.doc("kubernetes/apps/network/cloudflared/app/secret.sops.yaml")
    assert json.loads(tunnel["stringData"]["credentials.json"]) == {
        "AccountTag": example.data["cloudflare_tunnel_account_tag"],
        "TunnelSecret": example.data["cloudflare_tunnel_secret"],
        "TunnelID": example.data["cloudflare_tunnel_id"],
    }
    onepassword = example.doc("kubernetes/apps/external-secrets/onepassword/app/secret.sops.yaml")
    assert json.loads(onepassword["stringData"]["1password-credentials.json"]) == json.loads(
        example.data["onepassword_credentials"]
    )
    assert onepassword["stringData"]["token"] == example.data["onepassword_token"]
    for path in ("cert-manager/cert-manager", "network/cloudflare-dns"):
        secret = example.doc(f"kubernetes/apps/{path}/app/secret.sops.yaml")
        assert secret["stringData"]["api-token"] == example.data["cloudflare_token"]
    webhook = example.doc("kubernetes/apps/flux-system/flux-instance/app/secret.sops.yaml")
    assert webhook["stringData"]["token"] == example.data["push_token"]  # GitHub's, from `inv init`


# --------------------------------------------------------------------------- Flux


def test_cluster_entrypoint_patches_every_child(example: Rendered) -> None:
    root = example.doc("kubernetes/flux/cluster/ks.yaml")
    assert root["metadata"] == {"name": "cluster-apps", "namespace": "flux-system"}
    spec = root["spec"]
    assert spec["path"] == "./kubernetes/apps"
    # No key named: kustomize-controller's --sops-age-secret (the FluxInstance) decrypts.
    assert spec["decryption"] == {"provider": "sops"}
    (patch,) = spec["patches"]
    assert patch["target"] == {"group": "kustomize.toolkit.fluxcd.io", "kind": "Kustomization"}
    child = yaml_docs_text(patch["patch"])["spec"]
    assert child["decryption"] == {"provider": "sops"}
    assert child["postBuild"]["substituteFrom"] == [{"name": "cluster-secrets", "kind": "Secret"}]
    (release_patch,) = child["patches"]
    assert release_patch["target"]["kind"] == "HelmRelease"
    release = yaml_docs_text(release_patch["patch"])["spec"]
    assert release["install"]["crds"] == release["upgrade"]["crds"] == "CreateReplace"
    assert release["upgrade"]["remediation"]["retries"] > 0
    assert release["rollback"]["cleanupOnFail"] is True


def yaml_docs_text(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


def test_namespaces_and_app_kustomizations(rendered: Rendered, builds: dict[Path, Any]) -> None:
    expected = expected_apps(rendered)
    names = {}
    for ns, apps in expected.items():
        documents = built(builds, rendered.out / "kubernetes/apps" / ns)
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for d in documents:
            by_kind.setdefault(d["kind"], []).append(d)
        assert [d["metadata"]["name"] for d in by_kind["Namespace"]] == [ns]
        assert (
            by_kind["Namespace"][0]["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"]
            == "disabled"
        )
        assert sorted(d["metadata"]["name"] for d in by_kind["Secret"]) == ["cluster-secrets"]
        assert all(d["metadata"]["namespace"] == ns for d in documents if d["kind"] != "Namespace")
        flux = by_kind["Kustomization"]
        assert {k["metadata"]["name"] for k in flux} == apps
        for kustomization in flux:
            spec = kustomization["spec"]
            name = kustomization["metadata"]["name"]
            assert spec["path"] == f"./kubernetes/apps/{ns}/{name}/app"
            assert (rendered.out / spec["path"] / "kustomization.yaml").exists()
            assert spec["targetNamespace"] == ns
            assert spec["sourceRef"] == {
                "kind": "GitRepository",
                "name": "flux-system",
                "namespace": "flux-system",
            }
            names[(name, ns)] = spec.get("dependsOn", [])
    for (name, _), depends in names.items():
        for dependency in depends:
            assert (dependency["name"], dependency["namespace"]) in names, (name, dependency)
    if rendered.data["onepassword_enabled"]:
        assert names[("onepassword", "external-secrets")] == [
            {"name": "external-secrets", "namespace": "external-secrets"}
        ]
    assert {"name": "flux-operator", "namespace": "flux-system"} in names[("flux-instance", "flux-system")]


def test_flux_instance_syncs_the_public_repository(example: Rendered) -> None:
    values = example.doc("kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml")
    sync = values["instance"]["sync"]
    assert sync == {
        "kind": "GitRepository",
        "url": f"https://github.com/{example.data['repository_name']}.git",
        "ref": "refs/heads/main",
        "path": "kubernetes/flux/cluster",
    }


def test_flux_instance_syncs_a_private_repository_over_ssh(multi: Rendered) -> None:
    sync = multi.doc("kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml")["instance"]["sync"]
    assert sync["url"] == f"ssh://git@github.com/{multi.data['repository_name']}.git"
    assert sync["pullSecret"] == "github-deploy-key"
    assert sync["ref"] == "refs/heads/dev"
    assert multi.doc("bootstrap/github-deploy-key.sops.yaml")["metadata"]["name"] == sync["pullSecret"]


def test_webhook_receiver(example: Rendered) -> None:
    app = "kubernetes/apps/flux-system/flux-instance/app"
    receiver = example.doc(f"{app}/receiver.yaml")
    secret = example.doc(f"{app}/secret.sops.yaml")
    assert receiver["spec"]["type"] == "github"
    assert receiver["spec"]["secretRef"]["name"] == secret["metadata"]["name"]
    route = example.doc(f"{app}/httproute.yaml")
    assert route["spec"]["parentRefs"][0]["name"] == "envoy-external"
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "webhook-receiver", "port": 80}]


def test_a_self_hosted_git_server_over_ssh(selfhosted: Rendered) -> None:
    """Flux clones the URL as written, with the deploy key and the host keys the operator
    pasted; Gitea's webhook is a Receiver of GitHub's type with its own secret."""
    sync = selfhosted.doc("kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml")["instance"][
        "sync"
    ]
    assert sync["url"] == "ssh://git@git.home.arpa:2222/infra/home-ops.git"
    assert sync["pullSecret"] == "github-deploy-key"
    assert sync["ref"] == "refs/heads/cluster"
    deploy = selfhosted.doc("bootstrap/github-deploy-key.sops.yaml")["stringData"]
    lines = deploy["known_hosts"].splitlines()
    assert [line.split()[0] for line in lines] == ["[git.home.arpa]:2222", lines[1].split()[0]]
    assert lines[1].startswith("|1|") and not any("github.com" in line for line in lines)
    app = "kubernetes/apps/flux-system/flux-instance/app"
    receiver = selfhosted.doc(f"{app}/receiver.yaml")
    assert receiver["metadata"]["name"] == "gitea-webhook"
    assert receiver["spec"]["type"] == "github"
    assert receiver["spec"]["events"] == ["ping", "push"]
    secret = selfhosted.doc(f"{app}/secret.sops.yaml")
    assert receiver["spec"]["secretRef"]["name"] == secret["metadata"]["name"] == "gitea-webhook-token-secret"
    assert secret["stringData"]["token"] == selfhosted.data["webhook_token"] != selfhosted.data["push_token"]


def test_gitlab_over_https_with_its_webhook_and_direct_ingress(gitlab: Rendered) -> None:
    sync = gitlab.doc("kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml")["instance"]["sync"]
    assert sync["url"] == "https://gitlab.com/homelab/clusters/home-ops.git"
    assert "pullSecret" not in sync
    app = "kubernetes/apps/flux-system/flux-instance/app"
    receiver = gitlab.doc(f"{app}/receiver.yaml")
    assert (receiver["metadata"]["name"], receiver["spec"]["type"]) == ("gitlab-webhook", "gitlab")
    assert receiver["spec"]["events"] == ["Push Hook", "Tag Push Hook"]
    assert gitlab.doc(f"{app}/httproute.yaml")["spec"]["parentRefs"][0]["name"] == "envoy-external"
    # direct: the external gateway and Cloudflare DNS, but no tunnel
    names = {str(p) for p in gitlab.files}
    assert not [n for n in names if "cloudflared" in n]
    assert "kubernetes/apps/network/cloudflare-dns/app/helmrelease.yaml" in names
    envoy = gitlab.docs("kubernetes/apps/network/envoy-gateway/app/envoy.yaml")
    assert [d["metadata"]["name"] for d in envoy if d["kind"] == "Gateway"] == [
        "envoy-external",
        "envoy-internal",
    ]


def test_without_cloudflare_the_cluster_is_lan_only(no_cloudflare: Rendered) -> None:
    """No tunnel, no external gateway, no public DNS, no Let's Encrypt: the cluster's own CA
    signs the wildcard certificate, k8s-gateway still answers for the domain on the LAN,
    and the webhook and the echo app sit on the internal gateway."""
    rendered = no_cloudflare
    names = {str(p) for p in rendered.files}
    assert not [n for n in names if "cloudflare" in n]
    mentions = [n for n in names if any("cloudflare" in v for v in scalars(rendered.docs(n)))]
    assert not mentions  # not a value anywhere (comments may still say what is not there)
    issuers = rendered.docs("kubernetes/apps/cert-manager/cert-manager/app/clusterissuer.yaml")
    assert [(d["kind"], d["metadata"]["name"]) for d in issuers] == [
        ("ClusterIssuer", "selfsigned"),
        ("Certificate", "internal-ca"),
        ("ClusterIssuer", "internal-ca"),
    ]
    assert issuers[1]["spec"]["isCA"] is True and issuers[2]["spec"]["ca"]["secretName"] == "internal-ca"
    certificate = rendered.doc("kubernetes/apps/network/envoy-gateway/app/certificate.yaml")
    assert certificate["spec"]["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer"}
    envoy = rendered.docs("kubernetes/apps/network/envoy-gateway/app/envoy.yaml")
    assert [d["metadata"]["name"] for d in envoy if d["kind"] == "Gateway"] == ["envoy-internal"]
    redirect = next(d for d in envoy if d["kind"] == "HTTPRoute")
    assert [ref["name"] for ref in redirect["spec"]["parentRefs"]] == ["envoy-internal"]
    gateway = rendered.doc("kubernetes/apps/network/k8s-gateway/app/helmrelease.yaml")["spec"]["values"]
    assert gateway["domain"] == "${SECRET_DOMAIN}"
    assert rendered.doc("bootstrap/cluster-secrets.sops.yaml")["stringData"] == {"SECRET_DOMAIN": "home.arpa"}
    pool = rendered.docs("kubernetes/apps/kube-system/cilium/app/networks.yaml")[0]
    assert [b["cidr"] for b in pool["spec"]["blocks"]] == ["192.168.20.2/32", "192.168.20.3/32"]
    route = rendered.doc("kubernetes/apps/flux-system/flux-instance/app/httproute.yaml")
    assert route["spec"]["parentRefs"][0]["name"] == "envoy-internal"
    echo = rendered.doc("kubernetes/apps/default/echo/app/helmrelease.yaml")["spec"]["values"]
    assert echo["route"]["app"]["parentRefs"][0]["name"] == "envoy-internal"
    releases = rendered.doc("bootstrap/helmfile.d/00-crds.yaml")["releases"]
    assert "cloudflare-dns" not in {r["name"] for r in releases}
    assert rendered.data["spegel_enabled"] is False and len(rendered.data["nodes"]) == 3


def test_a_choice_off_leaves_no_template_data_it_would_need(
    no_cloudflare: Rendered, gitlab: Rendered
) -> None:
    """Templates see a secret only when the choice that needs it is on (strict undefined
    then fails any template that reaches for it outside its condition)."""
    assert no_cloudflare.data.get("cloudflare_token") is None  # the legacy cluster.yaml key, unset
    assert "cloudflare_tunnel_id" not in no_cloudflare.data and "cloudflare_tunnel_id" not in gitlab.data


# --------------------------------------------------------------------------- bootstrap


def oci_source(rendered: Rendered, namespace: str, app: str) -> dict[str, Any]:
    return rendered.doc(f"kubernetes/apps/{namespace}/{app}/app/ocirepository.yaml")["spec"]


def test_bootstrap_helmfile_installs_the_chain_in_order(rendered: Rendered) -> None:
    helmfile = rendered.out / "bootstrap/helmfile.d/01-apps.yaml"
    releases = yaml_doc(helmfile)["releases"]
    chain = list(BOOTSTRAP_CHAIN)
    if rendered.data["spegel_enabled"]:
        # The other nodes pull the rest of the bootstrap images from the first one.
        chain.insert(chain.index("cert-manager"), "spegel")
    assert [r["name"] for r in releases] == chain
    assert "needs" not in releases[0]
    for previous, release in itertools.pairwise(releases):
        assert release["needs"] == [f"{previous['namespace']}/{previous['name']}"]
    for release in releases:
        source = oci_source(rendered, release["namespace"], release["name"])
        assert release["chart"] == source["url"]
        assert str(release["version"]) == str(source["ref"]["tag"])
        (values,) = release["values"]
        values_file = (helmfile.parent / values).resolve()
        assert (
            values_file
            == (
                rendered.out
                / f"kubernetes/apps/{release['namespace']}/{release['name']}/app/helm/values.yaml"
            ).resolve()
        )
        kustomization = values_file.parent.parent / "kustomization.yaml"
        generator = yaml_doc(kustomization)["configMapGenerator"]
        assert generator == [
            {"name": f"{release['name']}-values", "files": ["values.yaml=./helm/values.yaml"]}
        ]


def test_crd_helmfile_follows_the_apps(example: Rendered) -> None:
    releases = example.doc("bootstrap/helmfile.d/00-crds.yaml")["releases"]
    assert {r["name"] for r in releases} >= {"envoy-gateway", "cloudflare-dns", "external-secrets"}
    for release in releases:
        source = oci_source(example, release["namespace"], release["name"])
        assert (release["chart"], str(release["version"])) == (source["url"], str(source["ref"]["tag"]))


def test_versions_carry_renovate_annotations(example: Rendered) -> None:
    annotated = re.compile(r"# renovate: datasource=\S+ depName=(\S+)\n\s*(?:\w+): (\S+)")
    talenv = (example.out / "talos/talenv.yaml").read_text()
    assert dict(annotated.findall(talenv)) == {
        "ghcr.io/siderolabs/installer": "v1.13.8",
        "ghcr.io/siderolabs/kubelet": "v1.36.4",
    }
    for name in ("00-crds.yaml", "01-apps.yaml"):
        text = (example.out / "bootstrap/helmfile.d" / name).read_text()
        releases = yaml_docs_text(text)["releases"]
        found = dict(annotated.findall(text))
        assert found == {r["chart"].removeprefix("oci://"): str(r["version"]) for r in releases}
    flux = (example.out / "kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml").read_text()
    assert "depName=controlplaneio-fluxcd/distribution" in flux


# --------------------------------------------------------------------------- networking


def balanced_keys(data: dict[str, Any]) -> list[str]:
    """The load balancer addresses the configuration assigns (the external one only with an
    external gateway)."""
    keys = ["cluster_dns_gateway_addr", "cluster_gateway_addr", "cloudflare_gateway_addr"]
    return keys if data["external_gateway_enabled"] else keys[:2]


def test_load_balancer_addresses(rendered: Rendered) -> None:
    data = rendered.data
    pool = rendered.docs("kubernetes/apps/kube-system/cilium/app/networks.yaml")[0]
    assert pool["kind"] == "CiliumLoadBalancerIPPool"
    assert [b["cidr"] for b in pool["spec"]["blocks"]] == [f"{data[k]}/32" for k in balanced_keys(data)]
    envoy = rendered.docs("kubernetes/apps/network/envoy-gateway/app/envoy.yaml")
    proxies = {d["metadata"]["name"]: d for d in envoy if d["kind"] == "EnvoyProxy"}
    gateways = {d["metadata"]["name"]: d for d in envoy if d["kind"] == "Gateway"}
    assert set(gateways) == (
        {"envoy-internal", "envoy-external"} if data["external_gateway_enabled"] else {"envoy-internal"}
    )
    for name, key in (
        ("envoy-internal", "cluster_gateway_addr"),
        ("envoy-external", "cloudflare_gateway_addr"),
    )[: 1 + data["external_gateway_enabled"]]:
        service = proxies[name]["spec"]["provider"]["kubernetes"]["envoyService"]
        assert service["annotations"]["lbipam.cilium.io/ips"] == data[key]
        assert service["name"] == name
        assert gateways[name]["spec"]["infrastructure"]["parametersRef"]["name"] == name
    k8s_gateway = rendered.doc("kubernetes/apps/network/k8s-gateway/app/helmrelease.yaml")["spec"]["values"]
    assert k8s_gateway["service"]["annotations"]["lbipam.cilium.io/ips"] == data["cluster_dns_gateway_addr"]
    assert k8s_gateway["domain"] == "${SECRET_DOMAIN}"
    coredns = rendered.doc("kubernetes/apps/kube-system/coredns/app/helm/values.yaml")
    assert coredns["service"]["clusterIP"] == str(ip_network(data["cluster_svc_cidr"])[10])


def test_cilium_without_bgp_announces_over_l2_only(example: Rendered) -> None:
    kinds = example.kinds("kubernetes/apps/kube-system/cilium/app/networks.yaml")
    assert kinds == ["CiliumLoadBalancerIPPool", "CiliumL2AnnouncementPolicy"]
    values = example.doc("kubernetes/apps/kube-system/cilium/app/helm/values.yaml")
    assert values["bgpControlPlane"]["enabled"] is False
    assert values["l2announcements"]["enabled"] is True
    assert values["loadBalancer"]["mode"] == "dsr"
    assert values["ipv4NativeRoutingCIDR"] == example.data["cluster_pod_cidr"]


def test_cilium_with_bgp_peers_with_the_router(bgp: Rendered) -> None:
    documents = {d["kind"]: d for d in bgp.docs("kubernetes/apps/kube-system/cilium/app/networks.yaml")}
    assert set(documents) == {
        "CiliumLoadBalancerIPPool",
        "CiliumL2AnnouncementPolicy",
        "CiliumBGPClusterConfig",
        "CiliumBGPPeerConfig",
        "CiliumBGPAdvertisement",
    }
    (instance,) = documents["CiliumBGPClusterConfig"]["spec"]["bgpInstances"]
    assert instance["localASN"] == 64514
    (peer,) = instance["peers"]
    assert (peer["peerAddress"], peer["peerASN"]) == ("192.168.1.1", 64513)
    assert peer["peerConfigRef"]["name"] == documents["CiliumBGPPeerConfig"]["metadata"]["name"]
    selector = documents["CiliumBGPPeerConfig"]["spec"]["families"][0]["advertisements"]["matchLabels"]
    assert selector.items() <= documents["CiliumBGPAdvertisement"]["metadata"]["labels"].items()
    values = bgp.doc("kubernetes/apps/kube-system/cilium/app/helm/values.yaml")
    assert values["bgpControlPlane"]["enabled"] is True
    # Addresses inside node_cidr still need ARP answers on the LAN: L2 stays on with BGP.
    assert values["l2announcements"]["enabled"] is True
    assert documents["CiliumL2AnnouncementPolicy"]["spec"]["loadBalancerIPs"] is True
    assert values["loadBalancer"]["mode"] == "snat"


def test_cloudflared_points_dns_at_the_tunnel(example: Rendered) -> None:
    tunnel_id = example.data["cloudflare_tunnel_id"]
    app = "kubernetes/apps/network/cloudflared/app"
    (endpoint,) = example.doc(f"{app}/dnsendpoint.yaml")["spec"]["endpoints"]
    assert endpoint == {
        "dnsName": "external.${SECRET_DOMAIN}",
        "recordType": "CNAME",
        "targets": [f"{tunnel_id}.cfargotunnel.com"],
    }
    config = example.doc(f"{app}/configs/config.yaml")
    assert config["tunnel"] == tunnel_id
    assert config["ingress"][0]["service"] == "https://envoy-external.network.svc.cluster.local"
    assert config["ingress"][-1] == {"service": "http_status:404"}


def test_certificates_and_dns(example: Rendered) -> None:
    issuer = example.doc("kubernetes/apps/cert-manager/cert-manager/app/clusterissuer.yaml")
    secret = example.doc("kubernetes/apps/cert-manager/cert-manager/app/secret.sops.yaml")
    (solver,) = issuer["spec"]["acme"]["solvers"]
    assert solver["dns01"]["cloudflare"]["apiTokenSecretRef"]["name"] == secret["metadata"]["name"]
    certificate = example.doc("kubernetes/apps/network/envoy-gateway/app/certificate.yaml")
    assert certificate["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    envoy = example.docs("kubernetes/apps/network/envoy-gateway/app/envoy.yaml")
    for gateway in (d for d in envoy if d["kind"] == "Gateway"):
        https = next(x for x in gateway["spec"]["listeners"] if x["protocol"] == "HTTPS")
        assert https["tls"]["certificateRefs"][0]["name"] == certificate["spec"]["secretName"]
    dns = example.doc("kubernetes/apps/network/cloudflare-dns/app/helmrelease.yaml")["spec"]["values"]
    assert dns["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "cloudflare-dns-secret"
    assert "--gateway-name=envoy-external" in dns["extraArgs"]


def test_onepassword_cluster_secret_store(example: Rendered) -> None:
    store = example.doc("kubernetes/apps/external-secrets/onepassword/app/clustersecretstore.yaml")
    assert store["kind"] == "ClusterSecretStore"
    auth = store["spec"]["provider"]["onepassword"]["auth"]["secretRef"]["connectTokenSecretRef"]
    secret = example.doc("kubernetes/apps/external-secrets/onepassword/app/secret.sops.yaml")
    assert (auth["name"], auth["namespace"]) == (secret["metadata"]["name"], "external-secrets")
    assert auth["key"] in secret["stringData"]


# --------------------------------------------------------------------------- spegel


def test_spegel_only_with_more_than_one_node(example: Rendered, multi: Rendered) -> None:
    kube_system = "kubernetes/apps/kube-system"
    assert not example.data["spegel_enabled"]
    assert not any(str(p).startswith(f"{kube_system}/spegel") for p in example.files)
    assert "./spegel/ks.yaml" not in example.doc(f"{kube_system}/kustomization.yaml")["resources"]
    assert multi.data["spegel_enabled"]
    assert "./spegel/ks.yaml" in multi.doc(f"{kube_system}/kustomization.yaml")["resources"]
    assert multi.doc(f"{kube_system}/spegel/app/helmrelease.yaml")["kind"] == "HelmRelease"
    assert oci_source(multi, "kube-system", "spegel")["url"] == "oci://ghcr.io/spegel-org/helm-charts/spegel"


# --------------------------------------------------------------------------- Talos


def talos_nodes(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {n["hostname"]: n for n in rendered.doc("talos/talconfig.yaml")["nodes"]}


def test_talconfig_single_node(example: Rendered) -> None:
    talconfig = example.doc("talos/talconfig.yaml")
    api = example.data["cluster_api_addr"]
    assert talconfig["endpoint"] == f"https://{api}:6443"
    assert talconfig["additionalApiServerCertSans"] == ["127.0.0.1", api]
    assert talconfig["additionalMachineCertSans"] == talconfig["additionalApiServerCertSans"]
    assert talconfig["clusterPodNets"] == ["10.42.0.0/16"]
    assert talconfig["clusterSvcNets"] == ["10.43.0.0/16"]
    assert talconfig["cniConfig"] == {"name": "none"}
    node = talos_nodes(example)["k8s-0"]
    schematic = example.data["nodes"][0]["schematic_id"]
    assert node["ipAddress"] == "192.168.1.10"
    assert node["controlPlane"] is True
    assert node["installDisk"] == "/dev/sda"
    assert node["talosImageURL"] == f"factory.talos.dev/installer/{schematic}"
    assert node["machineSpec"] == {"secureboot": False}
    (interface,) = node["networkInterfaces"]
    assert interface == {
        "deviceSelector": {"hardwareAddr": "00:00:5e:00:53:10"},
        "dhcp": False,
        "addresses": ["192.168.1.10/24"],
        "routes": [{"network": "0.0.0.0/0", "gateway": "192.168.1.1"}],
        "mtu": 1500,
        "vip": {"ip": api},
    }
    assert "patches" not in node and "kernelModules" not in node


def test_talconfig_multi_node(multi: Rendered) -> None:
    talconfig = multi.doc("talos/talconfig.yaml")
    assert "k8s.example.com" in talconfig["additionalApiServerCertSans"]
    nodes = talos_nodes(multi)
    assert list(nodes) == ["k8s-0", "k8s-1", "k8s-2", "k8s-3"]
    for name, node in nodes.items():
        (interface,) = node["networkInterfaces"]
        (vlan,) = interface["vlans"]
        assert vlan["vlanId"] == 20
        assert vlan["addresses"] == [f"{node['ipAddress']}/24"]
        assert vlan["routes"] == [{"network": "0.0.0.0/0", "gateway": "192.168.1.1"}]
        assert "addresses" not in interface
        assert ("vip" in vlan) == node["controlPlane"] == (name != "k8s-3")
    secure = nodes["k8s-1"]
    assert secure["installDiskSelector"] == {"serial": "S4EWNX0R123456"}
    assert "installDisk" not in secure
    assert secure["talosImageURL"].startswith("factory.talos.dev/installer-secureboot/")
    assert secure["machineSpec"] == {"secureboot": True}
    assert secure["networkInterfaces"][0]["vlans"][0]["mtu"] == 9000
    (encryption,) = secure["patches"]
    disk = yaml_docs_text(encryption)["machine"]["systemDiskEncryption"]
    assert set(disk) == {"state", "ephemeral"}
    assert all(part["keys"] == [{"slot": 0, "tpm": {}}] for part in disk.values())
    assert nodes["k8s-2"]["kernelModules"] == [{"name": "nvidia"}, {"name": "nvidia_uvm"}]
    assert "patches" not in nodes["k8s-2"]


def test_talos_patches_are_all_referenced(rendered: Rendered) -> None:
    talconfig = rendered.doc("talos/talconfig.yaml")
    references = [*talconfig["patches"], *talconfig["controlPlane"]["patches"]]
    referenced = {Path("talos") / r.removeprefix("@./") for r in references}
    on_disk = {p for p in rendered.files if p.parts[:2] == ("talos", "patches")}
    assert referenced == on_disk
    assert all(
        str(p).startswith("talos/patches/controller/")
        for p in on_disk - {Path("talos") / r.removeprefix("@./") for r in talconfig["patches"]}
    )


def test_talos_patches_use_the_config(multi: Rendered) -> None:
    patches = "talos/patches/global"
    assert multi.doc(f"{patches}/machine-network.yaml")["machine"]["network"]["nameservers"] == [
        "192.168.1.1"
    ]
    assert (
        multi.doc(f"{patches}/machine-time.yaml")["machine"]["time"]["servers"]
        == multi.data["node_ntp_servers"]
    )
    kubelet = multi.doc(f"{patches}/machine-kubelet.yaml")["machine"]["kubelet"]
    assert kubelet["nodeIP"]["validSubnets"] == [multi.data["node_cidr"]]
    cluster = multi.doc("talos/patches/controller/cluster.yaml")["cluster"]
    assert cluster["proxy"]["disabled"] is True
    assert cluster["coreDNS"]["disabled"] is True
    assert cluster["etcd"]["advertisedSubnets"] == [multi.data["node_cidr"]]


# --------------------------------------------------------------------------- helpers


def test_render_config_applies_overrides(bgp: Rendered, multi: Rendered) -> None:
    """The harness above really renders the modified configurations."""
    assert bgp.data["cilium_bgp_enabled"] is True
    assert bgp.data["cluster_gateway_addr"] == "10.99.0.80"
    assert [n["name"] for n in multi.data["nodes"]] == [n["name"] for n in MULTI_NODES]
    assert multi.data["node_vlan_tag"] == 20


# --------------------------------------------------------------------------- the age key


def test_the_age_key_lives_only_in_flux_system(rendered: Rendered, builds: dict[Path, Any]) -> None:
    """Built with kustomize, every namespace and the bootstrap: one sops-age, in flux-system."""
    found: list[tuple[str, str]] = []
    for directory in kustomization_dirs(rendered):
        for document in built(builds, directory):
            if document["kind"] == "Secret" and document["metadata"]["name"] == "sops-age":
                found.append(
                    (str(directory.relative_to(rendered.out)), document["metadata"].get("namespace"))
                )
    assert found == [], f"the age key is copied into {found}"
    bootstrap = [
        doc
        for relative in rendered.files
        if relative.parts[0] == "bootstrap"
        for doc in rendered.docs(str(relative))
        if isinstance(doc, dict) and doc.get("kind") == "Secret" and doc["metadata"]["name"] == "sops-age"
    ]
    assert [d["metadata"]["namespace"] for d in bootstrap] == ["flux-system"]
    # Every Flux Kustomization decrypts without naming a key: the controller's global one.
    for directory in kustomization_dirs(rendered):
        for document in built(builds, directory):
            if document["kind"] == "Kustomization" and "decryption" in document.get("spec", {}):
                assert "secretRef" not in document["spec"]["decryption"], directory


def flux_controllers_patched(rendered: Rendered, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Apply the FluxInstance's kustomize patches with kustomize to stand-ins of the four
    controller Deployments (as flux-operator does to the real ones); name -> Deployment."""
    values = rendered.doc("kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml")
    resources = []
    for name in ("source-controller", "kustomize-controller", "helm-controller", "notification-controller"):
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "manager", "args": ["--log-level=info"]}],
                        "volumes": [{"name": "temp", "emptyDir": {}}],
                    }
                }
            },
        }
        (tmp_path / f"{name}.yaml").write_text(json.dumps(deployment))
        resources.append(f"{name}.yaml")
    kustomization = {"resources": resources, "patches": values["instance"]["kustomize"]["patches"]}
    (tmp_path / "kustomization.yaml").write_text(json.dumps(kustomization))
    _, result = kustomize_build(tmp_path)
    assert result.returncode == 0, result.stderr
    return {d["metadata"]["name"]: d for d in yaml_docs_text_all(result.stdout)}


def yaml_docs_text_all(text: str) -> list[Any]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d]


def test_flux_controllers_are_tuned_as_the_template_tunes_them(example: Rendered, tmp_path: Path) -> None:
    deployments = flux_controllers_patched(example, tmp_path)

    def args(name: str) -> list[str]:
        return deployments[name]["spec"]["template"]["spec"]["containers"][0]["args"]

    def limit(name: str) -> str:
        return deployments[name]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]

    kustomize, helm, source = args("kustomize-controller"), args("helm-controller"), args("source-controller")
    assert {"--concurrent=20", "--requeue-dependency=5s", "--sops-age-secret=sops-age"} <= set(kustomize)
    assert "--feature-gates=CancelHealthCheckOnNewRevision=true" in kustomize
    assert {"--concurrent=10", "--requeue-dependency=5s"} <= set(helm) & set(source)
    assert {"--helm-cache-max-size=10", "--helm-cache-ttl=60m", "--helm-cache-purge-interval=5m"} <= set(
        source
    )
    assert "--feature-gates=OOMWatch=true,DisableChartDigestTracking=true" in helm
    assert {"--oom-watch-memory-threshold=95", "--oom-watch-interval=500ms"} <= set(helm)
    for name in ("kustomize-controller", "helm-controller"):
        assert "--watch-configs-label-selector=owner!=helm" in args(name)
    # One value per flag: a repeated flag would silently keep only the last.
    for name, deployment in deployments.items():
        flags = [a.split("=")[0] for a in args(name)]
        assert len(flags) == len(set(flags)), (name, flags)
        assert deployment["metadata"]["namespace"] == "flux-system"
    for name in ("kustomize-controller", "helm-controller", "source-controller"):
        assert limit(name) == "1Gi"
    assert (
        "resources" not in deployments["notification-controller"]["spec"]["template"]["spec"]["containers"][0]
    )
    volumes = deployments["kustomize-controller"]["spec"]["template"]["spec"]["volumes"]
    assert volumes[0] == {"name": "temp", "emptyDir": {"medium": "Memory"}}


# --------------------------------------------------------------------------- gateway policies


def test_envoy_traffic_policies(rendered: Rendered, builds: dict[Path, Any]) -> None:
    documents = built(builds, rendered.out / "kubernetes/apps/network/envoy-gateway/app")
    by_kind = {d["kind"]: d for d in documents}
    every_gateway = [{"group": "gateway.networking.k8s.io", "kind": "Gateway"}]
    backend = by_kind["BackendTrafficPolicy"]["spec"]
    assert backend["targetSelectors"] == every_gateway
    assert backend["timeout"]["http"]["requestTimeout"] == "0s"  # no cut at Envoy's default 15s
    assert backend["retry"]["numRetries"] == 2
    assert [c["type"] for c in backend["compressor"]] == ["Zstd", "Brotli", "Gzip"]
    assert backend["tcpKeepalive"] == {}
    client = by_kind["ClientTrafficPolicy"]["spec"]
    assert client["targetSelectors"] == every_gateway
    assert client["http3"] == {} and client["tcpKeepalive"] == {}
    assert client["http2"]["onInvalidMessage"] == "TerminateStream"
    assert client["clientIPDetection"]["xForwardedFor"]["trustedCIDRs"] == [rendered.data["cluster_pod_cidr"]]
    assert client["tls"]["minVersion"] == "1.2"


# --------------------------------------------------------------------------- L2 and BGP


def test_l2_announcements_answer_with_and_without_bgp(rendered: Rendered, builds: dict[Path, Any]) -> None:
    documents = built(builds, rendered.out / "kubernetes/apps/kube-system/cilium/app")
    kinds = {d["kind"] for d in documents}
    assert "CiliumL2AnnouncementPolicy" in kinds
    bgp_kinds = {"CiliumBGPClusterConfig", "CiliumBGPPeerConfig", "CiliumBGPAdvertisement"}
    assert (bgp_kinds <= kinds) is rendered.data["cilium_bgp_enabled"]
    assert not (bgp_kinds & kinds) or rendered.data["cilium_bgp_enabled"]
    (pool,) = [d for d in documents if d["kind"] == "CiliumLoadBalancerIPPool"]
    blocks = {b["cidr"] for b in pool["spec"]["blocks"]}
    assert blocks == {f"{rendered.data[key]}/32" for key in balanced_keys(rendered.data)}
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap"]
    values = YAML(typ="safe", pure=True).load(config_map["data"]["values.yaml"])
    assert values["l2announcements"]["enabled"] is True
    assert values["bgpControlPlane"]["enabled"] is rendered.data["cilium_bgp_enabled"]
    # The renamed key: `localRedirectPolicy` is silently ignored by Cilium 1.20's chart.
    assert "localRedirectPolicy" not in values and values["localRedirectPolicies"] == {"enabled": True}


def test_template_public_config_renders_l2_and_bgp_for_gateways_inside_node_cidr(public: Rendered) -> None:
    node_network = ip_network(public.data["node_cidr"])
    for key in ("cluster_dns_gateway_addr", "cluster_gateway_addr", "cloudflare_gateway_addr"):
        assert ip_network(public.data[key]).subnet_of(node_network)  # ARP must answer for these
    kinds = public.kinds("kubernetes/apps/kube-system/cilium/app/networks.yaml")
    assert "CiliumL2AnnouncementPolicy" in kinds and "CiliumBGPClusterConfig" in kinds


# --------------------------------------------------------------------------- 1Password optional


def test_without_onepassword_no_connect_server_and_no_store(no_onepassword: Rendered) -> None:
    names = {str(p) for p in no_onepassword.files}
    assert not [n for n in names if "onepassword" in n]
    for relative in no_onepassword.files:
        for document in no_onepassword.docs(str(relative)):
            if isinstance(document, dict):
                assert document.get("kind") != "ClusterSecretStore", relative
    # External Secrets stays (its CRDs and operator), ready for any other store.
    assert "kubernetes/apps/external-secrets/external-secrets/ks.yaml" in names
    assert "onepassword_credentials" not in no_onepassword.data


def test_new_placeholder_secrets_need_no_onepassword() -> None:
    from tasks.lib.secrets.operator import PLACEHOLDER_SECRETS

    secrets = YAML(typ="safe", pure=True).load(PLACEHOLDER_SECRETS)
    assert set(secrets) == {"cloudflare_token", "cloudflare_tunnel"}
    assert "onepassword_connect:" in PLACEHOLDER_SECRETS  # shown, commented out


def test_configure_check_and_validate_pass_without_onepassword(tmp_path: Path) -> None:
    """The operator flow on a cluster.sops.yaml without onepassword_connect, as a user runs it."""
    repo = copy_repo(tmp_path / "repo")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("SOPS_AGE_KEY_FILE", "SOPS_CONFIG")},
        "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR),
        "SOPS_AGE_KEY_FILE": str(EXAMPLE_OPERATOR / "age.key"),
    }
    sops = tool("sops")
    plain = subprocess.run(
        [sops, "--decrypt", "cluster.sops.yaml"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    secrets = YAML(typ="safe", pure=True).load(plain)
    del secrets["onepassword_connect"]
    stream = io.StringIO()
    YAML(typ="safe", pure=True).dump(secrets, stream)
    encrypted = subprocess.run(
        [sops, "--encrypt", "--filename-override", "cluster.sops.yaml", "/dev/stdin"],
        cwd=repo,
        env=env,
        input=stream.getvalue(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (repo / "cluster.sops.yaml").write_text(encrypted)
    inv = [sys.executable, "-m", "tasks"]
    for args in (["configure"], ["configure", "--check"], ["dev.validate"]):
        result = subprocess.run([*inv, *args], cwd=repo, env=env, capture_output=True, text=True)
        assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
        assert "Traceback" not in result.stderr
    assert not (repo / "kubernetes/apps/external-secrets/onepassword").exists()


# --------------------------------------------------------------------------- Talos


def test_talos_machine_config_carries_the_templates_tuning(rendered: Rendered) -> None:
    sysctls = rendered.doc("talos/patches/global/machine-sysctls.yaml")["machine"]["sysctls"]
    assert sysctls == {
        "fs.inotify.max_user_instances": "8192",
        "fs.inotify.max_user_watches": "1048576",
        "net.core.rmem_max": "7500000",
        "net.core.wmem_max": "7500000",
        "net.ipv4.neigh.default.gc_thresh1": "4096",
        "net.ipv4.neigh.default.gc_thresh2": "8192",
        "net.ipv4.neigh.default.gc_thresh3": "16384",
        "net.ipv4.tcp_slow_start_after_idle": "0",
        "user.max_user_namespaces": "11255",
    }
    (cri,) = rendered.doc("talos/patches/global/machine-files.yaml")["machine"]["files"]
    assert cri["path"] == "/etc/cri/conf.d/20-customization.part" and cri["op"] == "create"
    content = tomllib.loads(cri["content"])
    assert content["plugins"]["io.containerd.cri.v1.images"]["discard_unpacked_layers"] is False
    assert (
        content["plugins"]["io.containerd.cri.v1.runtime"]["device_ownership_from_security_context"] is True
    )
    kubelet = rendered.doc("talos/patches/global/machine-kubelet.yaml")["machine"]["kubelet"]["extraConfig"]
    assert kubelet["serializeImagePulls"] is False and kubelet["maxParallelImagePulls"] == 3
    assert kubelet["shutdownGracePeriod"] == "90s" and kubelet["shutdownGracePeriodCriticalPods"] == "60s"
    cluster = rendered.doc("talos/patches/controller/cluster.yaml")["cluster"]
    # Pod Security admission stays at Talos' default (baseline enforced, kube-system exempt) ...
    assert "admissionControl" not in cluster["apiServer"]
    (profile,) = cluster["scheduler"]["config"]["profiles"]
    (spread,) = profile["pluginConfig"]
    assert spread["name"] == "PodTopologySpread"
    assert spread["args"]["defaultConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"


def test_privileged_system_namespace_says_so(rendered: Rendered, builds: dict[Path, Any]) -> None:
    """... and the namespace of the privileged system workloads carries the privileged label,
    the only one that does."""
    for ns in NAMESPACES:
        (namespace,) = [
            d for d in built(builds, rendered.out / "kubernetes/apps" / ns) if d["kind"] == "Namespace"
        ]
        level = namespace["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce")
        assert level == ("privileged" if ns == "kube-system" else None), ns


# --------------------------------------------------------------------------- versions


#: The newest pins of the Taskfile-era template that ours must reach (issue: current versions).
MINIMUM_CHARTS = {
    "k8s-gateway": "3.7.2",
    "spegel": "0.7.4",
    "flux-operator": "0.58.1",
    "flux-instance": "0.58.1",
    "envoy-gateway": "1.9.0",
    "cert-manager": "1.21.1",
    "coredns": "1.47.0",
    "reloader": "2.2.16",
    "cloudflare-dns": "1.21.1",
    "cilium": "1.20.1",
    "metrics-server": "3.14.0",
}


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.removeprefix("v").split("."))


def test_charts_are_at_least_the_templates_newest(multi: Rendered) -> None:
    found = {}
    for relative in multi.files:
        if relative.name == "ocirepository.yaml":
            source = multi.doc(str(relative))
            found[source["metadata"]["name"]] = str(source["spec"]["ref"]["tag"])
    for name, minimum in MINIMUM_CHARTS.items():
        assert version_tuple(found[name]) >= version_tuple(minimum), (name, found[name], minimum)
    cloudflared = multi.doc("kubernetes/apps/network/cloudflared/app/helmrelease.yaml")
    image = cloudflared["spec"]["values"]["controllers"]["cloudflared"]["containers"]["app"]["image"]
    assert version_tuple(image["tag"]) >= version_tuple("2026.8.2")


# --------------------------------------------------------------------------- editor schemas


SCHEMA_LINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.M)
KUBERNETES_SCHEMAS = re.compile(
    r"https://kubernetes-schemas\.pages\.dev/(?P<group>[a-z0-9.-]+)/(?P<kind>[a-z0-9]+)_(?P<version>v\w+)\.json"
)
CORE_SCHEMAS = re.compile(
    r"https://raw\.githubusercontent\.com/yannh/kubernetes-json-schema/master/"
    r"master-standalone-strict/(?P<kind>[a-z0-9]+)-(?P<version>v\w+)\.json"
)
KUSTOMIZE_SCHEMA = "https://json.schemastore.org/kustomization"
HELMFILE_SCHEMA = "https://json.schemastore.org/helmfile.json"
TALCONFIG_SCHEMA = (
    "https://raw.githubusercontent.com/budimanjojo/talhelper/master/pkg/config/schemas/talconfig.json"
)


def schema_matches(url: str, document: dict[str, Any]) -> bool:
    """Whether a schema URL is the one for this document's apiVersion and kind."""
    group, _, version = str(document["apiVersion"]).rpartition("/")
    kind = str(document["kind"]).lower()
    if group == "kustomize.config.k8s.io":
        return url == KUSTOMIZE_SCHEMA
    match = (CORE_SCHEMAS if not group else KUBERNETES_SCHEMAS).fullmatch(url)
    if match is None:
        return False
    return (match["kind"], match["version"]) == (kind, version) and match.groupdict().get(
        "group", ""
    ) == group


def documents_with_text(path: Path) -> list[tuple[str, Any]]:
    """(text, parsed) per document of a file split at its `---` lines."""
    chunks = re.split(r"^---$", path.read_text(), flags=re.M)
    return [(chunk, YAML(typ="safe", pure=True).load(chunk)) for chunk in chunks if chunk.strip()]


def test_every_manifest_names_its_schema(rendered: Rendered) -> None:
    checked = 0
    for relative in rendered.files:
        for text, document in documents_with_text(rendered.out / relative):
            urls = SCHEMA_LINE.findall(text)
            if isinstance(document, dict) and "apiVersion" in document and "kind" in document:
                assert len(urls) == 1, f"{relative}: {document['kind']} has {len(urls)} schema headers"
                assert schema_matches(urls[0], document), f"{relative}: {urls[0]} for {document['kind']}"
                assert text.lstrip("\n").startswith("# yaml-language-server"), relative  # first line
                checked += 1
            elif relative.parts[:2] == ("bootstrap", "helmfile.d"):
                assert urls == [HELMFILE_SCHEMA], relative
            elif str(relative) == "talos/talconfig.yaml":
                assert urls == [TALCONFIG_SCHEMA], relative
            else:
                assert urls == [], relative
    assert checked > 60


def test_schema_check_catches_a_wrong_kind() -> None:
    release = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease"}
    assert schema_matches(
        "https://kubernetes-schemas.pages.dev/helm.toolkit.fluxcd.io/helmrelease_v2.json", release
    )
    assert not schema_matches(
        "https://kubernetes-schemas.pages.dev/helm.toolkit.fluxcd.io/helmrelease_v1.json", release
    )
    assert not schema_matches(
        "https://kubernetes-schemas.pages.dev/source.toolkit.fluxcd.io/helmrelease_v2.json", release
    )
    secret = {"apiVersion": "v1", "kind": "Secret"}
    assert schema_matches(
        "https://raw.githubusercontent.com/yannh/kubernetes-json-schema/master/master-standalone-strict/secret-v1.json",
        secret,
    )
    assert not schema_matches(
        "https://raw.githubusercontent.com/yannh/kubernetes-json-schema/master/master-standalone-strict/namespace-v1.json",
        secret,
    )


# --------------------------------------------------------------------------- no YAML injection

#: Values that end a plain or quoted scalar, start keys, items, documents, anchors, tags or
#: comments, change type, or hold characters YAML refuses raw.
ADVERSARIAL = [
    'ABC"\n    installDisk: /dev/evil',
    "x'\ny: 1",
    "a: b",
    "- item\n- item",
    "--- \n...\nkind: Secret",
    "&anchor *alias !!python/object/apply:os.system ['id']",
    "#{ age_key }# {{ .Values }} ${SECRET}",
    "# comment",
    'back\\slash \\" \\n',
    "null",
    "true",
    "0x1F",
    "1e3",
    "~",
    "",
    "  padded  ",
    "tab\tcr\rcrlf\r\nnul\x00esc\x1bdel\x7f",
    "next\x85line",
    "line\u2028sep\u2029bom\ufeff",
    "{a: b, c: [d]}",
    "é 中文 😀 \U0001f600",
    "|\n  block",
    "> folded",
    "@ ` % !",
]
#: Values the templates compute with (networks) or branch on (visibility, the webhook's type).
STRUCTURAL = {"node_cidr", "cluster_svc_cidr", "repository_visibility", "webhook_receiver_type"}


def adversarial(payloads: Iterator[str], used: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Replace every string the templates see with the next payload, tagged ``<N>`` so it
    can be found again (a disk stays a /dev path or a serial, so the same branch renders);
    ``used`` maps each tag to its whole value."""

    def swap(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(key, v) for v in value]
        if not isinstance(value, str) or key in STRUCTURAL:
            return value
        tag = f"<{len(used)}>"
        payload = next(payloads) + tag
        used[tag] = payload
        if key == "disk" and value.startswith("/dev/"):
            return "/dev/" + payload
        if key == "disk":
            return payload.removeprefix("/dev/") or "x"
        return payload

    return lambda data: {k: swap(k, v) for k, v in data.items()}


def shape(value: Any) -> Any:
    """A parsed YAML tree with every string replaced by its type: what injection changes."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return "str" if isinstance(value, str) else value


@pytest.mark.parametrize(
    ("name", "offset"),
    [("example", 0), ("multi", 7), ("bgp", 13), ("public", 19), ("selfhosted", 23), ("no_cloudflare", 29)],
)
def test_no_value_can_add_a_key(
    request: pytest.FixtureRequest, tmp_path: Path, name: str, offset: int
) -> None:
    """Every string of the context, replaced by hostile values, renders to the same YAML
    structure as the real values, and each hostile value comes back unchanged."""
    reference: Rendered = request.getfixturevalue(name)
    payloads = itertools.cycle(ADVERSARIAL[offset:] + ADVERSARIAL[:offset])
    overrides = {
        "example": {},
        "multi": {"cluster": MULTI_CLUSTER, "nodes": MULTI_NODES},
        "bgp": {"cluster": BGP_CLUSTER},
        "public": {"config_dir": CONFIGS / "template-public"},
        "selfhosted": {"config_dir": CONFIGS / "selfhosted-ssh"},
        "no_cloudflare": {"config_dir": CONFIGS / "no-cloudflare"},
    }[name]
    used: dict[str, str] = {}
    hostile = render_config(tmp_path, **overrides, mutate=adversarial(payloads, used))
    assert hostile.files == reference.files
    seen: set[str] = set()
    for relative in hostile.files:
        documents = yaml_docs(hostile.out / relative)
        assert shape(documents) == shape(yaml_docs(reference.out / relative)), relative
        seen |= set(scalars(documents))
    # JSON documents held in a value (the tunnel credentials): their strings count too.
    for value in list(seen):
        if value.startswith("{"):
            with contextlib.suppress(ValueError):
                seen |= set(scalars(json.loads(value)))
                seen.discard(value)
    arrived = {tag: [v for v in seen if tag in v] for tag in used}
    assert sum(bool(values) for values in arrived.values()) > len(ADVERSARIAL)  # most values are used
    changed = [
        (used[tag], [v for v in values if used[tag] not in v])
        for tag, values in arrived.items()
        if any(used[tag] not in v for v in values)
    ]
    assert not changed, f"values changed on the way through: {changed}"


def test_hostile_values_survive_kustomize_too(tmp_path: Path) -> None:
    """The Go YAML parser (kustomize) reads the quoted values as Python's does. Values with
    control characters it reads but cannot write back: it fails the build, never guesses."""
    from tests.test_plugin import plugin

    def build(values: list[str], directory: Path) -> subprocess.CompletedProcess[str]:
        directory.mkdir()
        lines = ["---", "apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: hostile", "data:"]
        lines += [f"  k{i}: {plugin.yaml(value)}" for i, value in enumerate(values)]
        (directory / "configmap.yaml").write_text("\n".join(lines) + "\n")
        (directory / "kustomization.yaml").write_text("resources:\n  - configmap.yaml\n")
        return kustomize_build(directory)[1]

    controls = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
    # kustomize writes NEL raw, which YAML 1.1 readers (ruamel) fold to a space: not compared.
    printable = [v for v in ADVERSARIAL if not controls.search(v) and "\x85" not in v]
    result = build(printable, tmp_path / "printable")
    assert result.returncode == 0, result.stderr
    (config_map,) = yaml_docs_text_all(result.stdout)
    assert config_map["data"] == {f"k{i}": value for i, value in enumerate(printable)}
    for number, value in enumerate(v for v in ADVERSARIAL if controls.search(v)):
        assert build([value], tmp_path / f"control{number}").returncode != 0


def test_every_template_value_goes_through_the_quoting_filter() -> None:
    """One filter writes every value: an expression without `| yaml` at its end is a bug."""
    unquoted = []
    for template in sorted((ROOT / "templates" / "config").rglob("*.j2")):
        for number, line in enumerate(template.read_text().splitlines(), 1):
            for expression in re.findall(r"#\{(.*?)\}#", line):
                if not re.search(r"\|\s*yaml\s*$", expression):
                    unquoted.append(f"{template.relative_to(ROOT)}:{number}: {expression.strip()}")
    assert not unquoted, unquoted
