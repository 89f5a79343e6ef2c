"""Day 2 on the bundled example: the user's own apps and edits survive `configure`, and Flux's
view (`dev.validate`, the offline validator) still deploys them. Real makejinja, sops + age,
kustomize and git; nothing is faked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tasks.lib.config import configure as pipeline
from tasks.lib.errors import UserError
from tasks.lib.fluxtree import validate
from tasks.lib.paths import repo_paths
from tests.conftest import git, replace_in, rewrite_secrets

DEFAULT_KUSTOMIZATION = "kubernetes/apps/default/kustomization.yaml"

KS = """\
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {name}
spec:
  interval: 1h
  path: ./kubernetes/apps/{namespace}/{name}/app
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
    namespace: flux-system
  targetNamespace: {namespace}
"""
APP_KUSTOMIZATION = """\
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ./configmap.yaml
"""
CONFIGMAP = """\
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  greeting: hello from ${{SECRET_DOMAIN}}
"""


def add_app(repo: Path, namespace: str, name: str) -> None:
    """An app the way the bundled ones are laid out: ks.yaml and app/."""
    folder = repo / "kubernetes/apps" / namespace / name
    (folder / "app").mkdir(parents=True)
    (folder / "ks.yaml").write_text(KS.format(name=name, namespace=namespace))
    (folder / "app/kustomization.yaml").write_text(APP_KUSTOMIZATION)
    (folder / "app/configmap.yaml").write_text(CONFIGMAP.format(name=name))


def add_namespace(repo: Path, namespace: str, apps: list[str]) -> None:
    folder = repo / "kubernetes/apps" / namespace
    folder.mkdir(parents=True)
    (folder / "namespace.yaml").write_text(
        f"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"
    )
    (folder / "kustomization.yaml").write_text(
        "---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {namespace}\ncomponents:\n  - ../../components/sops\nresources:\n"
        "  - ./namespace.yaml\n" + "".join(f"  - ./{app}/ks.yaml\n" for app in apps)
    )
    for app in apps:
        add_app(repo, namespace, app)


def configure(repo: Path, **options: Any) -> pipeline.Summary:
    return pipeline.configure(repo_paths(repo), pipeline.Options(say=lambda line: None, **options))


def change_cluster_yaml(repo: Path) -> None:
    cluster = repo / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("192.168.1.145", "192.168.1.140"))


def deployed(repo: Path) -> dict[str, Any]:
    """Flux's view: every Kustomization the offline validator builds, and its problems."""
    tree = validate(repo)
    assert [p.message for p in tree.problems] == []
    return {ks.id: ks for ks in tree.kustomizations.values()}


