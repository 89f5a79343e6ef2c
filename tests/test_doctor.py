"""inv doctor: fake tools that report versions, operator files with various modes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

from tasks import root as root_tasks
from tasks.lib.tools import doctor as doctor_module
from tasks.lib.tools.pins import executable_pins
from tests.conftest import EXAMPLE_OPERATOR
from tests.fakes import FakeTools, ok

VERSIONS = {
    "talhelper": "talhelper version 3.1.16",
    "talosctl": "Client:\n\tTag:         v1.13.8\n\tSHA:         abc\n",
    "flux": "flux: v2.9.5\n",
    "helm": "v4.1.4+g1234567\n",
    "helmfile": "helmfile version 1.4.0\n",  # differs from the pin
    "kubectl": "Client Version: v1.37.1\nKustomize Version: v5.7.1\n",
    "gitleaks": "v8.30.1\n",
}


@pytest.fixture
def operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "operator"
    shutil.copytree(EXAMPLE_OPERATOR, directory)
    for path in directory.iterdir():
        path.chmod(0o600)
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(directory))
    return directory


@pytest.fixture
def tools(fake_tools: FakeTools) -> FakeTools:
    fake_tools.install("gitleaks")
    for name, output in VERSIONS.items():
        fake_tools.script(name, (None, ok(output)))
    return fake_tools


def run_doctor(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    context = Context(config=Config(overrides={"home_ops": {"root": str(root)}}))
    try:
        root_tasks.doctor(context)
        code = 0
    except Exit as error:
        code = error.code
    out = capsys.readouterr()
    return code, out.out, out.err


def row(output: str, first: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.split()[:1] == [first])


def test_ready_machine(example_repo: Path, operator: Path, tools: FakeTools, capsys) -> None:
    code, out, err = run_doctor(example_repo, capsys)
    assert code == 0, err
    assert row(out, "talhelper")[:4] == ["talhelper", "ok", "3.1.16", "3.1.16"]
    assert row(out, "talosctl")[:3] == ["talosctl", "ok", "1.13.8"]
    assert row(out, "helmfile")[:4] == ["helmfile", "differs", "1.4.0", "1.8.0"]
    assert row(out, "configure")[1] == "ready"
    assert row(out, "bootstrap.talos")[1] == "ready"
    assert "age key" in out and "ok (0600)" in out


def test_loose_permissions_are_flagged(example_repo: Path, operator: Path, tools: FakeTools, capsys) -> None:
    (operator / "age.key").chmod(0o644)
    code, out, _ = run_doctor(example_repo, capsys)
    assert code == 0
    assert "mode 0644" in out and "chmod 600" in out


def test_missing_sops_fails(
    example_repo: Path, operator: Path, tools: FakeTools, monkeypatch, capsys
) -> None:
    real = doctor_module.find_tool
    monkeypatch.setattr(doctor_module, "find_tool", lambda name: None if name == "sops" else real(name))
    code, out, err = run_doctor(example_repo, capsys)
    assert code == 1
    assert row(out, "sops")[1] == "missing"
    assert "`inv configure` cannot run: it needs sops" in err


def test_missing_operator_files_fail(
    example_repo: Path, tools: FakeTools, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(tmp_path / "empty"))
    code, out, err = run_doctor(example_repo, capsys)
    assert code == 1
    assert "run `inv init`" in out and "age key (inv init)" in err


def test_missing_required_tools_fail_with_a_fix_line_each(
    example_repo: Path, operator: Path, tools: FakeTools, monkeypatch, capsys
) -> None:
    real = doctor_module.find_tool
    cluster_tools = {"talhelper", "talosctl", "flux", "helm", "helmfile", "cilium"}
    monkeypatch.setattr(
        doctor_module, "find_tool", lambda name: None if name in cluster_tools else real(name)
    )
    code, out, err = run_doctor(example_repo, capsys)
    assert code == 1
    assert row(out, "bootstrap.talos")[1:] == ["needs", "talhelper,", "talosctl"]
    fixes = {line.split()[0].rstrip(":"): line for line in out.splitlines() if line.startswith("  ")}
    required = {name for name, line in fixes.items() if not line.endswith("(optional)")}
    assert required == cluster_tools - {"cilium"}
    assert fixes["cilium"].endswith("(optional)")
    assert "tools missing for bootstrap.talos, bootstrap.apps, talos.*, flux.* / reconcile" in err
    assert "`inv configure` cannot run" not in err


def test_install_hints_are_honest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.lib.tools import install, runner

    monkeypatch.setenv("HOME_OPS_TOOLS_DIR", str(tmp_path / "tools"))
    monkeypatch.setattr(install, "find_go", lambda: "/usr/bin/go")
    assert "`inv doctor --install`" in runner.install_hint("gitleaks")
    assert runner.install_hint("sops").startswith("`uv sync`")
    assert runner.install_hint("node") == "`mise install`"
    pin = executable_pins(runner.repo_paths().mise_config)["talhelper"]
    install.write_record(
        tmp_path / "tools", {"talhelper": {"pin": pin, "state": "refused", "detail": "403", "at": 9e18}}
    )
    hint = runner.install_hint("talhelper")
    assert hint.startswith("`mise install`") and "cannot build it here: 403" in hint
    monkeypatch.setattr(install, "find_go", lambda: "")
    assert (
        runner.install_hint("gitleaks")
        == "`mise install` (or install Go, then `inv doctor --install` builds it)"
    )


def test_one_tool_only(example_repo: Path, operator: Path, tools: FakeTools, capsys) -> None:
    context = Context(config=Config(overrides={"home_ops": {"root": str(example_repo)}}))
    root_tasks.doctor(context, tool=["gitleaks"])
    out = capsys.readouterr().out
    assert row(out, "gitleaks")[:2] == ["gitleaks", "ok"] and "talhelper" not in out
    with pytest.raises(Exit):
        root_tasks.doctor(context, tool=["nope"])
    assert "unknown tool nope" in capsys.readouterr().err


INVOKE_LAUNCHER = (
    "import sys\nfrom invoke.main import program\nif __name__ == '__main__':\n    sys.exit(program.run())\n"
)
OUR_LAUNCHER = (
    "import sys\nfrom tasks.__main__ import main\nif __name__ == '__main__':\n    sys.exit(main())\n"
)


def test_doctor_says_when_inv_is_invokes_own_launcher(tmp_path: Path) -> None:
    launcher = tmp_path / "inv"
    launcher.write_text(INVOKE_LAUNCHER)
    note = doctor_module.launcher_note(launcher)
    assert "is Invoke's own `inv`" in note and "uv sync --reinstall-package home-ops" in note
    launcher.write_text(OUR_LAUNCHER)
    assert doctor_module.launcher_note(launcher) == ""
    assert doctor_module.launcher_note(tmp_path / "missing") == ""


def test_this_virtualenvs_inv_is_the_projects() -> None:
    """The install order of the README and .ci/run puts the project's `inv` in place."""
    launcher = Path(sys.executable).parent / "inv"
    assert doctor_module.launcher_note(launcher) == ""
    assert "tasks.__main__" in launcher.read_text()
