"""inv doctor --install against a fake ``go`` that behaves like the real one: downloads
modules (or is refused by the proxy), installs or builds binaries that report a version."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

from tasks import root as root_tasks
from tasks.lib.tools import install
from tasks.lib.tools.pins import BY_NAME

FAKE_GO = r"""#!{python}
import json, os, re, sys
from pathlib import Path
here = Path(__file__).resolve().parent
args = sys.argv[1:]
with open(here / "go.calls", "a") as log:
    log.write(json.dumps({{"argv": args, "cwd": os.getcwd(), "gobin": os.environ.get("GOBIN", "")}}) + "\n")
behaviour = json.loads((here / "go.json").read_text())

def tool_script(version):
    return "#!/bin/sh\necho 'version " + version + "'\n"

def version_from(args):
    flags = args[args.index("-ldflags") + 1] if "-ldflags" in args else ""
    stamped = args[-1].rsplit("@", 1)[-1] if "@" in args[-1] else "(devel)"  # Go's build info
    return flags.rsplit("=", 1)[-1] if flags else behaviour.get("default_version", stamped)

if args[:3] == ["mod", "download", "-json"]:
    module, version = args[3].rsplit("@", 1)
    if module in behaviour["refused"]:
        print(json.dumps({{"Path": module, "Version": version, "Error": module + "@" + version
              + ": reading https://proxy.example/" + module + "/@v/" + version
              + ".info: 403 Forbidden\n\tserver response: This module version is not available."}}))
        sys.exit(1)
    moddir = here / "mod" / (module.replace("/", "_") + "@" + version)
    moddir.mkdir(parents=True, exist_ok=True)
    gomod = moddir / "go.mod"
    replace = "replace example.com/x => example.com/y v1.0.0\n" if module in behaviour["replace"] else ""
    gomod.write_text("module " + module + "\n\ngo 1.24\n" + replace)
    print(json.dumps({{"Path": module, "Version": version, "Dir": str(moddir), "GoMod": str(gomod)}}))
elif args[0] == "install":
    target = args[-1].split("@")[0]
    if target in behaviour["replace"] or any(target.startswith(m + "/") for m in behaviour["replace"]):
        sys.stderr.write("go: " + args[-1] + ": go.mod contains one or more replace directives.\n")
        sys.exit(1)
    parts = target.split("/")
    name = parts[-2] if re.fullmatch("v[0-9]+", parts[-1]) else parts[-1]  # as Go names it
    out = Path(os.environ["GOBIN"]) / name
    out.write_text(tool_script(version_from(args)))
    out.chmod(0o755)
elif args[0] == "build":
    for stub in behaviour.get("need", []) if Path.cwd().name == "src" else []:
        if not Path(stub).exists():
            sys.stderr.write("pattern " + stub + ": no matching files found\n")
            sys.exit(1)
    out = Path(args[args.index("-o") + 1])
    out.write_text(tool_script(version_from(args)))
    out.chmod(0o755)
else:
    sys.exit(2)
