"""A cluster of Talos VMs as ``talosctl``, ``kubectl`` and ``flux`` see it, for the tests of
``inv dev.cluster-test``: the answers are the real tools' output shapes (``talosctl get ...
--insecure -o json`` of a QEMU VM from tests/talos_shapes.py, ``kubectl get ... -o json``
lists with their Ready conditions, ``flux reconcile``'s lines).

It answers two ways. :meth:`Cluster.answer` in the test's own process (through the runner's
``observe``: fast, for the failure injected at every step), and as executables on ``PATH``
(:func:`install`): the journey's commands then run as real processes, which log their
arguments, working directory and the variables that choose a cluster (KUBECONFIG, ...),
so a test sees what a real tool would have been given.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests import talos_shapes as shapes

ROOT = Path(__file__).resolve().parent.parent
#: The fakes on PATH.
TOOLS = ("talosctl", "kubectl", "flux")
#: What a fake on PATH records of its environment: what decides which cluster a tool talks to.
RECORDED = ("KUBECONFIG", "TALOSCONFIG", "SOPS_AGE_KEY_FILE", "HOME_OPS_OPERATOR_DIR")

FLUX_OBJECTS = {
    "fluxinstances.fluxcd.controlplane.io": ("FluxInstance", "flux-system", "flux"),
    "gitrepositories.source.toolkit.fluxcd.io": ("GitRepository", "flux-system", "flux-system"),
    "ocirepositories.source.toolkit.fluxcd.io": ("OCIRepository", "default", "echo"),
    "kustomizations.kustomize.toolkit.fluxcd.io": ("Kustomization", "flux-system", "cluster-apps"),
    "helmreleases.helm.toolkit.fluxcd.io": ("HelmRelease", "default", "echo"),
}


def ready(kind: str, namespace: str | None, name: str, ok: bool = True, message: str = "") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "generation": 2}
    if namespace:
        metadata["namespace"] = namespace
    condition = {
        "type": "Ready",
        "status": "True" if ok else "False",
        "reason": "Progressing",
        "message": message,
    }
    return {
        "kind": kind,
        "metadata": metadata,
        "status": {"conditions": [condition], "observedGeneration": 2},
    }


def listing(*found: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(found)})


def mac_of(node: str) -> str:
    return f"02:00:7f:00:00:{int(node.rsplit('.', 1)[1]):02x}"


@dataclass
class Cluster:
    """``nodes`` Ready nodes; a Secret holding ``sops_value``; one pod and one HelmRelease
    failing in the listings the diagnostics take."""

    nodes: int
    sops_value: str
    destroy_fails: bool = False

    def answer(self, tool: str, args: list[str]) -> tuple[int, str, str]:
        """exit code, stdout, stderr"""
        if tool == "talosctl" and args[:2] == ["cluster", "destroy"] and self.destroy_fails:
            return 1, "", "error: failed to destroy: qemu still running\n"
        return 0, getattr(self, tool)(args), ""

    def talosctl(self, args: list[str]) -> str:
        if args[:2] == ["cluster", "create"]:
            return "creating the cluster\n"
        if args[:2] == ["cluster", "destroy"]:
            return "destroying the cluster\n"
        if args[0] == "get":
            node = args[args.index("--nodes") + 1]
            return shapes.qemu_node(node, mac_of(node))[args[1]]
        if args[0] == "dmesg":
            return "[    0.000000] Linux version 6.18.5-talos\n"
        raise AssertionError(f"unexpected talosctl {args}")

    def kubectl(self, args: list[str]) -> str:
        assert args[0] == "get", args
        kind = args[1]
        if kind == "nodes":
            return listing(*(ready("Node", None, f"k8s-{i}") for i in range(self.nodes)))
        if kind == "pods" and "--all-namespaces" in args:  # the diagnostics: one is failing
            return listing(
                ready("Pod", "kube-system", "cilium-abcde"),
                ready("Pod", "flux-system", "flux-operator-1", ok=False, message="back-off restarting"),
            )
        if kind == "pods":
            namespace = args[args.index("--namespace") + 1]
            return listing(ready("Pod", namespace, f"{namespace}-pod"))
        if kind == "secret":
            value = base64.b64encode(self.sops_value.encode()).decode()
            return json.dumps({"kind": "Secret", "data": {"value": value}})
        if kind == "events":
            return "flux-system 2m Warning BackOff pod/flux-operator-1 Back-off restarting failed container\n"
        if kind in FLUX_OBJECTS:
            what, namespace, name = FLUX_OBJECTS[kind]
            selector = [arg for arg in args if arg.startswith("--field-selector=metadata.name=")]
            if selector:
                name = selector[0].rsplit("=", 1)[1]
            return listing(ready(what, namespace, name))
        if "," in kind:  # the diagnostics' all-Flux listing
            return listing(
                ready("HelmRelease", "network", "cloudflared", ok=False, message="install retries exhausted")
            )
        raise AssertionError(f"unexpected kubectl {args}")

    def flux(self, args: list[str]) -> str:
        assert args[:2] == ["reconcile", "kustomization"], args
        return "► annotating GitRepository flux-system\n✔ applied revision main@sha1:0123\n"


# --------------------------------------------------------------------------- on PATH

SCRIPT = """#!{python}
import sys
sys.path.insert(0, {root!r})
from tests.cluster_fake import main
sys.exit(main(__file__, sys.argv[1:]))
"""


def install(bin_dir: Path, cluster: Cluster) -> Path:
    """talosctl, kubectl and flux answering as ``cluster`` in ``bin_dir`` (put it first on
    PATH); their calls go to ``calls.jsonl`` there."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "cluster.json").write_text(json.dumps(asdict(cluster)))
    for tool in TOOLS:
        path = bin_dir / tool
        path.write_text(SCRIPT.format(python=sys.executable, root=str(ROOT)))
        path.chmod(0o755)
    return bin_dir


def calls(bin_dir: Path) -> list[dict[str, Any]]:
    log = bin_dir / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def main(script: str, args: list[str]) -> int:
    here = Path(script).resolve().parent
    tool = Path(script).name
    cluster = Cluster(**json.loads((here / "cluster.json").read_text()))
    env = {name: os.environ.get(name, "") for name in RECORDED}
    with (here / "calls.jsonl").open("a") as log:  # one short line per call: appends do not interleave
        log.write(json.dumps({"tool": tool, "argv": args, "cwd": os.getcwd(), "env": env}) + "\n")
    code, out, err = cluster.answer(tool, args)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code
