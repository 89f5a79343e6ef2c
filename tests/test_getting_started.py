"""docs/getting-started.md, walked: every command of the guide runs, in its order, on a copy
of the repository that is a clone of a repository standing in for GitHub (a bare one, through
git's ``insteadOf``). What needs machines or a cluster (talosctl, talhelper, kubectl's cluster
calls, helmfile, helm, flux) answers from fakes in the real tools' shapes; everything else is
real: the task library, git, sops + age, makejinja, kubectl's kustomize. What the guide asks
you to do by hand (edit cluster.yaml, nodes.yaml, the secrets) is done by the walk at the
same point."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tasks.lib.tools.runner import TOOLS_DIR_ENV
from tests import talos_shapes as shapes
from tests.conftest import ROOT, copy_repo, git
from tests.fakes import FakeTools, fail, ok, publish
from tests.test_quickstart import quick_start
from tests.tools_contract import TOOLS_DIR

GUIDE = ROOT / "docs" / "getting-started.md"
NODE = "192.168.1.10"
NEW_NODE = "192.168.1.11"
MACS = {NODE: "00:00:5e:00:53:10", NEW_NODE: "00:00:5e:00:53:11"}
SERIALS = {NODE: "S64DNF0R000010", NEW_NODE: "S64DNF0R000011"}
SCHEMATIC = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
TALOSCONFIG = "--talosconfig=./clusterconfig/talosconfig"

pytestmark = pytest.mark.slow


def guide_commands(text: str) -> list[str]:
    """Every command of the guide: each line of its ``sh`` blocks, in order."""
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


# --------------------------------------------------------------------------- the stand-ins

CRDS = "".join(
    f"---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {name}\n"
    for name in ("gateways.gateway.networking.k8s.io", "certificates.cert-manager.io")
)


def nodes_json(*names: str) -> str:
    return json.dumps(
        {
            "items": [
                {"metadata": {"name": n}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
                for n in names
            ]
        }
    )


def generated(*commands: str) -> dict[str, object]:
    """What ``talhelper gencommand`` prints: talosctl commands, each ended by ``;``."""
    return ok("".join(f"{command};\n" for command in commands))


def maintenance_node(ip: str) -> list[tuple[str, dict[str, object]]]:
    """talosctl's answers for a machine booted from the ISO (``talos.discover`` reads them)."""
    where = f"--insecure --nodes {ip} --output json"
    return [
        (f"get links {where}", ok(shapes.loopback(ip) + shapes.link(ip, "enp2s0", MACS[ip], carrier=True))),
        (
            f"get disks {where}",
            ok(
                shapes.disk(
                    ip, "nvme0n1", 500_107_862_016, "500 GB", model="Samsung SSD 980", serial=SERIALS[ip]
                )
            ),
        ),
        (f"get systeminformation {where}", ok(shapes.system_information(ip))),
        (f"get extensions {where}", ok(shapes.schematic_extension(ip, SCHEMATIC))),
    ]


def script_fakes(fakes: FakeTools, kubectl: str) -> None:
    config = "--file=./clusterconfig/kubernetes-k8s-0.yaml"
    apply = f"talosctl apply-config {TALOSCONFIG} --nodes={NODE} {config} --insecure"
    machine_configs = {
        f"clusterconfig/kubernetes-{name}.yaml": "version: v1alpha1\n" for name in ("k8s-0", "k8s-1")
    }
    fakes.script(
        "talhelper",
        ("gensecret", ok("cluster:\n  id: abc\n  secret: a-talos-secret\n")),
        (
            "genconfig",
            {"exit": 0, "write": {"clusterconfig/talosconfig": "context: kubernetes\n", **machine_configs}},
        ),
        ("gencommand apply", generated(apply)),
        ("gencommand bootstrap", generated(f"talosctl bootstrap {TALOSCONFIG} --nodes={NODE}")),
        ("gencommand kubeconfig", generated(f"talosctl kubeconfig {TALOSCONFIG} .. --force --nodes={NODE}")),
        (None, ok()),
    )
    fakes.script(
        "talosctl",
        *maintenance_node(NODE),
        *maintenance_node(NEW_NODE),
        ("kubeconfig", {"exit": 0, "write": {"../kubeconfig": "apiVersion: v1\nkind: Config\n"}}),
        (f"version --nodes {NODE}", ok(shapes.version(NODE, "v1.13.0"))),
        (f"version --nodes {NEW_NODE}", ok(shapes.version(NEW_NODE, "v1.13.0"))),
        (None, ok()),
    )
    fakes.script(
        "kubectl",
        ("kustomize", {"exec": kubectl}),  # the real build, for configure and dev.validate
        ("get nodes --output=json", ok(nodes_json("k8s-0"))),
        ("get namespaces", ok("default kube-node-lease kube-public kube-system")),
        ("diff", fail("", code=1)),  # everything is new
        ("get receivers", ok("/hook/5e1f0c")),
        (None, ok()),
    )
    fakes.script("helmfile", ("template", ok(CRDS)), (None, ok()))
    fakes.script("helm", ("list", ok("[]")), (None, ok()))
    fakes.script("flux", (None, ok()))


