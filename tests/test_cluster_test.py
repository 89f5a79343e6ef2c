"""``inv dev.cluster-test``: the whole journey against a fake cluster, a failure injected at
every step, Ctrl-C, and ``--dry``.

What needs VMs is answered in the real tools' shapes by tests/cluster_fake.py: as talosctl,
kubectl and flux executables on PATH in the whole-journey tests, in-process (the runner's
``observe``, faster) where a failure is injected at every step; every talosctl command is
checked against talosctl's flags, and the dry run's kubectl and flux lines against the real
tools. What can run here runs for real: git, the git server the cluster would pull from,
sops, ``inv init`` and ``inv app.new`` in the scratch copy. ``inv configure`` in the scratch
copy is answered with the bundled example's rendered tree (the real init and configure of
the scratch copy the journey sets up run in
``test_the_scratch_copy_it_sets_up_is_what_the_real_init_and_configure_accept``).
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from invoke import Config, Context

from tasks import ci, dev
from tasks.lib.clustertest import diagnostics, journey, plan
from tasks.lib.provision import discover as discovery
from tasks.lib.tools import runner
from tasks.lib.tools.runner import Command, Outcome
from tests import cluster_fake, talosctl_cli
from tests import talos_shapes as shapes
from tests.conftest import EXAMPLE_OPERATOR, copy_repo, example_source, exit_code, git
from tests.fakes import FakeTools
from tests.tools_contract import argv_problem, real_tool

CIDR = "127.0.0.0/24"  # the gateway, 127.0.0.1, is an address the real git server can listen on


RENDERED = ("kubernetes", "talos", "bootstrap", ".sops.yaml", ".configure-manifest.json")


@dataclass
class FakeCluster:
    """Answers the journey's commands as a cluster of QEMU VMs would; fails every command
    issued while the journey is in ``fail_step``; lets git, the git server, sops and the
    inner ``inv init`` / ``inv app.new`` run for real."""

    fail_step: str | None = None
    destroy_fails: bool = False
    fake_init: bool = False
    on_path: Path | None = None  # the fakes run as processes from this folder on PATH
    journey: journey.Journey | None = None
    calls: list[Command] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)

    @property
    def step(self) -> str:
        return self.journey.current if self.journey is not None else ""

    def __call__(self, command: Command) -> Outcome | None:
        self.calls.append(command)
        if self.fail_step is not None and self.step == self.fail_step:
            return Outcome(command, 1, "", f"error: injected failure while {self.step}\n")
        argv = list(command.argv)
        if argv[0] == "sudo":  # sudo -n -E COMMAND: what COMMAND would say
            argv = argv[1:]
            while argv[0].startswith("-"):
                argv = argv[1:]
            if argv == ["true"]:  # sudo works without a password (unless a fake sudo on PATH says)
                return None if self.on_path is not None else Outcome(command, 0, "", "")
        tool = Path(argv[0]).name
        if tool == Path(sys.executable).name or argv[0] == sys.executable:
            return self.python(command, argv)
        if tool not in cluster_fake.TOOLS:
            return None  # git, sops: the real ones
        if tool == "talosctl":
            problem = talosctl_cli.argv_problem(argv[1:])
            assert problem is None, problem
        if self.on_path is not None:
            return None  # the fake on PATH answers
        return Outcome(command, *self.tools().answer(tool, argv[1:]))

    def tools(self) -> cluster_fake.Cluster:
        nodes = len(self.journey.plan.nodes) if self.journey is not None else 1
        return cluster_fake.Cluster(nodes, journey.SOPS_VALUE, self.destroy_fails)

    def put_on_path(self, folder: Path, nodes: int, monkeypatch: pytest.MonkeyPatch) -> None:
        """From now on talosctl, kubectl and flux run as processes, ``nodes`` of them Ready."""
        self.on_path = cluster_fake.install(folder, cluster_fake.Cluster(nodes, journey.SOPS_VALUE))
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    def python(self, command: Command, argv: list[str]) -> Outcome | None:
        if argv[1:3] != ["-m", "tasks"]:
            return None  # the git server: real
        task = argv[3]
        if task == "configure":  # the example's rendered tree (see the module docstring)
            assert command.cwd is not None
            self.seen["cluster.yaml"] = (command.cwd / "cluster.yaml").read_text()
            self.seen["nodes.yaml"] = (command.cwd / "nodes.yaml").read_text()
            for item in RENDERED:
                origin, target = example_source() / item, command.cwd / item
                if origin.is_dir():
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(origin, target)
            return Outcome(command, 0, "configure: done — 312 written\n", "")
        if task == "init" and self.fake_init:  # the example's key and secrets, as init would write
            assert command.cwd is not None
            shutil.copy2(EXAMPLE_OPERATOR / "age.key", command.cwd / "age.key")
            for name in (".sops.yaml", "cluster.sops.yaml"):
                shutil.copy2(example_source() / name, command.cwd / name)
            return Outcome(command, 0, "init: done\n", "")
        if task in ("init", "app.new"):
            return None  # real
        return Outcome(command, 0, f"{task}: done\n", "")

    # what the test looks at ----------------------------------------------------------------
    def lines(self) -> list[str]:
        return [c.line for c in self.calls]

    def places(self) -> set[Path]:
        return {c.cwd for c in self.calls if c.cwd is not None}


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One committed copy of the example for the module: the journey only reads it (and
    writes its git-ignored diagnostics, which each test removes)."""
    repo = copy_repo(tmp_path_factory.mktemp("cluster-test") / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def repo(shared_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    yield shared_repo
    shutil.rmtree(shared_repo / "cluster-test-diagnostics", ignore_errors=True)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits short enough for a test to see them time out."""
    for name in ("HEALTH_DEADLINE", "MAINTENANCE_DEADLINE", "RECONCILE_DEADLINE"):
        monkeypatch.setattr(journey, name, 0.6)
    monkeypatch.setattr(journey, "POLL", 0.1)
    monkeypatch.setattr(journey, "MAINTENANCE_POLL", 0.1)


@pytest.fixture
def vm_host(monkeypatch: pytest.MonkeyPatch, fake_tools: FakeTools) -> None:
    """A machine that could boot the VMs: KVM and QEMU there, sudo asked for (as a user)."""
    fake_tools.install("sudo")
    monkeypatch.setattr(journey, "kvm_problem", lambda: None)
    monkeypatch.setattr(journey, "qemu_problem", lambda: None)
    monkeypatch.setattr(journey, "sudo_prefix", lambda: ["sudo", "-n", "-E"])


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch, fake_tools: FakeTools) -> Iterator[FakeCluster]:
    fake = FakeCluster()
    original = journey.Journey.__init__

    def remember(self: journey.Journey, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        fake.journey = self

    monkeypatch.setattr(journey.Journey, "__init__", remember)
    with runner.observe(fake):
        yield fake


def context(root: Path, dry: bool = False) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(root)}, "run": {"dry": dry}}))


def step_names(boot: bool) -> list[str]:
    the_plan = plan.make_plan(
        controlplanes=1, workers=1, nodes="" if boot else "127.0.0.2,127.0.0.3", cidr=CIDR, gateway=""
    )
    return [
        name
        for name, _ in journey.Journey(
            context(Path(".")), journey.Paths(Path(".").resolve()), the_plan, journey.Options()
        )
        .steps()
        .items
    ]


def servers_of(state: str) -> list[int]:
    """Processes of the git server serving ``state`` (none may outlive the test)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "tasks.lib.clustertest.gitserver" in cmdline and state in cmdline:
                found.append(int(proc.name))
    return found


def children(parent: int, needle: str) -> list[int]:
    """The child processes of ``parent`` whose command line holds ``needle``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            status = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if f"\nPPid:\t{parent}\n" in status and needle in cmdline:
            found.append(int(proc.name))
    return found


def state_of(fake: FakeCluster) -> str:
    server = next(c for c in fake.calls if "tasks.lib.clustertest.gitserver" in c.line)
    return server.argv[server.argv.index("--root") + 1].rsplit("/", 1)[0]


# --------------------------------------------------------------------------- the whole journey


def test_the_whole_journey_on_nodes_someone_else_booted(
    repo: Path,
    cluster: FakeCluster,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    cluster.put_on_path(tmp_path / "fakes", 2, monkeypatch)
    clone = tmp_path / "pulled"
    teardown = journey.Journey.teardown

    def clone_first(self: journey.Journey) -> None:
        git(tmp_path, "clone", "-q", self.url, str(clone))
        teardown(self)

    monkeypatch.setattr(journey.Journey, "teardown", clone_first)
    before = dict(os.environ)
    dev.cluster_test(context(repo), nodes="127.0.0.2,127.0.0.3", cidr=CIDR)
    assert_pulled(clone)
    out = capsys.readouterr().out
    print(out)
    assert "cluster test passed:" in out and "19 steps" not in out  # --nodes: no boot step
    assert f"{len(step_names(boot=False))} steps in" in out
    lines = cluster.lines()
    # Discovery read every node, the way `inv talos.discover` does.
    for node in ("127.0.0.2", "127.0.0.3"):
        for resource in ("links", "disks", "systeminformation", "extensions"):
            assert f"talosctl get {resource} --insecure --nodes {node} --output json" in lines
    # nodes.yaml is what the nodes said: the virtio disk, the NIC's MAC, the ISO's schematic.
    nodes = cluster.seen["nodes.yaml"]
    assert "- name: k8s-0\n    address: 127.0.0.2\n    controller: true\n    disk: /dev/vda" in nodes
    assert "mac_addr: 02:00:7f:00:00:03" in nodes and f"schematic_id: {shapes.VANILLA}" in nodes
    settings = cluster.seen["cluster.yaml"]
    assert "node_cidr: 127.0.0.0/24" in settings and "cluster_api_addr: 127.0.0.240" in settings
    assert "repository_name: http://127.0.0.1:" in settings
    # In order: bootstraps, idempotency, SOPS, day 2; the bootstraps with --yes (init's placeholders).
    inv = [c.argv[3:] for c in cluster.calls if c.argv[1:3] == ("-m", "tasks")]
    assert [args[0] for args in inv] == [
        "init", "configure", "bootstrap.talos", "bootstrap.apps", "configure", "bootstrap.talos",
        "bootstrap.apps", "app.new", "dev.validate", "talos.upgrade",
    ]  # fmt: skip
    assert ("bootstrap.apps", "--yes") in inv
    assert ("talos.upgrade", "--node", "k8s-1", "--yes", "--reinstall") in inv
    assert (
        lines.count(
            "flux reconcile kustomization cluster-apps --namespace flux-system --with-source --timeout 15m"
        )
        == 2
    )
    # The tools ran as processes, every one of them told to use the scratch copy's cluster
    # files and key, whatever the caller's environment said.
    (scratch,) = {c.cwd for c in cluster.calls if c.argv[1:3] == ("-m", "tasks")}
    ran = cluster_fake.calls(tmp_path / "fakes")
    assert len(ran) == len([c for c in cluster.calls if c.tool in cluster_fake.TOOLS]) > 20
    for call in ran:
        assert call["env"] == {
            "KUBECONFIG": f"{scratch}/kubeconfig",
            "TALOSCONFIG": f"{scratch}/talos/clusterconfig/talosconfig",
            "SOPS_AGE_KEY_FILE": f"{scratch}/age.key",
            "HOME_OPS_OPERATOR_DIR": str(scratch),
        }, call
    # Everything ran in the scratch copy, never in the repository; all of it is gone now.
    in_repo = [c.line for c in cluster.calls if c.cwd == repo]
    assert in_repo == ["git ls-files -z --cached --others --exclude-standard"], "it only read the repository"
    assert all(not place.exists() for place in cluster.places() - {repo})
    assert git(repo, "status", "--porcelain") == ""
    assert servers_of(state_of(cluster)) == []
    assert dict(os.environ) == before, "the environment is the caller's again"
    assert not (repo / "cluster-test-diagnostics").exists()


def assert_pulled(clone: Path) -> None:
    """What the cluster would have pulled from the test's git server just before the
    teardown: the rendered repository, the SOPS Secret (encrypted) and the day-2 app, each
    pushed (the bootstraps are stand-ins here: they add no Talos secrets to commit)."""
    log = git(clone, "log", "--format=%s").splitlines()
    assert log == [f"day 2: {journey.DAY2_APP}", "a SOPS-encrypted Secret", "rendered for the VM network"]
    secret = (clone / journey.SOPS_FILE).read_text()
    assert journey.SOPS_VALUE not in secret and "ENC[AES256_GCM" in secret
    apps = (clone / "kubernetes/apps/default/kustomization.yaml").read_text()
    assert f"./{Path(journey.SOPS_FILE).name}" in apps and f"./{journey.DAY2_APP}/ks.yaml" in apps
    release = (clone / f"kubernetes/apps/default/{journey.DAY2_APP}/app/helmrelease.yaml").read_text()
    assert "repository: ghcr.io/mendhak/http-https-echo" in release
    assert not (clone / "age.key").exists() and (clone / "cluster.sops.yaml").exists()


# --------------------------------------------------------------------------- a failure at every step


@pytest.mark.parametrize("step", step_names(boot=True))
def test_a_failure_at_any_step_collects_diagnostics_and_always_tears_down(
    repo: Path, cluster: FakeCluster, vm_host: None, fast: None, step: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.fail_step = step
    cluster.fake_init = True  # the real one runs in the whole journey's tests
    before = dict(os.environ)
    code = exit_code(lambda: dev.cluster_test(context(repo), controlplanes=1, workers=1, cidr=CIDR))
    captured = capsys.readouterr()
    names = step_names(boot=True)
    number = names.index(step) + 1
    assert code == 1
    assert f"cluster test failed at step {number}/{len(names)} ({step}):" in captured.err
    # Diagnostics: one folder, the journey's record and what the cluster said.
    (folder,) = (repo / "cluster-test-diagnostics").iterdir()
    summary = (folder / "summary.txt").read_text()
    assert f"{number:2d}. FAILED" in summary and f" {step}" in summary
    assert {"pods.txt", "flux.txt", "events.txt", "nodes.txt", "dmesg-127.0.0.2.txt"} <= {
        p.name for p in folder.iterdir()
    }
    assert "flux-system/flux-operator-1: back-off restarting" in captured.out  # the summary, on screen
    assert f"diagnostics: cluster-test-diagnostics/{folder.name}" in captured.err
    # Teardown: the VMs destroyed once they may exist, the server stopped, scratch removed.
    destroyed = [c for c in cluster.calls if "cluster destroy" in c.line]
    assert len(destroyed) == (0 if number == 1 else 1)
    if destroyed:
        assert destroyed[0].argv[:3] == ("sudo", "-n", "-E")
    if any("tasks.lib.clustertest.gitserver" in c.line for c in cluster.calls):
        assert servers_of(state_of(cluster)) == []
    assert all(not place.exists() for place in cluster.places() if "home-ops-" in str(place))
    assert dict(os.environ) == before
    assert git(repo, "status", "--porcelain") == "", "only the git-ignored diagnostics were written"


def test_a_vm_destroy_that_fails_says_how_to_do_it_by_hand(
    repo: Path, cluster: FakeCluster, vm_host: None, fast: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.fail_step = "discover the nodes"
    cluster.destroy_fails = True
    assert exit_code(lambda: dev.cluster_test(context(repo), cidr=CIDR)) == 1
    err = capsys.readouterr().err
    assert "the VMs could not be destroyed: talosctl failed destroying the VMs (exit 1)" in err
    assert "error: failed to destroy" in err
    line = next(row for row in err.splitlines() if "destroy them yourself:" in row)
    state = line.split("--state ", 1)[1].split()[0]
    assert Path(state).is_dir(), "the state folder is kept: destroying needs it"
    shutil.rmtree(state)


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_while_a_step_runs_tears_everything_down_and_exits_130(
    repo: Path, fake_tools: FakeTools, tmp_path: Path
) -> None:
    """A real `inv dev.cluster-test` process: the fake talosctl answers discovery, a fake sops
    hangs inside the scratch copy's `inv init`; SIGINT then: exit 130, the git server and the
    scratch copy gone."""
    node = shapes.qemu_node("127.0.0.2", "02:00:7f:00:00:02")
    fake_tools.script(
        "talosctl", *[(f"get {r} ", {"exit": 0, "stdout": t, "stderr": ""}) for r, t in node.items()]
    )
    fake_tools.install("sops")
    fake_tools.script("sops", (None, {"exit": 0, "stdout": "", "stderr": "", "sleep": 600}))
    env = {**os.environ, "PATH": fake_tools.path_env(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasks", "dev.cluster-test", "--nodes", "127.0.0.2", "--cidr", CIDR],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        until = time.monotonic() + 120
        while time.monotonic() < until and not any(c.tool == "sops" for c in fake_tools.calls()):
            time.sleep(0.2)
        assert any(c.tool == "sops" for c in fake_tools.calls()), "init did not reach sops"
        (sops_call,) = [c for c in fake_tools.calls() if c.tool == "sops"]
        scratch = Path(sops_call.cwd)
        assert scratch.is_dir()
        servers = children(proc.pid, "tasks.lib.clustertest.gitserver")
        assert servers, "the git server runs"
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out
    assert "interrupted (Ctrl-C)" in out
    assert not scratch.exists()
    assert all(not Path(f"/proc/{pid}").exists() for pid in servers)
    assert git(repo, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- --dry


@dataclass(frozen=True)
class DryRun:
    out: str
    fakes: FakeTools
    repo: Path


@pytest.fixture(scope="module")
def dry_run(shared_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> DryRun:
    """`inv --dry dev.cluster-test --controlplanes 1 --workers 1`, the cluster tools faked
    (so that anything that ran would show)."""
    fakes = FakeTools(tmp_path_factory.mktemp("fakebin")).install(*CLUSTER_TOOLS)
    argv = ["--dry", "dev.cluster-test", "--controlplanes", "1", "--workers", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "tasks", *argv],
        cwd=shared_repo,
        env={**os.environ, "PATH": fakes.path_env(), "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return DryRun(result.stdout, fakes, shared_repo)


CLUSTER_TOOLS = ("talosctl", "talhelper", "kubectl", "helmfile", "flux", "helm")


def test_dry_prints_the_whole_journey_and_runs_nothing(dry_run: DryRun) -> None:
    out = dry_run.out
    names = step_names(boot=True)
    for number, name in enumerate(names, 1):
        assert f"# [{number}/{len(names)}] {name}\n" in out
    expected = [
        "talosctl cluster create qemu --name home-ops-test --state '$STATE' --presets iso,maintenance "
        "--controlplanes 1 --workers 1 --cidr 10.5.0.0/24 --talos-version v",
        "talosctl get links --insecure --nodes 10.5.0.3 --output json",
        "-m tasks.lib.clustertest.gitserver --root '$STATE/git' --listen 10.5.0.1",
        "cd '$SCRATCH' && ",
        "-m tasks bootstrap.talos --yes",
        "-m tasks bootstrap.apps --yes",
        "kubectl get helmreleases.helm.toolkit.fluxcd.io --all-namespaces --output=json",
        "sops --encrypt --filename-override kubernetes/apps/default/cluster-test-sops.sops.yaml",
        "flux reconcile kustomization cluster-apps",
        "-m tasks app.new cluster-test-app --namespace default",
        "-m tasks talos.upgrade --node k8s-1 --yes --reinstall",
        "talosctl cluster destroy --name home-ops-test --state '$STATE' --force",
    ]
    for line in expected:
        assert line in out, line
    assert out.index("cluster destroy") > out.index("talos.upgrade"), "teardown comes last"
    assert dry_run.fakes.calls() == [], "nothing ran"
    assert git(dry_run.repo, "status", "--porcelain") == ""


def cluster_commands(out: str) -> list[tuple[str, list[str]]]:
    """(tool, arguments) of each talosctl, kubectl and flux line of a --dry output, with the
    commands the diagnostics would run (they run only after a failure)."""
    found = []
    lines = [line.split(" && ", 1)[-1] for line in out.splitlines() if line and not line.startswith("#")]
    lines += [runner.command_line(c.argv) for c in diagnostics.commands(["10.5.0.2"], Path("/scratch"))]
    for line in lines:
        words = shlex.split(line)
        words = words[3:] if words[0] == "sudo" else words
        tool = Path(words[0]).name
        if tool in ("talosctl", "kubectl", "flux"):
            found.append((tool, words[1:]))
    return found


def test_every_talosctl_command_is_one_talosctl_accepts(dry_run: DryRun) -> None:
    """Against talosctl's command line as its source defines it (tests/talosctl_cli.py):
    talosctl cannot be built here."""
    commands = [argv for tool, argv in cluster_commands(dry_run.out) if tool == "talosctl"]
    seen = {tuple(argv[:2]) for argv in commands}
    assert seen >= {("cluster", "create"), ("cluster", "destroy"), ("get", "links")}
    assert any(argv[0] == "dmesg" for argv in commands)
    assert [talosctl_cli.argv_problem(argv) for argv in commands] == [None] * len(commands)


@pytest.mark.tools
def test_every_kubectl_and_flux_command_is_one_the_real_tools_accept(dry_run: DryRun) -> None:
    found = cluster_commands(dry_run.out)
    commands = sorted({(tool, tuple(argv)) for tool, argv in found if tool != "talosctl"})
    assert {tool for tool, _ in commands} == {"kubectl", "flux"}
    problems = [argv_problem(real_tool(tool), tool, list(argv)) for tool, argv in commands]
    assert [p for p in problems if p] == []


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--controlplanes", "0"], "--controlplanes 0: at least one controller is needed"),
        (["--cidr", "10.5.0.0/26"], "--cidr 10.5.0.0/26: too small"),
        (["--nodes", "10.5.0.2,10.6.0.3"], "--nodes: 10.6.0.3 is not a host address of the network "),
        (["--nodes", "10.5.0.2", "--workers", "1"], "--nodes lists 1 address(es), but --controlplanes 1 and"),
        (["--diagnostics", "../elsewhere"], "--diagnostics '../elsewhere': must be a folder inside the"),
        (["--gateway", "10.9.0.1"], "--gateway 10.9.0.1 is not in the network 10.5.0.0/24"),
    ],
)
def test_bad_options_are_one_line_each_before_anything_runs(
    repo: Path, args: list[str], problem: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tasks", "dev.cluster-test", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert problem in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


# --------------------------------------------------------------------------- ci.install-qemu


@pytest.mark.parametrize("sudo", [[], ["sudo", "-n", "-E"]], ids=["root", "user"])
def test_install_qemu_installs_the_packages_with_apt_get(
    repo: Path, fake_tools: FakeTools, monkeypatch: pytest.MonkeyPatch, sudo: list[str]
) -> None:
    fake_tools.install("apt-get", "sudo")
    monkeypatch.setattr(journey, "sudo_prefix", lambda: sudo)
    monkeypatch.setattr(journey, "qemu_binary", lambda: "qemu-system-test")
    ci.install_qemu(context(repo))
    lines = fake_tools.lines()
    prefix = " ".join([*sudo[1:], ""]) if sudo else ""
    assert lines == [
        f"{'sudo ' if sudo else ''}{prefix}apt-get update --quiet",
        f"{'sudo ' if sudo else ''}{prefix}apt-get install --quiet --yes --no-install-recommends "
        + " ".join(plan.QEMU_PACKAGES),
    ]


def test_install_qemu_does_nothing_when_qemu_is_there_and_says_what_to_do_without_apt(
    repo: Path, fake_tools: FakeTools, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(journey, "qemu_binary", lambda: "qemu-system-test")
    monkeypatch.setattr(runner, "find_tool", lambda name: None)
    assert exit_code(lambda: ci.install_qemu(context(repo))) == 1
    assert "no apt-get here: install QEMU (qemu-system-test)" in capsys.readouterr().err
    fake_tools.install("qemu-system-test", "apt-get")
    monkeypatch.undo()
    monkeypatch.setenv("PATH", fake_tools.path_env())
    monkeypatch.setattr(journey, "qemu_binary", lambda: "qemu-system-test")
    ci.install_qemu(context(repo))
    assert "qemu-system-test is installed already" in capsys.readouterr().out
    assert fake_tools.calls("apt-get") == []


# --------------------------------------------------------------------------- the real init and configure


@pytest.mark.slow
def test_the_scratch_copy_it_sets_up_is_what_the_real_init_and_configure_accept(
    repo: Path, tmp_path: Path
) -> None:
    """The journey's own scratch set-up (nodes.yaml from what QEMU VMs say, cluster.yaml for
    their network), then the real `inv init` and `inv configure` there, as the journey runs
    them: the rendered tree is for those nodes and pulls from the test's git server."""
    the_plan = plan.make_plan(controlplanes=1, workers=1, nodes="", cidr=plan.DEFAULT_CIDR, gateway="")
    trip = journey.Journey(context(repo), journey.Paths(repo), the_plan, journey.Options())
    trip.scratch = tmp_path / "scratch"
    trip.url = plan.repository_url(the_plan.gateway, 41234)
    for address in the_plan.nodes:
        said = shapes.qemu_node(address, f"02:00:0a:05:00:{int(address.rsplit('.', 1)[1]):02x}")
        found = discovery.Discovered(
            address,
            tuple(discovery.parse_links(said["links"])),
            tuple(discovery.parse_disks(said["disks"])),
            discovery.parse_system(said["systeminformation"]),
            discovery.parse_schematic(said["extensions"]),
        )
        name, controller = the_plan.node_name(address), the_plan.is_controller(address)
        trip.entries.append(discovery.node_entry(found, name=name, controller=controller))
    trip.set_up_scratch()
    env = {**os.environ, **journey.scratch_variables(trip.scratch, runner.tools_dir())}
    for task in ("init", "configure"):
        done = subprocess.run(
            [sys.executable, "-m", "tasks", task],
            cwd=trip.scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    talconfig = (trip.scratch / "talos" / "talconfig.yaml").read_text()
    assert 'endpoint: "https://10.5.0.240:6443"' in talconfig
    for address in ("10.5.0.2", "10.5.0.3"):
        assert f'ipAddress: "{address}"' in talconfig
    assert talconfig.count('installDisk: "/dev/vda"') == 2, "the virtio disk discovery chose"
    values = (trip.scratch / "kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml").read_text()
    assert 'url: "http://10.5.0.1:41234/home-ops.git"' in values
    assert git(repo, "status", "--porcelain") == "", "the repository itself is untouched"


# --------------------------------------------------------------------------- this machine


@pytest.mark.parametrize("sudo", ["missing", "asks for a password"])
def test_missing_kvm_qemu_and_sudo_are_one_line_each_and_nothing_boots(
    repo: Path,
    cluster: FakeCluster,
    fake_tools: FakeTools,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sudo: str,
) -> None:
    monkeypatch.setattr(journey, "kvm_problem", functools.partial(journey.kvm_problem, tmp_path / "kvm"))
    monkeypatch.setattr(journey, "qemu_binary", lambda: "qemu-system-nowhere")
    monkeypatch.setattr(journey, "sudo_prefix", lambda: ["sudo", "-n", "-E"])
    if sudo == "missing":
        find_tool = runner.find_tool
        monkeypatch.setattr(runner, "find_tool", lambda name: None if name == "sudo" else find_tool(name))
    else:
        fake_tools.install("sudo")
        fake_tools.script("sudo", (None, {"exit": 1, "stdout": "", "stderr": "sudo: a password is required"}))
        cluster.on_path = tmp_path  # sudo -n true: the fake on PATH answers
    code = exit_code(lambda: dev.cluster_test(context(repo), cidr=CIDR))
    err = capsys.readouterr().err
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == f"cluster test failed at step 1/{len(step_names(boot=True))} (check this machine):"
    assert sum(line.startswith("KVM: ") for line in lines) == 1
    assert f"KVM: {tmp_path / 'kvm'} is missing" in err
    assert sum(line.startswith("QEMU: qemu-system-nowhere not found") for line in lines) == 1
    assert sum(line.startswith("sudo: ") for line in lines) == 1
    assert ("sudo: not found" if sudo == "missing" else "sudo: `sudo -n true` failed") in err
    assert not any("cluster create" in line or "cluster destroy" in line for line in cluster.lines())
