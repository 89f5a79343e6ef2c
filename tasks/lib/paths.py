"""Where things live: the repository root and the operator's files.

Everything is resolved from the repository root (the directory holding ``tasks/``), never
from the caller's working directory, so ``inv`` behaves the same from any subdirectory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: Environment variable that moves the operator's local files (age key, deploy key, push
#: token) out of the repository root, e.g. to the test-only example key set in CI.
OPERATOR_DIR_ENV = "HOME_OPS_OPERATOR_DIR"


def env_path(name: str) -> Path | None:
    """A path the user set in the environment, made absolute (against the directory ``inv``
    was started in), so commands run in other directories still find it. A list of paths
    (KUBECONFIG may hold several) is passed on as it is."""
    value = os.environ.get(name)
    if not value:
        return None
    return Path(value) if os.pathsep in value else Path(value).absolute()


@dataclass(frozen=True)
class Paths:
    """Every path the tasks touch, derived from one repository root."""

    root: Path

    # Configuration the operator edits.
    @property
    def cluster_config(self) -> Path:
        return self.root / "cluster.yaml"

    @property
    def nodes_config(self) -> Path:
        return self.root / "nodes.yaml"

    @property
    def secrets_config(self) -> Path:
        return self.root / "cluster.sops.yaml"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def makejinja_config(self) -> Path:
        return self.root / "makejinja.toml"

    @property
    def mise_config(self) -> Path:
        return self.root / ".mise.toml"

    @property
    def manifest(self) -> Path:
        return self.root / ".configure-manifest.json"

    # Rendered trees.
    @property
    def kubernetes(self) -> Path:
        return self.root / "kubernetes"

    @property
    def talos(self) -> Path:
        return self.root / "talos"

    @property
    def bootstrap(self) -> Path:
        return self.root / "bootstrap"

    @property
    def talconfig(self) -> Path:
        return self.talos / "talconfig.yaml"

    @property
    def talenv(self) -> Path:
        return self.talos / "talenv.yaml"

    @property
    def talsecret(self) -> Path:
        return self.talos / "talsecret.sops.yaml"

    # Operator files: local, git-ignored, created by `inv init`.
    @property
    def operator_dir(self) -> Path:
        return env_path(OPERATOR_DIR_ENV) or self.root

    @property
    def age_key(self) -> Path:
        return env_path("SOPS_AGE_KEY_FILE") or self.operator_dir / "age.key"

    @property
    def deploy_key(self) -> Path:
        return self.operator_dir / "github-deploy.key"

    @property
    def deploy_key_pub(self) -> Path:
        return self.operator_dir / "github-deploy.key.pub"

    @property
    def push_token(self) -> Path:
        return self.operator_dir / "github-push-token.txt"

    @property
    def key_dirs(self) -> tuple[Path, ...]:
        """The folders the operator's keys live in (outside the repository, maybe)."""
        return tuple(dict.fromkeys((self.operator_dir, self.age_key.parent)))

    @property
    def sops_config(self) -> Path:
        return env_path("SOPS_CONFIG") or self.root / ".sops.yaml"

    @property
    def kubeconfig(self) -> Path:
        return env_path("KUBECONFIG") or self.root / "kubeconfig"

    @property
    def talosconfig(self) -> Path:
        return env_path("TALOSCONFIG") or self.talos / "clusterconfig" / "talosconfig"

    def rel(self, path: Path) -> str:
        """``path`` relative to the root when it lies inside it, for messages."""
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except (ValueError, RuntimeError, OSError):  # outside, or a symlink loop
            return str(path)


def tool_env(paths: Paths) -> dict[str, str]:
    """Environment for every external command: the repository's own files, unless the
    user already points a variable elsewhere (their value wins). SOPS_CONFIG is left out
    while .sops.yaml does not exist yet (sops refuses a missing config file)."""
    env = {
        "KUBECONFIG": str(paths.kubeconfig),
        "SOPS_AGE_KEY_FILE": str(paths.age_key),
        "TALOSCONFIG": str(paths.talosconfig),
    }
    if "SOPS_CONFIG" in os.environ or paths.sops_config.exists():
        env["SOPS_CONFIG"] = str(paths.sops_config)
    return env


def repo_paths(root: Path | None = None) -> Paths:
    return Paths((root or ROOT).resolve())


def paths_for(c: Any) -> Paths:
    """The paths of the repository a task runs against: ``home_ops.root`` from the Invoke
    config when set (tests point it at a temporary repository), else this checkout."""
    config = getattr(c, "config", None)
    home_ops = config.get("home_ops", {}) if config is not None else {}
    root = home_ops.get("root") if hasattr(home_ops, "get") else None
    return repo_paths(Path(root) if root else None)
