"""What ``inv doctor`` knows about each external tool: how to ask its version, how to read
the answer, what ``.mise.toml`` pins, and which tasks need it. Pure data and parsing.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

VERSION = re.compile(r"v?(\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Tool:
    """An external executable the tasks may run."""

    name: str  # executable
    mise_key: str  # the part of the .mise.toml key after the backend, e.g. "flux2"
    version_argv: tuple[str, ...]
    purpose: str

    def argv(self) -> list[str]:
        return [self.name, *self.version_argv]


TOOLS: tuple[Tool, ...] = (
    Tool("sops", "sops", ("--disable-version-check", "--version"), "encrypt and decrypt secrets"),
    Tool("kubectl", "kubectl", ("version", "--client"), "talk to the cluster; kustomize built in"),
    Tool("kustomize", "kustomize", ("version",), "build kustomizations (or `kubectl kustomize`)"),
    Tool("talhelper", "talhelper", ("--version",), "render Talos machine configs"),
    Tool("talosctl", "talos", ("version", "--client", "--short"), "talk to Talos nodes"),
    Tool("flux", "flux2", ("version", "--client"), "reconcile and inspect Flux"),
    Tool("helm", "helm", ("version", "--short"), "render and install charts"),
    Tool("helmfile", "helmfile", ("--version",), "bootstrap the first apps"),
    Tool("age", "age", ("--version",), "age encryption (sops has it built in)"),
    Tool("kubeconform", "kubeconform", ("-v",), "schema-check manifests"),
    Tool("cloudflared", "cloudflared", ("--version",), "create the Cloudflare tunnel"),
    Tool("cilium", "cilium-cli", ("version", "--client"), "inspect Cilium"),
    Tool("yamlfmt", "yamlfmt", ("-version",), "format YAML (inv lint)"),
    Tool("pre-commit", "pre-commit", ("--version",), "run the lint hooks"),
    Tool("actionlint", "actionlint", ("-version",), "lint GitHub Actions workflows"),
)

#: Task -> the tools it cannot run without ("a|b" means either one).
TASK_TOOLS: dict[str, tuple[str, ...]] = {
    "configure": ("sops", "kubectl|kustomize"),
    "sops.*": ("sops",),
    "lint": ("pre-commit",),
    "bootstrap.talos": ("talhelper", "talosctl", "sops"),
    "bootstrap.apps": ("kubectl", "helmfile", "helm", "sops"),
    "talos.*": ("talhelper", "talosctl"),
    "flux.* / reconcile": ("flux",),
    "dev.validate": ("kubectl|kustomize",),
}

#: The main job: doctor exits 1 when it cannot run.
MAIN_TASK = "configure"


def parse_version(output: str) -> str | None:
    """The first version number in a tool's ``--version`` output."""
    match = VERSION.search(output)
    return match.group(1) if match else None


def mise_pins(mise_file: Path) -> dict[str, str]:
    """``.mise.toml`` key (after the backend and owner) -> pinned version."""
    try:
        tools = tomllib.loads(mise_file.read_text()).get("tools", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {key.rsplit("/", 1)[-1].split(":")[-1]: str(version) for key, version in tools.items()}


def python_pins(pyproject: Path) -> dict[str, str]:
    """Distribution name -> version pinned with ``==`` in ``pyproject.toml``."""
    try:
        project = tomllib.loads(pyproject.read_text()).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    pins = (dep.split("==", 1) for dep in project.get("dependencies", []) if "==" in dep)
    return {name.strip().lower(): version.strip() for name, version in pins}


def all_pins(root: Path) -> dict[str, str]:
    """Pins by ``.mise.toml`` key; Python-installed tools fall back to ``pyproject.toml``."""
    return {**python_pins(root / "pyproject.toml"), **mise_pins(root / ".mise.toml")}


def compare(found: str | None, pinned: str | None) -> str:
    """``ok`` / ``differs`` / ``unknown`` for a found version against its pin."""
    if found is None or pinned is None:
        return "unknown"
    size = min(len(found.split(".")), len(pinned.split(".")))
    return "ok" if _numbers(found)[:size] == _numbers(pinned)[:size] else "differs"


def satisfied(requirement: str, found: set[str]) -> bool:
    return any(option in found for option in requirement.split("|"))


def missing_for(task: str, found: set[str]) -> list[str]:
    return [req for req in TASK_TOOLS[task] if not satisfied(req, found)]


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