# --------------------------------------------------------------------------- what you do by hand

EDITOR = """\
import sys, yaml
path = sys.argv[-1]
secrets = yaml.safe_load(open(path))
secrets["cloudflare_token"] = "my-own-cloudflare-token-1f9a"
secrets["cloudflare_tunnel"] = {
    "AccountTag": "9c0e1d2f3a4b5c6d7e8f9a0b1c2d3e4f",
    "TunnelID": "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "TunnelSecret": "bXktb3duLXR1bm5lbC1zZWNyZXQ=",
}
secrets.pop("onepassword_connect", None)
open(path, "w").write(yaml.safe_dump(secrets))
"""


def discovered(walk: Walk, command: str) -> str:
    """The nodes.yaml entry ``command`` (a ``talos.discover``) printed, indented to sit
    under ``nodes:`` — what you paste."""
    output = walk.output(command)
    entry = output[output.index("- name:") :]
    return "".join(f"  {line}\n" for line in entry.splitlines())


def your_settings(walk: Walk) -> None:
    """Step 4: your repository, domain and machine instead of the example's."""
    cluster = walk.repo / "cluster.yaml"
    cluster.write_text(
        cluster.read_text()
        .replace("repository_name: example/home-ops", "repository_name: octo/home-ops")
        .replace("cloudflare_domain: example.com", "cloudflare_domain: homelab.test")
    )
    first = next(c for c, _ in walk.done if c.startswith("inv talos.discover"))
    (walk.repo / "nodes.yaml").write_text("---\nnodes:\n" + discovered(walk, first))


def empty_nodes(walk: Walk) -> None:
    """Step 3: the example's machine out of nodes.yaml, before reading your first one."""
    (walk.repo / "nodes.yaml").write_text("---\nnodes: []\n")


def another_node(walk: Walk) -> None:
    """Step 11: the new machine's entry, pasted into nodes.yaml."""
    last = [c for c, _ in walk.done if c.startswith("inv talos.discover")][-1]
    nodes = walk.repo / "nodes.yaml"
    nodes.write_text(nodes.read_text() + discovered(walk, last))


# --------------------------------------------------------------------------- the walk


@dataclass
class Walk:
    repo: Path
    env: dict[str, str]
    done: list[tuple[str, subprocess.CompletedProcess[str]]] = field(default_factory=list)

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """``command`` in a shell in the repository; an ``export`` stays for the next ones,
        as in the terminal you follow the guide in."""
        script = (
            f"{command} && env -0 > {self.repo.parent / 'env'}" if command.startswith("export ") else command
        )
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
        self.done.append((command, result))
        if command.startswith("export ") and result.returncode == 0:
            exported = (self.repo.parent / "env").read_text().split("\0")
            self.env = dict(entry.split("=", 1) for entry in exported if "=" in entry)
        return result

    def output(self, command: str, index: int = 0) -> str:
        runs = [r for c, r in self.done if c == command]
        return runs[index].stdout + runs[index].stderr


