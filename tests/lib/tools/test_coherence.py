"""Related pins stay in step: talosctl = talosVersion, kubectl within one minor of
kubernetesVersion, the Flux CLI on the distribution's minor, talhelper knowing talosVersion,
and the Talos validation program on the rendered Talos version. A drift fails here and is
one line of ``inv doctor`` with the fix."""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

from tasks import root as root_tasks
from tasks.lib.tools import coherence
from tests.conftest import EXAMPLE_OPERATOR, ROOT, copy_repo
from tests.fakes import FakeTools, ok

TALENV = "templates/config/talos/talenv.yaml.j2"


def test_this_repository_has_no_pin_drift() -> None:
    assert [d.line() for d in coherence.drifts(ROOT)] == []


def test_the_rendered_example_has_no_pin_drift(tmp_path: Path) -> None:
    assert coherence.drifts(copy_repo(tmp_path / "repo")) == []


def test_the_validation_program_is_built_at_the_rendered_talos_version() -> None:
    talos = coherence.talenv_version(ROOT, "talosVersion")
    assert talos is not None
    go_mod = (ROOT / "tests" / "talosvalidate" / "go.mod").read_text()
    assert f"github.com/siderolabs/talos/pkg/machinery v{talos[1]}\n" in go_mod


def drifted_tree(tmp_path: Path, **pins: str) -> Path:
    """The repository's pin files with some .mise.toml pins replaced."""
    root = tmp_path / "repo"
    for rel in (".mise.toml", TALENV, *coherence.FLUX_VALUES[1:]):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, root / rel)
    mise = (root / ".mise.toml").read_text()
    for key, version in pins.items():
        mise, count = re.subn(rf'("aqua:[^"]+/{key}" = )"[^"]+"', rf'\1"{version}"', mise)
        assert count == 1, key
    (root / ".mise.toml").write_text(mise)
    return root


@pytest.mark.parametrize(
    ("pins", "expected"),
    [
        (
            {"talos": "1.13.7"},
            "talosctl 1.13.7 (.mise.toml) is not the Talos the nodes run: talosVersion v1.13.8",
        ),
        (
            {"kubectl": "1.38.0"},
            "kubectl 1.38.0 (.mise.toml) is more than one minor away from kubernetesVersion",
        ),
        (
            {"kubectl": "1.34.2"},
            "kubectl 1.34.2 (.mise.toml) is more than one minor away from kubernetesVersion",
        ),
        (
            {"flux2": "2.8.6"},
            "the Flux CLI 2.8.6 (.mise.toml) is not on the minor of the Flux the cluster runs",
        ),
    ],
)
def test_each_drift_is_found(tmp_path: Path, pins: dict[str, str], expected: str) -> None:
    (drift,) = coherence.drifts(drifted_tree(tmp_path, **pins))
    assert drift.line().startswith(expected)
    assert " — " in drift.line()  # with the fix


@pytest.mark.parametrize("kubectl", ["1.35.0", "1.36.9", "1.37.1"])
def test_kubectl_within_one_minor_is_fine(tmp_path: Path, kubectl: str) -> None:
    assert coherence.drifts(drifted_tree(tmp_path, kubectl=kubectl)) == []


def test_the_rendered_file_wins_over_the_template(tmp_path: Path) -> None:
    root = drifted_tree(tmp_path)
    (root / "talos").mkdir()
    (root / "talos" / "talenv.yaml").write_text("talosVersion: v1.14.0\nkubernetesVersion: v1.36.4\n")
    (drift,) = coherence.drifts(root)
    assert "talosVersion v1.14.0 (talos/talenv.yaml)" in drift.line()


def test_unreadable_files_compare_nothing(tmp_path: Path) -> None:
    assert coherence.drifts(tmp_path) == []


def run_doctor(root: Path) -> None:
    """``inv doctor`` on ``root``; it exits 1 when tools some task needs are missing (the
    test's PATH has few), which is not what these tests look at."""
    with contextlib.suppress(Exit):
        root_tasks.doctor(Context(config=Config(overrides={"home_ops": {"root": str(root)}})))


def test_doctor_names_each_drift_in_one_line(
    tmp_path: Path, fake_tools: FakeTools, monkeypatch, capsys
) -> None:
    root = copy_repo(tmp_path / "repo")
    mise = root / ".mise.toml"
    mise.write_text(
        mise.read_text().replace('"aqua:fluxcd/flux2" = "2.9.5"', '"aqua:fluxcd/flux2" = "2.8.6"')
    )
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    run_doctor(root)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("pins out of step:")]
    assert len(lines) == 1 and "Flux CLI 2.8.6" in lines[0] and "then `inv configure`" in lines[0]


def test_doctor_says_when_talhelper_does_not_know_talos_version(
    tmp_path: Path, fake_tools: FakeTools, monkeypatch, capsys
) -> None:
    """What the real talhelper prints for a Talos version newer than it knows."""
    root = copy_repo(tmp_path / "repo")
    fake_tools.script(
        "talhelper",
        ("--version", ok("talhelper version 3.1.15\n")),
        (
            "validate talconfig",
            ok(
                'There are issues with your talhelper config file:\nfield: "talosVersion"\n'
                '  * WARNING: "v1.13.8" might not be compatible with this Talhelper version you\'re using\n'
            ),
        ),
    )
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    run_doctor(root)
    out = capsys.readouterr().out
    assert "pins out of step: the installed talhelper does not know talenv.yaml's talosVersion" in out
    assert [c.line for c in fake_tools.calls("talhelper")][-1].startswith("talhelper validate talconfig")
