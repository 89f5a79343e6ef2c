"""Contract tests with the real talhelper and Talos's own config validation, for the bundled
example and every fixture config (multi-node, BGP, VLAN, ...): ``talhelper validate
talconfig``, ``genconfig`` of every node, every machine config through the validation
``talosctl validate --mode metal --strict`` runs (``tests/talosvalidate``, built against
pkg/machinery at the rendered Talos version), the API VIP on every controller (which that
validation cannot see), and every ``gencommand`` form the tasks use, in the shape the fakes
of ``test_talos`` / ``test_bootstrap`` print. Marked ``tools``: without talhelper (or Go)
they skip with the reason; in CI a missing tool fails them unless it cannot be had."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.lib.provision import facts
from tests.conftest import EXAMPLE_OPERATOR, ROOT, copy_repo, example_environment, with_config
from tests.fakes import sops_path
from tests.tools_contract import TALOS_VALIDATE, build_talos_validator, real_tool, run_tool

pytestmark = pytest.mark.tools

CONFIGS = ROOT / "tests" / "fixtures" / "configs"
NAMES = ["example", *sorted(p.name for p in CONFIGS.iterdir() if (p / "nodes.yaml").is_file())]


def talos_env() -> dict[str, str]:
    return {
        "SOPS_AGE_KEY_FILE": str(EXAMPLE_OPERATOR / "age.key"),
        "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR),
    }


def render(base: Path, name: str) -> Path:
    """A copy of the repository with config ``name`` rendered by configure (the real
    talhelper validates it there too), a fresh talsecret encrypted through sops' stdin, and
    ``talhelper genconfig`` run."""
    from tasks.lib.config import configure as pipeline
    from tasks.lib.paths import repo_paths

    talhelper = real_tool("talhelper")
    repo = copy_repo(base / name)
    if name != "example":
        with_config(repo, CONFIGS / name)
        with example_environment():
            pipeline.configure(repo_paths(repo), pipeline.Options(say=lambda line: None))
    talos = repo / "talos"
    secret = run_tool([talhelper, "gensecret"], cwd=talos)
    assert secret.returncode == 0, secret.stderr
    encrypted = subprocess.run(
        [sops_path(), "--encrypt", "--filename-override", "talos/talsecret.sops.yaml", "--input-type", "yaml",
         "--output-type", "yaml", "/dev/stdin"],
        input=secret.stdout, capture_output=True, text=True, cwd=repo, check=True,
    )  # fmt: skip
    (talos / "talsecret.sops.yaml").write_text(encrypted.stdout)
    generated = run_tool([talhelper, "genconfig"], cwd=talos, env=talos_env())
    assert generated.returncode == 0, generated.stdout + generated.stderr
    return repo


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every config, rendered and generated once for the module (in the order of NAMES)."""
    real_tool("talhelper")
    base = tmp_path_factory.mktemp("talos-configs")
    return {name: render(base, name) for name in NAMES}


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_talos_validator(tmp_path_factory.mktemp("talosvalidate"))


def machine_configs(repo: Path) -> list[Path]:
    return sorted((repo / "talos" / "clusterconfig").glob("*.yaml"))


def nodes_of(repo: Path) -> list[facts.TalosNode]:
    return facts.talconfig_nodes(repo / "talos" / "talconfig.yaml")


def cluster_value(repo: Path, key: str) -> Any:
    return yaml.safe_load((repo / "cluster.yaml").read_text()).get(key)


@pytest.mark.parametrize("name", NAMES)
def test_talhelper_validates_the_talconfig(rendered: dict[str, Path], name: str) -> None:
    argv = [real_tool("talhelper"), "validate", "talconfig", "talconfig.yaml", "--env-file", "talenv.yaml"]
    result = run_tool(argv, cwd=rendered[name] / "talos")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout  # e.g. a talosVersion newer than this talhelper knows


@pytest.mark.parametrize("name", NAMES)
def test_every_machine_config_passes_talos_validation(
    rendered: dict[str, Path], validator: str, name: str
) -> None:
    repo = rendered[name]
    configs = machine_configs(repo)
    cluster = yaml.safe_load((repo / "talos" / "talconfig.yaml").read_text())["clusterName"]
    assert [c.name for c in configs] == sorted(f"{cluster}-{n.hostname}.yaml" for n in nodes_of(repo))
    result = subprocess.run(
        [validator, *map(str, configs)], capture_output=True, text=True, timeout=120, check=False
    )
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in reports] == list(map(str, configs))
    assert [
        (Path(r["file"]).name, r.get("error"), r["warnings"]) for r in reports if not r["ok"] or r["warnings"]
    ] == []
    assert result.returncode == 0, result.stderr


def vips(config: Path) -> set[str]:
    """Every API VIP a machine config gives the node: Layer2VIPConfig documents, or a
    ``vip`` on an interface or VLAN of the v1alpha1 document."""
    found: set[str] = set()
    for doc in yaml.safe_load_all(config.read_text()):
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == "Layer2VIPConfig":
            found.add(str(doc.get("name")))
        for interface in ((doc.get("machine") or {}).get("network") or {}).get("interfaces") or []:
            for holder in [interface, *(interface.get("vlans") or [])]:
                if (holder.get("vip") or {}).get("ip"):
                    found.add(str(holder["vip"]["ip"]))
    return found