@pytest.fixture
def walk(tmp_path: Path, fake_tools: FakeTools) -> Walk:
    """A clone of your repository: the example, pushed to a bare repository that stands in
    for GitHub, with the branch tracking it, and nothing of the operator's yet."""
    kubectl = shutil.which("kubectl", path=os.environ["PATH"].split(os.pathsep, 1)[1])
    assert kubectl, "the real kubectl builds the kustomizations"
    script_fakes(fake_tools, kubectl)
    repo = copy_repo(tmp_path / "repo")
    publish(repo)
    git(repo, "fetch", "-q", "origin")
    git(repo, "branch", "-q", "--set-upstream-to=origin/main")
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    env = {
        **os.environ,
        "EDITOR": f"{sys.executable} {editor}",
        "GIT_AUTHOR_NAME": "you",
        "GIT_AUTHOR_EMAIL": "you@example.net",
        "GIT_COMMITTER_NAME": "you",
        "GIT_COMMITTER_EMAIL": "you@example.net",
        "NO_COLOR": "1",
        # Your clone keeps what `inv doctor --install` built in its own .tools/bin; this copy
        # has none, so it uses this checkout's (gitleaks: in CI `inv sops.check` needs it).
        TOOLS_DIR_ENV: str(TOOLS_DIR),
    }
    return Walk(repo, env)


#: Before the Nth run of a command, what you do by hand at that point of the guide.
BY_HAND: dict[tuple[str, int], Callable[[Walk], None]] = {
    (f"inv talos.discover --ip {NODE} --name k8s-0", 0): empty_nodes,
    ("inv sops.edit cluster.sops.yaml", 0): your_settings,
    ("inv configure", 1): another_node,
}


def works(command: str, result: subprocess.CompletedProcess[str]) -> bool:
    """Whether ``command`` did what the guide says. `inv doctor` exits 1 while a tool is
    missing (`inv sops.check` without gitleaks passes with a warning, except in CI, which
    builds gitleaks first)."""
    if command == "inv doctor":
        return result.returncode in (0, 1)
    return result.returncode == 0


def test_every_command_of_the_guide_works_in_order(walk: Walk) -> None:
    commands = guide_commands(GUIDE.read_text())
    install, *steps = commands
    # The install line is the README's quick start (which CI runs on a fresh checkout).
    assert quick_start(ROOT)[0].startswith(install)
    seen: dict[str, int] = {}
    for command in steps:
        count = seen.get(command, 0)
        seen[command] = count + 1
        if (command, count) in BY_HAND:
            BY_HAND[(command, count)](walk)
        result = walk.run(command)
        assert works(command, result), (
            f"`{command}` exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
        assert "a bug in home-ops" not in result.stderr, result.stderr

    # What each step says to check.
    assert "created age.key" in walk.output("inv init")
    configured = walk.output("inv configure")
    assert "configure: done" in configured and "the example's values are still in place" not in configured
    assert "git: your commit is on origin/main, which Flux deploys" in walk.output("inv bootstrap.apps")
    assert (walk.repo / "kubeconfig").is_file() and (walk.repo / "talos/talsecret.sops.yaml").is_file()
    assert (walk.repo / "kubernetes/apps/default/podinfo/ks.yaml").is_file()
    assert "/hook/" in walk.output(next(c for c in steps if "receivers" in c))
    remote = walk.repo.parent / "repo-remote.git"
    assert git(remote, "log", "--format=%s", "main").split("\n")[:3] == ["Add k8s-1", "podinfo", "My cluster"]
    talconfig = (walk.repo / "talos/talconfig.yaml").read_text()
    assert "k8s-1" in talconfig and SERIALS[NEW_NODE] in talconfig and MACS[NEW_NODE] in talconfig
    assert walk.env["KUBECONFIG"] == str(walk.repo / "kubeconfig")


def test_the_guide_covers_each_step_the_issue_names() -> None:
    text = GUIDE.read_text()
    commands = guide_commands(text)
    for needed in (
        "inv init",
        "inv configure",
        "git push",
        "inv bootstrap.talos",
        "inv bootstrap.apps",
        "inv flux.status",
        "inv dev.validate",
    ):
        assert needed in commands, needed
    assert any(c.startswith("inv app.new ") for c in commands)
    for title in ("Add an app", "Add a node", "What Ready looks like", "When something is stuck"):
        assert f"## {title}" in text or re.search(rf"^## \d+\. {title}", text, re.M), title
    assert "factory.talos.dev" in text and "schematic" in text
