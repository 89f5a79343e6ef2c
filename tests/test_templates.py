"""The templates render the whole stack: real makejinja, kustomize and yamlfmt on the output.

Three configurations are rendered once per module: the bundled example (one node), a
multi-node one (spegel, VLAN, disk serial, secure boot, disk encryption, a private
repository) and a BGP one.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
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
) -> Rendered:
    """Copy the repository to ``base``, apply overrides to cluster.yaml/nodes.yaml, render."""
    repo = copy_repo(base / "repo")
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
        context = build_context(
            paths,
            sops_decrypt(paths),
        )
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


@pytest.fixture(params=["example", "multi", "bgp"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return request.getfixturevalue(request.param)


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
def builds(example: Rendered, multi: Rendered, bgp: Rendered) -> dict[Path, subprocess.CompletedProcess[str]]:
    directories = [d for r in (example, multi, bgp) for d in kustomization_dirs(r)]
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        return dict(pool.map(kustomize_build, directories))


def built(builds: dict[Path, subprocess.CompletedProcess[str]], directory: Path) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe", pure=True).load_all(builds[directory].stdout) if d]


def test_every_kustomization_builds(rendered: Rendered, builds: dict[Path, Any]) -> None:
    directories = kustomization_dirs(rendered)
    apps = sum(len(a) for a in NAMESPACES.values()) + rendered.data["spegel_enabled"]
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
    expected = sum(len(apps) for apps in NAMESPACES.values()) + rendered.data["spegel_enabled"]
    assert releases == expected


def test_secret_files_are_stringdata_secrets(rendered: Rendered) -> None:
    secrets = [p for p in rendered.files if is_secret_file(p)]
    assert len(secrets) >= 9
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
    tunnel_id = rendered.data["cloudflare_tunnel_id"]  # public: it is in DNS as <id>.cfargotunnel.com
    secrets = {s.strip() for s in rendered.secrets if s.strip() and s != tunnel_id}
    for key in ("cloudflare_token", "cloudflare_tunnel_secret", "onepassword_token", "age_key", "push_token"):
        assert rendered.data[key] in secrets, key
    found: dict[str, set[str]] = {secret: set() for secret in secrets}
    leaks = []
    for relative in rendered.files:
        text = (rendered.out / relative).read_text()
        for secret in secrets:
            pieces = fragments(secret)
            assert pieces, "a secret with nothing to look for"
            if is_secret_file(relative):
                if all(piece in text for piece in pieces):
                    found[secret].add(str(relative))
            elif any(piece in text for piece in pieces):
                leaks.append(f"{relative}: {secret[:6]}…")
    assert not leaks
    # and every secret does reach the cluster, in some secret file
    assert all(found.values()), [s[:6] for s, where in found.items() if not where]


def test_bootstrap_secrets(example: Rendered) -> None:
    age = example.doc("bootstrap/sops-age.sops.yaml")
    assert age["metadata"] == {"name": "sops-age", "namespace": "flux-system"}
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
    assert webhook["stringData"]["token"] == example.data["push_token"]


# --------------------------------------------------------------------------- Flux


def test_cluster_entrypoint_patches_every_child(example: Rendered) -> None:
    root = example.doc("kubernetes/flux/cluster/ks.yaml")
    assert root["metadata"] == {"name": "cluster-apps", "namespace": "flux-system"}
    spec = root["spec"]
    assert spec["path"] == "./kubernetes/apps"
    assert spec["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
    (patch,) = spec["patches"]
    assert patch["target"] == {"group": "kustomize.toolkit.fluxcd.io", "kind": "Kustomization"}
    child = yaml_docs_text(patch["patch"])["spec"]
    assert child["decryption"]["secretRef"]["name"] == "sops-age"
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
    expected = {ns: set(apps) for ns, apps in NAMESPACES.items()}
    if rendered.data["spegel_enabled"]:
        expected["kube-system"].add("spegel")
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
        assert sorted(d["metadata"]["name"] for d in by_kind["Secret"]) == ["cluster-secrets", "sops-age"]
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


# --------------------------------------------------------------------------- bootstrap


def oci_source(rendered: Rendered, namespace: str, app: str) -> dict[str, Any]:
    return rendered.doc(f"kubernetes/apps/{namespace}/{app}/app/ocirepository.yaml")["spec"]


def test_bootstrap_helmfile_installs_the_chain_in_order(rendered: Rendered) -> None:
    helmfile = rendered.out / "bootstrap/helmfile.d/01-apps.yaml"
    releases = yaml_doc(helmfile)["releases"]
    assert [r["name"] for r in releases] == BOOTSTRAP_CHAIN
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
        "ghcr.io/siderolabs/installer": "v1.13.0",
        "ghcr.io/siderolabs/kubelet": "v1.36.0",
    }
    for name in ("00-crds.yaml", "01-apps.yaml"):
        text = (example.out / "bootstrap/helmfile.d" / name).read_text()
        releases = yaml_docs_text(text)["releases"]
        found = dict(annotated.findall(text))
        assert found == {r["chart"].removeprefix("oci://"): str(r["version"]) for r in releases}
    flux = (example.out / "kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml").read_text()
    assert "depName=controlplaneio-fluxcd/distribution" in flux


# --------------------------------------------------------------------------- networking


def test_load_balancer_addresses(rendered: Rendered) -> None:
    data = rendered.data
    pool = rendered.docs("kubernetes/apps/kube-system/cilium/app/networks.yaml")[0]
    assert pool["kind"] == "CiliumLoadBalancerIPPool"
    assert [b["cidr"] for b in pool["spec"]["blocks"]] == [
        f"{data[k]}/32"
        for k in ("cluster_dns_gateway_addr", "cluster_gateway_addr", "cloudflare_gateway_addr")
    ]
    envoy = rendered.docs("kubernetes/apps/network/envoy-gateway/app/envoy.yaml")
    proxies = {d["metadata"]["name"]: d for d in envoy if d["kind"] == "EnvoyProxy"}
    gateways = {d["metadata"]["name"]: d for d in envoy if d["kind"] == "Gateway"}
    for name, key in (
        ("envoy-internal", "cluster_gateway_addr"),
        ("envoy-external", "cloudflare_gateway_addr"),
    ):
        service = proxies[name]["spec"]["provider"]["kubernetes"]["envoyService"]
        assert service["annotations"]["lbipam.cilium.io/ips"] == data[key]
        assert service["name"] == name
        assert gateways[name]["spec"]["infrastructure"]["parametersRef"]["name"] == name
    k8s_gateway = rendered.doc("kubernetes/apps/network/k8s-gateway/app/helmrelease.yaml")["spec"]["values"]
    assert k8s_gateway["service"]["annotations"]["lbipam.cilium.io/ips"] == data["cluster_dns_gateway_addr"]
    assert k8s_gateway["domain"] == "${SECRET_DOMAIN}"
    coredns = rendered.doc("kubernetes/apps/kube-system/coredns/app/helm/values.yaml")
    assert coredns["service"]["clusterIP"] == str(ip_network(data["cluster_svc_cidr"])[10])


def test_cilium_without_bgp_announces_over_l2(example: Rendered) -> None:
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
    assert values["l2announcements"]["enabled"] is False
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