"""

SYSTEM_BIN = ("/usr/bin", "/bin")  # the shell Invoke runs commands with

MISE = """[tools]
"aqua:kubernetes-sigs/kustomize" = "5.7.1"
"aqua:fluxcd/flux2" = "2.9.5"
"aqua:helmfile/helmfile" = "1.8.0"
"aqua:budimanjojo/talhelper" = "3.1.9"
"""


class FakeGo:
    def __init__(self, bin_dir: Path, **behaviour: object) -> None:
        self.bin_dir = bin_dir
        bin_dir.mkdir(parents=True, exist_ok=True)
        script = bin_dir / "go"
        script.write_text(FAKE_GO.format(python=sys.executable))
        script.chmod(0o755)
        config = {"refused": [], "replace": [], **behaviour}
        (bin_dir / "go.json").write_text(json.dumps(config))

    def calls(self) -> list[dict[str, str]]:
        log = self.bin_dir / "go.calls"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, FakeGo]:
    root = tmp_path / "pins"
    root.mkdir()
    (root / ".mise.toml").write_text(MISE)
    tools = tmp_path / "tools"
    monkeypatch.setenv("HOME_OPS_TOOLS_DIR", str(tools))
    go = FakeGo(
        tmp_path / "gobin",
        refused=["github.com/budimanjojo/talhelper/v3"],
        replace=["github.com/helmfile/helmfile", "github.com/fluxcd/flux2/v2"],
        need=["cmd/flux/manifests/not-bundled.yaml"],  # relative to the build dir (flux's copy)
    )
    monkeypatch.setenv("PATH", os.pathsep.join([str(go.bin_dir), *SYSTEM_BIN]))
    return root, tools, go


def context(root: Path, dry: bool = False) -> Context:
    overrides: dict[str, object] = {"home_ops": {"root": str(root)}}
    if dry:
        overrides["run"] = {"dry": True}
    return Context(config=Config(overrides=overrides))


def states(outcomes: list[install.Outcome]) -> dict[str, str]:
    return {o.tool: o.state for o in outcomes}


def test_builds_each_tool_the_way_its_module_needs(setup, capsys) -> None:
    root, tools, go = setup
    outcomes = install.install_tools(context(root), root, go="go")
    assert states(outcomes) == {
        "kustomize": "installed",
        "talhelper": "refused",
        "flux": "installed",
        "helmfile": "installed",
    }
    calls = [c["argv"] for c in go.calls()]
    # No replace directives: `go install pkg@version` into a staging GOBIN.
    assert ["install", "sigs.k8s.io/kustomize/kustomize/v5@v5.7.1"] in calls
    # Replace directives: `go build` inside the downloaded module, with the version stamped.
    helmfile_build = next(c for c in go.calls() if c["argv"][0] == "build" and "helmfile" in c["argv"][-2])
    assert helmfile_build["argv"][:3] == ["build", "-ldflags", "-X go.szostok.io/version.version=v1.8.0"]
    assert helmfile_build["cwd"].endswith("github.com_helmfile_helmfile@v1.8.0")
    # flux's generated manifests are stubbed in a private copy (the module cache stays pristine).
    flux_build = next(c for c in go.calls() if c["argv"][0] == "build" and "flux" in c["argv"][-2])
    assert flux_build["argv"][-1] == "./cmd/flux" and "-X main.VERSION=2.9.5" in flux_build["argv"]
    assert not (Path(flux_build["cwd"]).exists())  # the staging copy is gone
    assert sorted(p.name for p in tools.iterdir()) == [".install.json", "flux", "helmfile", "kustomize"]
    out = capsys.readouterr().out
    assert "[1/4] kustomize 5.7.1: building sigs.k8s.io/kustomize/kustomize/v5" in out
    assert (
        "talhelper 3.1.9: cannot install — the Go module proxy refused "
        "github.com/budimanjojo/talhelper/v3@v3.1.9 (403 Forbidden: This module version is not available.)"
    ) in out
    assert "flux 2.9.5: installed" in out and "flux install" in out  # the stub's cost is said


def test_second_run_builds_nothing_and_is_fast(setup, capsys) -> None:
    root, _, go = setup
    install.install_tools(context(root), root, go="go")
    before = len(go.calls())
    started = time.monotonic()
    outcomes = install.install_tools(context(root), root, go="go")
    assert time.monotonic() - started < 1.0
    assert len(go.calls()) == before  # not even the refused module is asked again
    assert states(outcomes) == {
        "kustomize": "present",
        "talhelper": "refused",
        "flux": "present",
        "helmfile": "present",
    }
    assert "(recorded; retried after a day)" in capsys.readouterr().out


def test_a_refusal_is_asked_again_after_a_day(setup) -> None:
    root, tools, go = setup
    install.install_tools(context(root), root, go="go")
    record = json.loads((tools / ".install.json").read_text())
    record["talhelper"]["at"] -= install.REFUSAL_TTL + 1
    (tools / ".install.json").write_text(json.dumps(record))
    install.install_tools(context(root), root, go="go")
    asked = [c["argv"][-1] for c in go.calls() if c["argv"][:2] == ["mod", "download"]]
    assert asked.count("github.com/budimanjojo/talhelper/v3@v3.1.9") == 2


def test_a_pin_change_rebuilds(setup) -> None:
    root, tools, _ = setup
    install.install_tools(context(root), root, go="go")
    (root / ".mise.toml").write_text(MISE.replace('"5.7.1"', '"5.8.0"'))
    outcomes = install.install_tools(context(root), root, go="go")
    assert states(outcomes)["kustomize"] == "installed"
    assert "version v5.8.0" in (tools / "kustomize").read_text()


def test_a_binary_reporting_another_version_is_a_failure(setup, monkeypatch) -> None:
    root, _, go = setup
    config = json.loads((go.bin_dir / "go.json").read_text())
    config["default_version"] = "development"
    (go.bin_dir / "go.json").write_text(json.dumps(config))
    assert not BY_NAME["kustomize"].go.version_var  # kustomize reports what Go stamped
    outcomes = {o.tool: o for o in install.install_tools(context(root), root, go="go")}
    assert outcomes["kustomize"].state == "failed"
    assert "built, but it reports version ?" in outcomes["kustomize"].detail


def test_a_killed_build_leaves_the_old_binary(setup, monkeypatch) -> None:
    root, tools, _ = setup
    install.install_tools(context(root), root, go="go")
    old = (tools / "kustomize").read_text()
    (root / ".mise.toml").write_text(MISE.replace('"5.7.1"', '"5.8.0"'))

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(install, "install_argv", killed)
    with pytest.raises(KeyboardInterrupt):
        install.install_tools(context(root), root, go="go")
    assert (tools / "kustomize").read_text() == old
    assert not any(p.name.startswith(".staging") for p in tools.iterdir())


def test_without_go_prints_the_mise_line(setup, capsys) -> None:
    root, tools, go = setup
    outcomes = install.install_tools(context(root), root, go="")
    assert {o.state for o in outcomes} == {"no-go"}
    out = capsys.readouterr().out
    assert "Go is not installed, so nothing is built: run `mise install`" in out
    assert "kustomize@5.7.1" in out and "talhelper@3.1.9" in out
    assert go.calls() == [] and not tools.exists()


def test_dry_run_prints_the_commands_and_builds_nothing(setup, capsys) -> None:
    root, tools, go = setup
    install.install_tools(context(root, dry=True), root, go="go")
    out = capsys.readouterr().out
    assert "go mod download -json sigs.k8s.io/kustomize/kustomize/v5@v5.7.1" in out
    assert "go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1" in out
    assert go.calls() == [] and not tools.exists()


def test_a_tool_on_path_at_its_pin_is_left_alone(setup, tmp_path, monkeypatch) -> None:
    root, tools, go = setup
    user_bin = tmp_path / "userbin"
    user_bin.mkdir()
    (user_bin / "kustomize").write_text("#!/bin/sh\necho v5.7.1\n")
    (user_bin / "kustomize").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(user_bin), str(go.bin_dir), *SYSTEM_BIN]))
    outcomes = states(install.install_tools(context(root), root, go="go"))
    assert outcomes["kustomize"] == "present"
    assert not (tools / "kustomize").exists()


def test_a_shadowing_tool_on_path_is_named(setup, tmp_path, monkeypatch) -> None:
    root, _, go = setup
    install.install_tools(context(root), root, go="go")
    user_bin = tmp_path / "userbin"
    user_bin.mkdir()
    (user_bin / "kustomize").write_text("#!/bin/sh\necho v5.0.0\n")
    (user_bin / "kustomize").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(user_bin), str(go.bin_dir), *SYSTEM_BIN]))
    outcome = next(o for o in install.install_tools(context(root), root, go="go") if o.tool == "kustomize")
    assert outcome.state == "present"
    assert "comes first on PATH and is not at the pin" in outcome.detail


def test_doctor_install_names_the_way_that_works_for_a_tool_it_cannot_build(
    example_repo, setup, monkeypatch, capsys
):
    _, _, go = setup
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(Path(__file__).parent / "fixtures" / "example-operator"))
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(go.bin_dir), str(Path(sys.executable).parent), *SYSTEM_BIN])
    )
    with pytest.raises(Exit):  # talhelper is still missing: bootstrap and talos.* cannot run
        root_tasks.doctor(context(example_repo), install=True)
    captured = capsys.readouterr()
    out = captured.out
    assert "talhelper 3.1.16: cannot install — the Go module proxy refused" in out
    assert "tools: " in out and "not installed: " in out and "talhelper" in out
    (fix,) = [line for line in out.splitlines() if line.startswith("  talhelper")]
    assert "`mise install` (`inv doctor --install` cannot build it here: the Go module proxy refused" in fix
    assert "`inv configure` cannot run" not in captured.err