def test_an_added_app_is_listed_and_still_deployed_after_configure(example_repo: Path) -> None:
    add_app(example_repo, "default", "myapp")
    change_cluster_yaml(example_repo)
    summary = configure(example_repo)
    assert DEFAULT_KUSTOMIZATION in summary.written
    text = (example_repo / DEFAULT_KUSTOMIZATION).read_text()
    assert text.endswith("  - ./echo/ks.yaml\n  - ./myapp/ks.yaml\n")
    kustomizations = deployed(example_repo)
    assert kustomizations["default/myapp"].built
    assert [o.name for o in kustomizations["default/myapp"].objects] == ["myapp"]
    configure(example_repo, check=True)
    assert configure(example_repo).up_to_date
    # Removing the folder unlists it.
    git(example_repo, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "kubernetes/apps/default/myapp")
    for path in sorted((example_repo / "kubernetes/apps/default/myapp").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (example_repo / "kubernetes/apps/default/myapp").rmdir()
    configure(example_repo)
    assert "myapp" not in (example_repo / DEFAULT_KUSTOMIZATION).read_text()
    assert "default/myapp" not in deployed(example_repo)


def test_an_app_listed_by_hand_no_longer_blocks_configure(example_repo: Path) -> None:
    """The first thing anyone does: add the app and list it in the generated kustomization
    themselves. The next configure merges instead of refusing."""
    add_app(example_repo, "default", "myapp")
    kustomization = example_repo / DEFAULT_KUSTOMIZATION
    kustomization.write_text(
        kustomization.read_text().replace("  - ./echo/ks.yaml\n", "  - ./myapp/ks.yaml\n  - ./echo/ks.yaml\n")
    )
    change_cluster_yaml(example_repo)
    configure(example_repo)
    assert kustomization.read_text().count("./myapp/ks.yaml") == 1
    assert deployed(example_repo)["default/myapp"].built


def test_an_own_namespace_folder_is_kept_and_deployed(example_repo: Path) -> None:
    add_namespace(example_repo, "media", ["jellyfin"])
    change_cluster_yaml(example_repo)
    configure(example_repo)
    assert (example_repo / "kubernetes/apps/media/kustomization.yaml").is_file()
    kustomizations = deployed(example_repo)
    assert kustomizations["media/jellyfin"].built
    configure(example_repo, check=True)


def test_a_hand_edit_of_a_generated_app_survives_a_config_change(example_repo: Path) -> None:
    values = example_repo / "kubernetes/apps/default/echo/app/helmrelease.yaml"
    values.write_text(
        values.read_text().replace(
            "              limits:\n                memory: 64Mi",
            "              limits:\n                memory: 128Mi",
        )
    )
    change_cluster_yaml(example_repo)
    summary = configure(example_repo)
    assert "kubernetes/apps/default/echo/app/helmrelease.yaml" in summary.edits_kept
    assert "memory: 128Mi" in values.read_text()
    configure(example_repo, check=True)


def test_an_invalid_merge_result_is_refused_and_nothing_is_written(example_repo: Path) -> None:
    add_app(example_repo, "default", "myapp")
    (example_repo / "kubernetes/apps/default/myapp/ks.yaml").write_text("---\nkind: [unclosed\n")
    change_cluster_yaml(example_repo)
    before = (example_repo / DEFAULT_KUSTOMIZATION).read_text()
    with pytest.raises(UserError) as raised:
        configure(example_repo)
    assert raised.value.lines[0] == "the rendered tree does not validate; nothing was written:"
    assert any(
        line.startswith("kubernetes/apps/default: kustomize build failed") for line in raised.value.lines
    )
    assert (example_repo / DEFAULT_KUSTOMIZATION).read_text() == before


def edit_secrets(repo: Path, extra: str) -> None:
    """Append ``extra`` to the decrypted cluster.sops.yaml and encrypt it again (in memory)."""
    rewrite_secrets(repo, lambda plain: plain + extra)


def test_own_variables_for_cluster_secrets_live_in_cluster_sops_yaml(example_repo: Path) -> None:
    add_app(example_repo, "default", "myapp")
    configmap = example_repo / "kubernetes/apps/default/myapp/app/configmap.yaml"
    configmap.write_text(configmap.read_text() + "  mail: ${SMTP_HOST}\n")
    configure(example_repo)
    problems = validate(example_repo).problems
    assert [p.kind for p in problems] == ["unresolved-variable"]  # nothing provides it yet
    assert "SMTP_HOST" in problems[0].message
    edit_secrets(example_repo, 'cluster_secrets:\n  SMTP_HOST: "smtp.example.net"\n')
    summary = configure(example_repo)
    assert "kubernetes/components/sops/cluster-secrets.sops.yaml" in summary.encrypted
    assert "bootstrap/cluster-secrets.sops.yaml" in summary.encrypted
    secret = (example_repo / "kubernetes/components/sops/cluster-secrets.sops.yaml").read_text()
    assert "SMTP_HOST: ENC[" in secret and "smtp.example.net" not in secret
    deployed(example_repo)  # no problem left: the variable has a creator


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ("  1ST: x\n", "'1ST' is not a variable name"),
        ("  SECRET_DOMAIN: x\n", "SECRET_DOMAIN is set by configure"),
        ("  PORT: 25\n", "PORT must be a string (quote numbers and booleans)"),
    ],
)
def test_bad_own_variables_are_one_line_each(example_repo: Path, variables: str, message: str) -> None:
    edit_secrets(example_repo, "cluster_secrets:\n" + variables)
    with pytest.raises(UserError) as raised:
        configure(example_repo)
    (line,) = raised.value.lines
    assert line.startswith("cluster.sops.yaml:") and "cluster_secrets: " + message in line