@pytest.mark.parametrize("name", NAMES)
def test_every_controller_carries_the_api_vip(rendered: dict[str, Path], name: str) -> None:
    """What Talos's validation cannot see: with or without node_vlan_tag, every controller
    announces cluster_api_addr (the `https://VIP:6443` endpoint) and no worker does."""
    repo = rendered[name]
    vip = str(cluster_value(repo, "cluster_api_addr"))
    cluster = yaml.safe_load((repo / "talos" / "talconfig.yaml").read_text())["clusterName"]
    for node in nodes_of(repo):
        config = repo / "talos" / "clusterconfig" / f"{cluster}-{node.hostname}.yaml"
        assert vips(config) == ({vip} if node.controller else set()), (node.hostname, vips(config))


def test_the_vlan_configs_are_covered() -> None:
    vlan = [
        n
        for n in NAMES
        if n != "example" and yaml.safe_load((CONFIGS / n / "cluster.yaml").read_text()).get("node_vlan_tag")
    ]
    assert len(vlan) >= 1 and {"bgp", "multi-node"} <= set(NAMES)


# gencommand ----------------------------------------------------------------------------------
TALOSCONFIG = "--talosconfig=./clusterconfig/talosconfig"


def gencommand(repo: Path, *args: str) -> list[facts.GeneratedCommand]:
    result = run_tool([real_tool("talhelper"), "gencommand", *args], cwd=repo / "talos", env=talos_env())
    assert result.returncode == 0, result.stdout + result.stderr
    commands = facts.parse_gencommand(result.stdout)
    assert commands, f"gencommand {' '.join(args)} printed nothing"
    return commands


def forms(node: facts.TalosNode, cluster: str, talos: str) -> dict[tuple[str, ...], str]:
    """Every gencommand the tasks run for ``node`` -> the line the fakes expect (a regex)."""
    reset = facts.extra_flags("--reboot", "--graceful=true", "--wait=false")
    ip = re.escape(node.addresses[0])
    config = re.escape(f"--file=./clusterconfig/{cluster}-{node.hostname}.yaml")
    image = re.escape(f"--image={node.image_url}:{talos}") if node.image_url else r"--image=\S+"
    return {
        ("apply", "--node", node.addresses[0], facts.extra_flags("--mode=auto", "--dry-run")):
            rf"talosctl apply-config {TALOSCONFIG} --nodes={ip} {config} --mode=auto --dry-run",
        ("apply", "--node", node.addresses[0], facts.extra_flags("--mode=staged")):
            rf"talosctl apply-config {TALOSCONFIG} --nodes={ip} {config} --mode=staged",
        ("upgrade", "--node", node.addresses[0], facts.extra_flags("--timeout=10m")):
            rf"talosctl upgrade {TALOSCONFIG} --nodes={ip} {image} --timeout=10m",
        ("reset", "--node", node.addresses[0], reset):
            rf"talosctl reset {TALOSCONFIG} --nodes={ip} --reboot --graceful=true --wait=false",
    }  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_gencommand_prints_what_the_tasks_expect(rendered: dict[str, Path], name: str) -> None:
    repo = rendered[name]
    talenv = yaml.safe_load((repo / "talos" / "talenv.yaml").read_text())
    cluster = yaml.safe_load((repo / "talos" / "talconfig.yaml").read_text())["clusterName"]
    nodes = nodes_of(repo)
    for node in nodes:
        for args, expected in forms(node, cluster, talenv["talosVersion"]).items():
            (command,) = gencommand(repo, *args)
            assert re.fullmatch(expected, command.line), (args, command.line)
            assert command.node == node.addresses[0]
    # the cluster-wide forms: one command per node (apply, reset) or one for the cluster
    insecure = gencommand(repo, "apply", facts.extra_flags("--insecure"))
    assert sorted(c.node for c in insecure) == sorted(n.addresses[0] for n in nodes)
    assert all(c.argv[-1] == "--insecure" for c in insecure)
    reset = gencommand(repo, "reset", facts.extra_flags("--reboot", "--graceful=false", "--wait=false"))
    assert sorted(c.node for c in reset) == sorted(n.addresses[0] for n in nodes)
    first_controller = next(n for n in nodes if n.controller).addresses[0]
    for args in (["bootstrap"], ["kubeconfig", facts.extra_flags("..", "--force")]):
        (command,) = gencommand(repo, *args)
        assert command.node == first_controller and command.argv[1] == args[0]
    (k8s,) = gencommand(repo, "upgrade-k8s", facts.extra_flags(f"--to={talenv['kubernetesVersion']}"))
    assert f"--to={talenv['kubernetesVersion']}" in k8s.argv and k8s.node == first_controller


def test_the_validation_program_requires_the_rendered_talos_version() -> None:
    """tests/talosvalidate validates with the machinery of the Talos version the nodes run."""
    talenv = yaml.safe_load((ROOT / "templates" / "config" / "talos" / "talenv.yaml.j2").read_text())
    go_mod = (TALOS_VALIDATE / "go.mod").read_text()
    assert f"github.com/siderolabs/talos/pkg/machinery {talenv['talosVersion']}\n" in go_mod
