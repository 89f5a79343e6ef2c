"""``inv dev.cluster-test``: from bare VMs to day 2, every step through the runner.

The journey an operator takes with real machines, on Talos VMs in maintenance mode: boot
them (or take nodes someone else booted), discover them the way ``inv talos.discover`` does,
write ``nodes.yaml`` and a ``cluster.yaml`` for their network in a scratch copy of the
repository (the operator's own files are never read or written), ``init`` a throw-away key,
``configure``, push the rendered repository to a git server on this machine the cluster
pulls from, ``bootstrap.talos`` and ``bootstrap.apps``, and check that the cluster is
healthy. Then all of it again (idempotent), a SOPS-encrypted Secret that Flux must decrypt,
and day 2: ``app.new`` pushed and Ready, ``talos.upgrade`` of one node.

Every wait has a deadline and a progress line. When a step fails, the cluster's state is
collected into one folder (:mod:`.diagnostics`) and summarised. Whatever happens (a failure,
Ctrl-C, SIGTERM), the git server is stopped, the VMs the test booted are destroyed and the
scratch copy is removed; a second Ctrl-C does not cut that short.

The commands run with the scratch copy's kubeconfig, talosconfig and age key whatever the
caller's environment points at, so nothing here can reach the operator's own cluster.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from invoke.config import Config
from invoke.context import Context

from tasks.lib.clustertest import diagnostics, plan
from tasks.lib.errors import UserError, os_error_line, signals_deferred
from tasks.lib.files import private_scratch
from tasks.lib.paths import OPERATOR_DIR_ENV, Paths
from tasks.lib.provision import discover as discovery
from tasks.lib.provision.facts import helmfile_releases
from tasks.lib.secrets import sopsfile
from tasks.lib.selftest import copy_files, worktree_files
from tasks.lib.tools import runner
from tasks.lib.tools.coherence import talenv_version
from tasks.lib.tools.runner import Command, Outcome

# --------------------------------------------------------------------------- limits

#: How long each kind of step may take, in seconds.
BOOT_DEADLINE = 20 * 60.0
MAINTENANCE_DEADLINE = 10 * 60.0
SERVER_READY_DEADLINE = 30.0
INV_DEADLINE = 15 * 60.0
BOOTSTRAP_TALOS_DEADLINE = 30 * 60.0
BOOTSTRAP_APPS_DEADLINE = 60 * 60.0
HEALTH_DEADLINE = 20 * 60.0
RECONCILE_DEADLINE = 15 * 60.0
UPGRADE_DEADLINE = 45 * 60.0
DESTROY_DEADLINE = 10 * 60.0
GIT_DEADLINE = 120.0
CHECK_TIMEOUT = 60.0
#: The git server runs for the whole journey at most.
SERVER_DEADLINE = 6 * 3600.0
#: Seconds between two looks at the cluster while waiting, and at a booting node.
POLL = 10.0
MAINTENANCE_POLL = 5.0

# --------------------------------------------------------------------------- names

#: What the scratch copy does not take from the repository: the rendered tree (rendered
#: again for the VM network, with the test's own key) and the operator's secrets.
NOT_COPIED = (
    "kubernetes",
    "talos",
    "bootstrap",
    ".sops.yaml",
    ".configure-manifest.json",
    "cluster.sops.yaml",
)
#: Who commits in the scratch copy.
COMMITTER = {
    "GIT_AUTHOR_NAME": "home-ops cluster test",
    "GIT_AUTHOR_EMAIL": "cluster-test@home-ops.test",
    "GIT_COMMITTER_NAME": "home-ops cluster test",
    "GIT_COMMITTER_EMAIL": "cluster-test@home-ops.test",
    "GIT_TERMINAL_PROMPT": "0",
}
#: The Secret that Flux must decrypt, where it goes, and the value it must end up with.
SOPS_SECRET = "cluster-test-sops"  # noqa: S105 - a Secret's name
SOPS_NAMESPACE = "default"
SOPS_FILE = f"kubernetes/apps/{SOPS_NAMESPACE}/{SOPS_SECRET}.sops.yaml"
SOPS_VALUE = "decrypted-by-flux"
#: The day-2 app: the chart and the image of the bundled echo app, under another name.
DAY2_APP = "cluster-test-app"
DAY2_NAMESPACE = "default"
ECHO = Path("kubernetes/apps/default/echo/app")
#: ``bootstrap.*`` stop while ``inv init``'s placeholders are in the secrets: the test's are
#: placeholders on purpose (no Cloudflare account, no 1Password).
YES = ("--yes",)
#: The Flux Kustomization that applies kubernetes/apps (its Secret and app folders).
CLUSTER_APPS = "cluster-apps"
FLUX_NAMESPACE = "flux-system"


@dataclass(frozen=True)
class Options:
    """What ``inv dev.cluster-test`` was asked for."""

    controlplanes: int = 1
    workers: int = -1
    nodes: str = ""
    cidr: str = plan.DEFAULT_CIDR
    gateway: str = ""
    diagnostics: str = "cluster-test-diagnostics"


class StepFailed(UserError):
    """A step of the journey failed; its lines say why."""


@dataclass
class Record:
    number: int
    name: str
    ok: bool = False
    seconds: float = 0.0


@dataclass
class Steps:
    """The steps of one journey, by name (the tests inject failures by these names)."""

    items: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def add(self, name: str, step: Callable[[], object]) -> None:
        self.items.append((name, step))


# --------------------------------------------------------------------------- environment


def scratch_variables(scratch: Path, tools: Path) -> dict[str, str]:
    """Every tool reads the scratch copy's files, never the caller's (KUBECONFIG,
    TALOSCONFIG and the age key are the ones tools read by default)."""
    return {
        "KUBECONFIG": str(scratch / "kubeconfig"),
        "TALOSCONFIG": str(scratch / "talos" / "clusterconfig" / "talosconfig"),
        "SOPS_AGE_KEY_FILE": str(scratch / "age.key"),
        OPERATOR_DIR_ENV: str(scratch),
        runner.TOOLS_DIR_ENV: str(tools),
    }


#: Variables of the caller's that would point a tool at something else: unset meanwhile.
UNSET = ("SOPS_CONFIG", "SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD", "SOPS_AGE_RECIPIENTS", "GIT_DIR", "GIT_WORK_TREE")


@contextlib.contextmanager
def environment(values: Mapping[str, str], unset: Sequence[str] = UNSET) -> Iterator[None]:
    """This process's environment with ``values`` set and ``unset`` removed while the block
    runs (every command the runner starts inherits it), then exactly as before."""
    saved = {name: os.environ.get(name) for name in (*values, *unset)}
    os.environ.update(values)
    for name in unset:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --------------------------------------------------------------------------- this machine


def sudo_prefix() -> list[str]:
    """talosctl's QEMU provisioner must run as root (it creates the bridge and NAT rules):
    ``sudo`` without a password prompt, keeping the environment (TALOSCONFIG, HOME)."""
    return [] if os.geteuid() == 0 else ["sudo", "-n", "-E"]


def qemu_binary() -> str:
    machine = platform.machine().lower()
    return "qemu-system-aarch64" if machine in ("aarch64", "arm64") else "qemu-system-x86_64"


def kvm_problem(device: Path = Path("/dev/kvm")) -> str | None:
    try:
        mode = device.stat().st_mode
    except OSError:
        return (
            f"KVM: {device} is missing — enable virtualisation (VT-x/AMD-V) in the firmware "
            "(nested virtualisation in a VM) and load the kvm module"
        )
    if not stat.S_ISCHR(mode):
        return f"KVM: {device} is not a device"
    return None


def qemu_problem() -> str | None:
    binary = qemu_binary()
    if runner.find_tool(binary) is None:
        return (
            f"QEMU: {binary} not found — install QEMU (Debian/Ubuntu: "
            "apt-get install qemu-system-x86 qemu-utils ovmf; in Actions `inv ci.install-qemu`)"
        )
    return None


def install_qemu(c: Context) -> None:
    """``inv ci.install-qemu``: QEMU's packages with apt-get (as root, through sudo when not
    root), unless QEMU is installed already."""
    binary = qemu_binary()
    dry = runner.is_dry(c)
    if runner.find_tool(binary) is not None and not dry:
        print(f"{binary} is installed already")
        return
    if runner.find_tool("apt-get") is None and not dry:
        raise UserError(f"no apt-get here: install QEMU ({binary}) with this system's package manager")
    sudo = sudo_prefix()
    runner.run(c, [*sudo, "apt-get", "update", "--quiet"], timeout=600, what="updating the package lists")
    install = [*sudo, "apt-get", "install", "--quiet", "--yes", "--no-install-recommends"]
    install += plan.QEMU_PACKAGES
    runner.run(c, install, timeout=1200, stream=True, what="installing QEMU")
    if not dry:
        print(f"installed {', '.join(plan.QEMU_PACKAGES)}")


TOOLS = ("git", "talosctl", "talhelper", "sops", "kubectl", "flux", "helm", "helmfile")


def talos_version(root: Path) -> str:
    """The Talos version the repository renders (talenv.yaml), ``vX.Y.Z``: the ISO the VMs
    boot matches the version the nodes are configured for."""
    found = talenv_version(root, "talosVersion")
    if found is None:
        raise UserError("talos/talenv.yaml (or its template) names no talosVersion — run `inv configure`")
    return f"v{found[1]}"


# --------------------------------------------------------------------------- the journey


class Journey:
    """One cluster test: :meth:`run` runs every step, then always :meth:`teardown`."""

    def __init__(self, c: Context, paths: Paths, the_plan: plan.Plan, options: Options) -> None:
        self.c = c
        self.paths = paths
        self.plan = the_plan
        self.options = options
        self.dry = runner.is_dry(c)
        self.echo = runner.echoes(c)
        self.stack = contextlib.ExitStack()
        self.records: list[Record] = []
        self.outputs: dict[str, list[str]] = {}
        self.current = ""
        self.server: runner.Batch | None = None
        self.vms_started = False
        self.entries: list[discovery.NodeEntry] = []
        self.url = plan.repository_url(the_plan.gateway, "PORT")
        self.scratch = Path("$SCRATCH")
        self.state = Path("$STATE")
        self.diagnostics_folder = diagnostics_folder(paths, options.diagnostics)

    # ---------------------------------------------------------------- plumbing

    @property
    def scratch_paths(self) -> Paths:
        return Paths(self.scratch)

    @property
    def context(self) -> Context:
        """An Invoke context for the scratch copy (what library steps take)."""
        overrides = {"home_ops": {"root": str(self.scratch)}, "run": {"dry": self.dry, "echo": self.echo}}
        return Context(config=Config(overrides=overrides))

    def run(
        self,
        argv: Sequence[str],
        *,
        what: str,
        cwd: Path | None = None,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        deadline: float = CHECK_TIMEOUT,
        stream: bool = False,
        check: bool = True,
    ) -> Outcome:
        command = Command(
            tuple(argv),
            stdin=stdin.encode() if stdin is not None else None,
            cwd=cwd,
            env=dict(env or {}),
            deadline=deadline,
            what=what,
            stream=stream,
        )
        outcome = runner.run_one(command, paths=self.scratch_paths, dry=self.dry, echo=self.echo)
        self.keep_output(outcome)
        if check and outcome.failed:
            raise StepFailed(*failure_lines(outcome))
        return outcome

    def keep_output(self, outcome: Outcome) -> None:
        if outcome.dry:
            return
        lines = self.outputs.setdefault(self.current, [])
        lines.append(f"$ {runner.redact(outcome.command.shown())}  # exit {outcome.returncode}")
        lines += (outcome.stdout + outcome.stderr).splitlines()
        del lines[: max(0, len(lines) - diagnostics.STEP_LINES)]

    def inv(self, *args: str, deadline: float = INV_DEADLINE) -> Outcome:
        """``inv ARGS`` in the scratch copy (its own tasks, its own files), output shown live."""
        return self.run(
            (sys.executable, "-m", "tasks", *args),
            cwd=self.scratch,
            deadline=deadline,
            stream=True,
            what=f"running `inv {' '.join(args)}` in the scratch copy",
        )

    def git(self, *args: str, cwd: Path | None = None) -> Outcome:
        """git in the scratch copy (or ``cwd``), as the test's committer, never prompting."""
        what = f"git {next(arg for arg in args if not arg.startswith('-') and '=' not in arg)}"
        return self.run(
            ("git", *args), cwd=cwd or self.scratch, env=COMMITTER, deadline=GIT_DEADLINE, what=what
        )

    def say(self, line: str) -> None:
        print(line, flush=True)

    def wait(self, check: plan.Check, deadline: float | None = None) -> None:
        """Until ``check`` passes, with a progress line; at its deadline (by default
        :data:`HEALTH_DEADLINE`), what was still wrong."""
        runner.retry(
            self.context,
            check.argv,
            waiting_for=check.what,
            deadline=HEALTH_DEADLINE if deadline is None else deadline,
            interval=POLL,
            attempt_timeout=CHECK_TIMEOUT,
            accept=lambda outcome: not check.problems(outcome.stdout),
            why_not=lambda outcome: "; ".join(check.problems(outcome.stdout)[:3]),
        )

    # ---------------------------------------------------------------- the steps

    def steps(self) -> Steps:
        steps = Steps()
        steps.add("check this machine", self.check_machine)
        if self.plan.boot:
            steps.add("boot the VMs in maintenance mode", self.boot)
        steps.add("wait for the nodes' maintenance API", self.wait_for_maintenance)
        steps.add("discover the nodes", self.discover)
        steps.add("start the git server", self.start_server)
        steps.add("set up the scratch copy", self.set_up_scratch)
        steps.add("init (a throw-away key)", lambda: self.inv("init"))
        steps.add("configure", lambda: self.inv("configure"))
        steps.add("push the rendered repository", lambda: self.commit_and_push("rendered for the VM network"))
        steps.add("bootstrap.talos", self.bootstrap_talos)
        steps.add("bootstrap.apps", self.bootstrap_apps)
        steps.add("the cluster is healthy", self.assert_healthy)
        steps.add("again: configure changes nothing", self.configure_again)
        steps.add("again: bootstrap.talos", self.bootstrap_talos)
        steps.add("again: bootstrap.apps", self.bootstrap_apps)
        steps.add("again: the cluster is healthy", self.assert_healthy)
        steps.add("a SOPS Secret decrypted by Flux", self.sops_secret)
        steps.add("day 2: app.new, pushed and Ready", self.day2_app)
        steps.add("day 2: talos.upgrade of one node", self.day2_upgrade)
        return steps

    def check_machine(self) -> None:
        problems = [runner.missing_tool_message(tool) for tool in TOOLS if runner.find_tool(tool) is None]
        if runner.find_tool("kustomize") is None and runner.find_tool("kubectl") is None:
            problems.append(runner.missing_tool_message("kustomize"))
        if self.plan.boot:
            problems += [p for p in (kvm_problem(), qemu_problem()) if p]
            if sudo_prefix() and runner.find_tool("sudo") is None:
                problems.append("sudo: not found — talosctl's QEMU provisioner runs as root: install sudo")
            elif sudo_prefix():
                sudo = self.run(
                    ["sudo", "-n", "true"], what="checking sudo works without a password", check=False
                )
                if sudo.failed:
                    problems.append(
                        "sudo: `sudo -n true` failed — talosctl's QEMU provisioner runs as root: "
                        "allow passwordless sudo (or run as root)"
                    )
        if problems and self.dry:
            for problem in problems:
                print(f"note: {problem}", file=sys.stderr)
        elif problems:
            raise StepFailed(*problems)
        elif not self.dry:
            self.say(f"  tools found{'; KVM, QEMU and sudo ready' if self.plan.boot else ''}")

    def boot(self) -> None:
        talosctl = runner.find_tool("talosctl") or "talosctl"  # by path: sudo resets PATH
        argv = plan.create_argv(
            self.plan,
            state=str(self.state),
            talosctl=talosctl,
            talos_version=talos_version(self.paths.root),
            sudo=sudo_prefix(),
        )
        self.vms_started = True  # a create that fails half-way still needs its destroy
        self.run(argv, cwd=self.state, deadline=BOOT_DEADLINE, stream=True, what="booting the VMs")

    def wait_for_maintenance(self) -> None:
        for address in self.plan.nodes:
            runner.retry(
                self.context,
                discovery.read_argv(address, "links"),
                waiting_for=f"{address} to answer in maintenance mode",
                deadline=MAINTENANCE_DEADLINE,
                interval=MAINTENANCE_POLL,
                attempt_timeout=discovery.READ_TIMEOUT,
            )

    def discover(self) -> None:
        for address in self.plan.nodes:
            found = discovery.read_node(self.context, address)
            if found is None:  # --dry
                continue
            name = self.plan.node_name(address)
            entry = discovery.node_entry(found, name=name, controller=self.plan.is_controller(address))
            self.entries.append(entry)
            self.say("\n".join(f"  {line}" for line in entry.yaml().splitlines()))
        if self.dry:
            self.say("# then write nodes.yaml from what each node said (name k8s-N, MAC, disk, schematic)")

    def start_server(self) -> None:
        root = self.state / "git"
        if not self.dry:
            root.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--bare", "--initial-branch", plan.BRANCH, plan.REPOSITORY, cwd=root)
        ready = self.state / "git-server.ready"
        log = self.state / "git-server.log"
        command = Command(
            (
                sys.executable,
                "-m",
                "tasks.lib.clustertest.gitserver",
                "--root",
                str(root),
                "--listen",
                self.plan.gateway,
                "--ready",
                str(ready),
                "--log",
                str(log),
                "--deadline",
                f"{SERVER_DEADLINE:g}",
            ),
            deadline=SERVER_DEADLINE + 60,
            what="serving the repository to the cluster",
        )
        if self.dry:
            print(f"{command.shown()} &")
            self.say(f"# then the cluster pulls from {self.url} (the port the server chose)")
            return
        self.server = self.stack.enter_context(runner.started([command], paths=self.scratch_paths))
        until = time.monotonic() + SERVER_READY_DEADLINE
        while not ready.exists() and self.server.jobs and time.monotonic() < until:
            self.server.step()
        if not ready.exists():
            told = log.read_text(errors="replace").strip() if log.exists() else ""
            raise StepFailed(
                f"the git server did not start listening on {self.plan.gateway} "
                f"within {SERVER_READY_DEADLINE:g} s",
                *(f"  {line}" for line in told.splitlines()[-5:]),
            )
        host, _, port = ready.read_text().strip().rpartition(":")
        self.url = plan.repository_url(host, port)
        self.run(["git", "ls-remote", self.url], what="checking the git server answers", env=COMMITTER)
        self.say(f"  serving {self.url}")

    def set_up_scratch(self) -> None:
        if self.dry:
            self.say(
                "# copy the files git knows of this repository into $SCRATCH, without "
                f"{', '.join(NOT_COPIED)}; write cluster.yaml and nodes.yaml for the VM network"
            )
        else:
            copy_files(self.paths.root, worktree_files(self.paths.root), self.scratch)
            for name in NOT_COPIED:
                target = self.scratch / name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
            settings = plan.cluster_settings(self.plan, self.url)
            (self.scratch / "cluster.yaml").write_text(plan.cluster_document(settings), encoding="utf-8")
            (self.scratch / "nodes.yaml").write_text(discovery.nodes_document(self.entries), encoding="utf-8")
        self.git("init", "--quiet", "--initial-branch", plan.BRANCH)
        self.git("remote", "add", "origin", self.url)

    def commit_and_push(self, message: str) -> None:
        """Commit whatever changed (nothing: no commit) and push it where the cluster pulls from."""
        self.git("add", "--all")
        status = self.git("status", "--porcelain")
        if status.stdout.strip() or self.dry:
            # The operator's own git configuration may sign or run hooks: not in the scratch copy.
            self.git("-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify", "--message", message)
        self.git("push", "--quiet", "--no-verify", "--set-upstream", "origin", plan.BRANCH)

    def bootstrap_talos(self) -> None:
        self.inv("bootstrap.talos", *YES, deadline=BOOTSTRAP_TALOS_DEADLINE)
        self.commit_and_push("the Talos secrets")

    def bootstrap_apps(self) -> None:
        self.inv("bootstrap.apps", *YES, deadline=BOOTSTRAP_APPS_DEADLINE)

    def assert_healthy(self) -> None:
        for check in plan.health_checks(len(self.plan.nodes), self.system_namespaces()):
            self.wait(check)

    def system_namespaces(self) -> list[str]:
        """The namespaces bootstrap.apps installs into (the bootstrap helmfile's releases)."""
        root = self.paths.root if self.dry else self.scratch
        helmfile = root / "bootstrap" / "helmfile.d" / "01-apps.yaml"
        if not helmfile.exists():
            return ["kube-system", "flux-system"]
        releases = helmfile_releases(helmfile, "bootstrap/helmfile.d/01-apps.yaml")
        return list(dict.fromkeys(release.namespace for release in releases))

    def configure_again(self) -> None:
        self.inv("configure")
        changed = self.git("status", "--porcelain")
        if changed.stdout.strip():
            raise StepFailed(
                "configure changed the tree on its second run (it must be idempotent):",
                *(f"  {line}" for line in changed.stdout.splitlines()[:20]),
            )

    def sops_secret(self) -> None:
        manifest = plan.secret_manifest(SOPS_SECRET, SOPS_NAMESPACE, SOPS_VALUE)
        encrypted = self.run(
            sopsfile.encrypt_argv(SOPS_FILE),
            stdin=manifest,
            cwd=self.scratch,
            what="encrypting the test Secret",
        )
        kustomization = self.scratch / "kubernetes" / "apps" / SOPS_NAMESPACE / "kustomization.yaml"
        if self.dry:
            self.say(f"# write it to {SOPS_FILE} and list it in {SOPS_NAMESPACE}'s kustomization.yaml")
        else:
            if not sopsfile.is_encrypted_text(encrypted.stdout, SOPS_FILE):
                raise StepFailed(f"sops did not encrypt {SOPS_FILE}")
            (self.scratch / SOPS_FILE).write_text(encrypted.stdout, encoding="utf-8")
            text = kustomization.read_text(encoding="utf-8")
            kustomization.write_text(plan.add_resource(text, f"./{Path(SOPS_FILE).name}"), encoding="utf-8")
        self.commit_and_push("a SOPS-encrypted Secret")
        self.reconcile()
        argv = ("kubectl", "get", "secret", SOPS_SECRET, "--namespace", SOPS_NAMESPACE, "--output=json")
        runner.retry(
            self.context,
            argv,
            waiting_for=f"Flux to decrypt and apply Secret {SOPS_NAMESPACE}/{SOPS_SECRET}",
            deadline=RECONCILE_DEADLINE,
            interval=POLL,
            attempt_timeout=CHECK_TIMEOUT,
            accept=lambda outcome: plan.secret_value(outcome.stdout) == SOPS_VALUE,
            why_not=lambda outcome: f"its value is {plan.secret_value(outcome.stdout)!r}, not {SOPS_VALUE!r}",
        )

    def reconcile(self) -> None:
        argv = [
            "flux",
            "reconcile",
            "kustomization",
            CLUSTER_APPS,
            "--namespace",
            FLUX_NAMESPACE,
            "--with-source",
            "--timeout",
            f"{RECONCILE_DEADLINE / 60:g}m",
        ]
        self.run(argv, deadline=RECONCILE_DEADLINE + 60, stream=True, what="asking Flux to pull and apply")

    def day2_app(self) -> None:
        chart, version, image = self.echo_chart()
        self.inv("app.new", DAY2_APP, "--namespace", DAY2_NAMESPACE, "--chart", chart, "--version", version)
        release = (
            self.scratch / "kubernetes" / "apps" / DAY2_NAMESPACE / DAY2_APP / "app" / "helmrelease.yaml"
        )
        if self.dry:
            self.say(f"# then set its values: one container running {image}")
        else:
            release.write_text(plan.with_values(release.read_text(encoding="utf-8"), image), encoding="utf-8")
        self.inv("dev.validate")
        self.commit_and_push(f"day 2: {DAY2_APP}")
        self.reconcile()
        argv = (
            "kubectl",
            "get",
            "helmreleases.helm.toolkit.fluxcd.io",
            "--namespace",
            DAY2_NAMESPACE,
            f"--field-selector=metadata.name={DAY2_APP}",
            "--output=json",
        )
        self.wait(plan.Check(f"HelmRelease {DAY2_NAMESPACE}/{DAY2_APP}", argv, exactly=1), RECONCILE_DEADLINE)

    def echo_chart(self) -> tuple[str, str, str]:
        """The chart, version and image of the bundled echo app (what the day-2 app runs)."""
        if self.dry:
            return "oci://CHART-OF-THE-ECHO-APP", "VERSION", "IMAGE-OF-THE-ECHO-APP"
        folder = self.scratch / ECHO
        try:
            return plan.echo_chart(
                (folder / "ocirepository.yaml").read_text(encoding="utf-8"),
                (folder / "helmrelease.yaml").read_text(encoding="utf-8"),
            )
        except OSError as error:
            raise StepFailed(f"the day-2 app runs the echo app's chart and image: {error}") from None

    def day2_upgrade(self) -> None:
        target = (self.plan.workers or self.plan.controllers)[-1]
        name = self.plan.node_name(target)
        self.inv("talos.upgrade", "--node", name, "--yes", "--reinstall", deadline=UPGRADE_DEADLINE)
        self.wait(plan.health_checks(len(self.plan.nodes), [])[0])

    # ---------------------------------------------------------------- running

    def start(self) -> None:
        """The scratch copy, the VMs' state folder and the environment pointing at them."""
        if self.dry:
            return

        self.scratch = self.stack.enter_context(private_scratch("home-ops-cluster-test-"))
        self.state = Path(tempfile.mkdtemp(prefix="home-ops-vms-"))
        self.stack.enter_context(environment(scratch_variables(self.scratch, runner.tools_dir())))

    def run_all(self) -> list[Record]:
        """Every step, then the teardown, whatever happened. A failed step: the diagnostics
        are collected first, then a :class:`StepFailed` says which step and why."""
        steps = self.steps().items
        if self.dry:
            self.say(f"# cluster test: {self.plan.describe()}")
            self.say(
                "# $SCRATCH: a scratch copy of this repository; $STATE: the VMs' state and the git server's"
            )
        failure: UserError | None = None
        try:
            self.start()
            for number, (name, step) in enumerate(steps, 1):
                self.current = name
                record = Record(number, name)
                self.records.append(record)
                self.say(f"{'#' if self.dry else '==>'} [{number}/{len(steps)}] {name}")
                started = time.monotonic()
                try:
                    step()
                except UserError as error:
                    failure = error
                    break
                finally:
                    record.seconds = time.monotonic() - started
                record.ok = True
            if failure is not None and not self.dry:
                try:
                    self.collect_diagnostics(failure)
                except OSError as error:  # the failure itself matters more: say it, go on
                    print(f"the diagnostics could not be written: {os_error_line(error)}", file=sys.stderr)
        finally:
            self.teardown()
        if failure is not None:
            number, name = len(self.records), self.records[-1].name
            lines = [f"cluster test failed at step {number}/{len(steps)} ({name}):", *failure.lines]
            if not self.dry:
                lines.append(f"diagnostics: {self.paths.rel(self.diagnostics_folder)}")
            raise StepFailed(*lines)
        return self.records

    def collect_diagnostics(self, failure: UserError) -> None:
        """Everything about the cluster as it is now, into the diagnostics folder, and a
        summary of it on the screen."""
        self.current = "collecting diagnostics"
        self.diagnostics_folder = diagnostics.fresh_folder(self.diagnostics_folder)
        self.say(f"==> collecting diagnostics into {self.paths.rel(self.diagnostics_folder)}")
        commands = diagnostics.commands(self.plan.nodes, self.scratch)
        outcomes = runner.run_many(commands, paths=self.scratch_paths)
        results = list(zip(diagnostics.reads(self.plan.nodes), outcomes, strict=True))
        extra = {"summary.txt": "\n".join(self.journey_lines(failure)) + "\n"}
        log = self.state / "git-server.log"
        if log.exists():
            extra["git-server.log"] = log.read_text(errors="replace")
        for index, (name, lines) in enumerate(self.outputs.items(), 1):
            extra[f"steps/{index:02d}-{slug(name)}.log"] = "\n".join(lines) + "\n"
        diagnostics.write(self.diagnostics_folder, results, extra)
        for line in diagnostics.summary(results):
            self.say(f"  {line}")

    def journey_lines(self, failure: UserError) -> list[str]:
        lines = [f"cluster test: {self.plan.describe()}"]
        lines += [
            f"{r.number:2d}. {'ok    ' if r.ok else 'FAILED'} {r.seconds:7.1f}s  {r.name}"
            for r in self.records
        ]
        return [*lines, "", *failure.lines]

    def teardown(self) -> None:
        """Stop the git server, destroy the VMs, remove the scratch copy: always, each step
        bounded by its deadline, not cut short by another Ctrl-C (held until the end)."""
        with signals_deferred():
            self.current = "teardown"
            problems: list[str] = []
            if self.server is not None:
                self.server.stop()
                self.server = None
            if self.dry or self.plan.boot:
                self.say(
                    f"{'#' if self.dry else '==>'} always, at the end: stop the git server, "
                    f"destroy the VMs, remove $SCRATCH and $STATE"
                )
            destroyed = self.destroy(problems)
            self.stack.close()
            if destroyed and not self.dry:
                shutil.rmtree(self.state, ignore_errors=True)
            for line in problems:
                print(line, file=sys.stderr)

    def destroy(self, problems: list[str]) -> bool:
        """Destroy the VMs the test booted (True when there is nothing left to destroy)."""
        if not (self.vms_started or (self.dry and self.plan.boot)):
            return True
        talosctl = runner.find_tool("talosctl") or "talosctl"
        argv = plan.destroy_argv(self.plan, state=str(self.state), talosctl=talosctl, sudo=sudo_prefix())
        outcome = self.run(
            argv, cwd=self.state, deadline=DESTROY_DEADLINE, what="destroying the VMs", check=False
        )
        if outcome.failed:
            problems += [
                f"the VMs could not be destroyed: {outcome.problem}",
                f"  destroy them yourself: {runner.command_line(argv)}",
            ]
            return False
        self.vms_started = False
        return True