# --------------------------------------------------------------------------- through `inv`

K8S_GATEWAY = "kubernetes/apps/network/k8s-gateway/app/helmrelease.yaml"
ENVOY = "kubernetes/apps/network/envoy-gateway/app/envoy.yaml"
ECHO = "kubernetes/apps/default/echo/app/helmrelease.yaml"


def inv(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``inv ARGS`` in ``repo`` as a user runs it (the test-only key selected)."""
    return subprocess.run(
        [sys.executable, "-m", "tasks", *args], cwd=repo, capture_output=True, text=True, timeout=600
    )


def move_gateways(repo: Path) -> None:
    """A cluster.yaml change that re-renders the k8s-gateway and envoy files."""
    replace_in(
        repo / "cluster.yaml",
        ("cluster_dns_gateway_addr: 192.168.1.146", "cluster_dns_gateway_addr: 192.168.1.156"),
        ("cluster_gateway_addr: 192.168.1.147", "cluster_gateway_addr: 192.168.1.157"),
    )


def files(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in repo.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }


def test_inv_configure_keeps_your_edits_and_your_app_and_flux_still_deploys_them(example_repo: Path) -> None:
    add_app(example_repo, "default", "myapp")
    mine = ("---\n", "---\n# mine: the LAN resolver\n")
    replace_in(example_repo / K8S_GATEWAY, mine)  # the render changes it
    replace_in(example_repo / ECHO, ("memory: 64Mi", "memory: 128Mi"))  # the render leaves it
    move_gateways(example_repo)
    result = inv(example_repo, "configure")
    assert result.returncode == 0, result.stderr
    assert f"configure: merged your edit into the new render: {K8S_GATEWAY}\n" in result.stdout
    assert f"configure: your edits kept as they are: {ECHO}\n" in result.stdout
    gateway = (example_repo / K8S_GATEWAY).read_text()
    assert "# mine: the LAN resolver" in gateway and '"192.168.1.156"' in gateway
    assert "memory: 128Mi" in (example_repo / ECHO).read_text()
    assert "  - ./myapp/ks.yaml\n" in (example_repo / DEFAULT_KUSTOMIZATION).read_text()
    validated = inv(example_repo, "dev.validate", "--json")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "default/myapp" in validated.stdout
    assert inv(example_repo, "configure", "--check").returncode == 0


def test_inv_configure_reports_each_conflicting_edit_on_one_line_and_loses_nothing(
    example_repo: Path,
) -> None:
    replace_in(example_repo / K8S_GATEWAY, ('"192.168.1.146"', '"192.168.1.166"'))
    replace_in(example_repo / ENVOY, ('"192.168.1.147"', '"192.168.1.167"'))
    move_gateways(example_repo)
    before = files(example_repo)
    for args, verb in (
        (["configure"], "nothing was written:"),
        (["configure", "--check"], "`inv configure` stops on it:"),
    ):
        result = inv(example_repo, *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.splitlines()
        (header,) = [line for line in lines if "cannot take the new render" in line]
        assert header.endswith("2 generated files cannot take the new render; " + verb)
        for name in (ENVOY, K8S_GATEWAY):
            assert [line for line in lines if line.strip().startswith(f"{name}:")] == [
                f"  {name}: your edit and the new render change the same lines"
            ]
        assert files(example_repo) == before
    # --force overwrites, names each file with what is lost, and where your version still is.
    yours = {name: before[name].decode() for name in (ENVOY, K8S_GATEWAY)}
    forced = inv(example_repo, "configure", "--force")
    assert forced.returncode == 0, forced.stderr
    for name, text in yours.items():
        assert f"configure: overwrote {name} — lost:\n" in forced.stdout
        blob = re.search(
            rf"overwrote {re.escape(name)} — lost:\n(?:.*\n)*?.*git cat-file -p (\w+)`", forced.stdout
        )
        assert blob is not None, forced.stdout
        assert git(example_repo, "cat-file", "-p", blob[1]) == text