def failure_lines(outcome: Outcome) -> list[str]:
    """Why a command of the journey failed: one line, then the end of its output (a streamed
    command's output is on the screen already: only its last lines)."""
    lines = [outcome.problem]
    if not outcome.limit:
        text = runner.redact((outcome.stderr or outcome.stdout).strip())
        lines += [f"  {line}" for line in text.splitlines()[-10:] if line.strip()]
    return lines


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def diagnostics_folder(paths: Paths, name: str) -> Path:
    """``--diagnostics``: a folder inside the repository (git-ignored by default), one
    subfolder per run."""
    base = (paths.root / name).resolve()
    if not base.is_relative_to(paths.root.resolve()) or base == paths.root.resolve():
        raise UserError(f"--diagnostics {name!r}: must be a folder inside the repository")
    return base / time.strftime("%Y%m%d-%H%M%S")


def report(records: Sequence[Record]) -> list[str]:
    total = sum(r.seconds for r in records)
    lines = [f"  {r.number:2d}. {r.name:<40} {r.seconds:7.1f}s" for r in records]
    return ["cluster test passed:", *lines, f"  {len(records)} steps in {total / 60:.1f} min"]


def run(c: Context, paths: Paths, options: Options) -> None:
    """``inv dev.cluster-test``."""
    the_plan = plan.make_plan(
        controlplanes=options.controlplanes,
        workers=options.workers,
        nodes=options.nodes,
        cidr=options.cidr,
        gateway=options.gateway,
    )
    journey = Journey(c, paths, the_plan, options)
    records = journey.run_all()
    if not journey.dry:
        for line in report(records):
            print(line)


__all__ = ["Journey", "Options", "StepFailed", "run"]
