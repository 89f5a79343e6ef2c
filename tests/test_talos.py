"""``inv talos.*`` end to end against fake talhelper/talosctl/kubectl whose outputs have the
real tools' shapes (``tests/talos_shapes.py``; talhelper's gencommand lines are what the real
talhelper prints for this tree)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from invoke import Config, Context

from tasks import talos
from tasks.lib.provision import talos_ops
from tests import talos_shapes as shapes
from tests import talosctl_cli
from tests.conftest import EXAMPLE_OPERATOR, exit_code
from tests.fakes import KUBERNETES_VERSION, TALOS_VERSION, FakeTools, fail, ok, write_cluster_tree

TALOSCONFIG = "--talosconfig=./clusterconfig/talosconfig"
IMAGE0 = f"factory.talos.dev/installer/{'a' * 64}:{TALOS_VERSION}"
IMAGE1 = f"factory.talos.dev/installer/{'b' * 64}:{TALOS_VERSION}"
CP, WORKER = "192.168.1.10", "192.168.1.11"
HOSTS = {CP: "k8s-0", WORKER: "k8s-1"}


@pytest.fixture
def tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_tools: FakeTools, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """A minimal rendered repository, the example operator keys, fake tools on PATH, and
    waits that do not wait. Afterwards: every talosctl command the test made the tasks run
    is one talosctl accepts (subcommand and flags as its source defines them)."""
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    monkeypatch.setattr(talos_ops, "POLL_INTERVAL", 0.0)
    yield write_cluster_tree(tmp_path / "repo")
    if "without_a_shell" not in request.node.name:  # that one feeds a made-up flag on purpose
        calls = fake_tools.calls("talosctl")
        assert [p for call in calls if (p := talosctl_cli.argv_problem(call.argv))] == []


def context(tree: Path, dry: bool = False) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(tree)}, "run": {"dry": dry}}))


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def answer(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", FakeTerminal(text))


# --------------------------------------------------------------------------- what talhelper prints


def apply_line(ip: str, *extra: str) -> str:
    host = HOSTS[ip]
    return " ".join(
        [
            "talosctl apply-config",
            TALOSCONFIG,
            f"--nodes={ip}",
            f"--file=./clusterconfig/kubernetes-{host}.yaml",
            *extra,
        ]
    )


def upgrade_line(ip: str) -> str:
    image = IMAGE0 if ip == CP else IMAGE1
    return f"talosctl upgrade {TALOSCONFIG} --nodes={ip} --image={image} --timeout=10m"


def gencommand(*lines: str) -> dict[str, object]:
    return ok("".join(f"{line};\n" for line in lines))


def script_talhelper(fakes: FakeTools, mode: str = "auto") -> None:
    """talhelper gencommand for apply (dry run and real), upgrade and reset, per node."""
    rules: list[tuple[str, object]] = []
    for ip in (CP, WORKER):
        rules.append(
            (
                f"apply --node {ip} --extra-flags=--mode={mode},--dry-run",
                gencommand(apply_line(ip, f"--mode={mode}", "--dry-run")),
            )
        )
        rules.append(
            (f"apply --node {ip} --extra-flags=--mode={mode}", gencommand(apply_line(ip, f"--mode={mode}")))
        )
        rules.append((f"upgrade --node {ip}", gencommand(upgrade_line(ip))))
    fakes.script("talhelper", *rules)  # type: ignore[arg-type]


def talosctl_lines(fakes: FakeTools) -> list[str]:
    return [call.line for call in fakes.calls("talosctl")]


# --------------------------------------------------------------------------- generate-config


def test_generate_config_validates_every_machine_config(tree: Path, fake_tools: FakeTools, capsys) -> None:
    configs = tree / "talos" / "clusterconfig"
    for host in HOSTS.values():
        (configs / f"kubernetes-{host}.yaml").write_text("version: v1alpha1\n")
    talos.generate_config(context(tree))
    assert fake_tools.lines("talhelper") == ["talhelper genconfig"]
    assert talosctl_lines(fake_tools) == [
        f"talosctl validate --config talos/clusterconfig/kubernetes-{host}.yaml --mode metal"
        for host in ("k8s-0", "k8s-1")
    ]
    assert "validated 2 machine config(s)" in capsys.readouterr().out


def test_generate_config_reports_what_talos_rejects(tree: Path, fake_tools: FakeTools, capsys) -> None:
    (tree / "talos" / "clusterconfig" / "kubernetes-k8s-0.yaml").write_text("version: v1alpha1\n")
    reason = "1 error occurred:\n\t* install disk or diskSelector should be defined\n\n"
    fake_tools.script("talosctl", ("validate", fail(reason)))
    assert exit_code(lambda: talos.generate_config(context(tree))) == 1
    err = capsys.readouterr().err
    assert "talos/clusterconfig/kubernetes-k8s-0.yaml: Talos rejects this machine config:" in err
    assert "  1 error occurred:" in err and "* install disk or diskSelector should be defined" in err


def test_generate_config_says_when_talosctl_is_missing(tree: Path, fake_tools: FakeTools, capsys) -> None:
    (fake_tools.bin_dir / "talosctl").unlink()
    talos.generate_config(context(tree))
    assert "NOT validated: talosctl is not installed" in capsys.readouterr().err


def test_generate_config_needs_the_talsecret(tree: Path, fake_tools: FakeTools, capsys) -> None:
    (tree / "talos" / "talsecret.sops.yaml").unlink()
    (tree / "talos" / "talenv.yaml").unlink()
    assert exit_code(lambda: talos.generate_config(context(tree))) == 1
    assert fake_tools.calls() == []
    assert capsys.readouterr().err.splitlines() == [
        "talos/talenv.yaml not found — run `inv configure`",
        "talos/talsecret.sops.yaml not found — run `inv bootstrap.talos`, which creates it",
    ]


def test_failing_talhelper_shows_every_line_of_its_reason(tree: Path, fake_tools: FakeTools, capsys) -> None:
    """talhelper says what is wrong on stdout and ends with a bare log timestamp on stderr."""
    fake_tools.script(
        "talhelper",
        (
            "genconfig",
            {
                "exit": 1,
                "stdout": 'There are issues with your talhelper config file:\nfield: "talosVersion"\n'
                '  * "v1.13.8" is not a supported Talos version\n',
                "stderr": "2026/12/03 12:26:02 \n",
            },
        ),
    )
    assert exit_code(lambda: talos.generate_config(context(tree))) == 1
    err = capsys.readouterr().err
    assert "command failed (exit 1): talhelper genconfig" in err
    assert not err.rstrip().endswith("12:26:02")
    assert "fix: the installed talhelper is older than talenv.yaml's talosVersion" in err


def test_missing_tool_is_one_line(tree: Path, fake_tools: FakeTools, monkeypatch, capsys) -> None:
    (fake_tools.bin_dir / "talhelper").unlink()
    monkeypatch.setattr("tasks.lib.tools.runner.search_path", lambda: str(fake_tools.bin_dir))
    assert exit_code(lambda: talos.generate_config(context(tree))) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("talhelper not found: install talhelper 3.1.16 (pinned in .mise.toml)")


# --------------------------------------------------------------------------- discover


def script_maintenance_node(fakes: FakeTools, ip: str = "192.168.1.50", schematic: str = "c" * 64) -> None:
    fakes.script(
        "talosctl",
        (
            "get links",
            ok(
                shapes.loopback(ip)
                + shapes.link(ip, "enp1s0", "00:00:5e:00:53:aa", carrier=False)
                + shapes.link(ip, "enp2s0", "00:00:5e:00:53:bb", carrier=True)
            ),
        ),
        (
            "get disks",
            ok(
                shapes.disk(
                    ip,
                    "sda",
                    4_000_787_030_016,
                    "4.0 TB",
                    model="WDC WD40EFRX",
                    serial="WD-WCC7K0123456",
                    rotational=True,
                )
                + shapes.disk(
                    ip,
                    "nvme0n1",
                    500_107_862_016,
                    "500 GB",
                    model="Samsung SSD 980",
                    serial="S64DNF0R123456",
                    transport="nvme",
                )
                + shapes.disk(ip, "sr0", 0, "0 B", model="QEMU DVD-ROM", cdrom=True, readonly=True)
                + shapes.disk(
                    ip, "sdb", 32_010_928_128, "32 GB", model="Cruzer", serial="4C530001", transport="usb"
                )
            ),
        ),
        ("get systeminformation", ok(shapes.system_information(ip))),
        ("get extensions", ok(shapes.schematic_extension(ip, schematic))),
    )


def test_discover_prints_the_nodes_yaml_entry(tree: Path, fake_tools: FakeTools, capsys) -> None:
    script_maintenance_node(fake_tools)
    talos.discover(context(tree), ip="192.168.1.50", address="192.168.1.12", worker=True)
    assert talosctl_lines(fake_tools) == [
        f"talosctl get {what} --insecure --nodes 192.168.1.50 --output json"
        for what in ("links", "disks", "systeminformation", "extensions")
    ]
    out = capsys.readouterr().out
    entry = out[out.index("- name:") :]
    assert entry == (
        "- name: k8s-2\n  address: 192.168.1.12\n  controller: false\n  disk: S64DNF0R123456\n"
        f"  mac_addr: 00:00:5e:00:53:bb\n  schematic_id: {'c' * 64}\n"
    )
    assert "# k8s-2: Intel(R) Client Systems NUC12WSHi5, serial G6WS12345678" in out
    assert "/dev/sda, 4.0 TB, sata, WDC WD40EFRX" in out  # the other disk, named in a comment
    assert "sdb" not in out and "sr0" not in out


def test_discover_entry_passes_the_config_schema(tree: Path, fake_tools: FakeTools, capsys) -> None:
    from tasks.lib.config.checks import load_config

    script_maintenance_node(fake_tools)
    talos.discover(context(tree), ip="192.168.1.50", name="k8s-5", address="192.168.1.12")
    (entry,) = yaml.safe_load(capsys.readouterr().out)  # comments and one list item
    nodes = tree / "nodes.yaml"
    nodes.write_text(yaml.safe_dump({"nodes": [*yaml.safe_load(nodes.read_text())["nodes"], entry]}))
    loaded = load_config(tree / "cluster.yaml", nodes, tree).nodes
    assert [node["name"] for node in loaded] == ["k8s-0", "k8s-1", "k8s-5"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ip": ""}, "--ip is required"),
        ({"ip": "192.168.1.50; reboot"}, "is not an IPv4 address"),
        ({"ip": "192.168.1.50", "name": "Bad_Name"}, "--name 'Bad_Name' is not a DNS label"),
        ({"ip": "192.168.1.50", "name": "k8s-0"}, "nodes.yaml already has a node of that name"),
        ({"ip": "192.168.1.50", "address": "300.1.1.1"}, "--address '300.1.1.1' is not an IPv4 address"),
    ],
)
def test_discover_rejects_bad_input_before_running_anything(
    tree: Path, fake_tools: FakeTools, capsys, kwargs, message
) -> None:
    assert exit_code(lambda: talos.discover(context(tree), **kwargs)) == 1
    assert fake_tools.calls() == []
    assert message in capsys.readouterr().err


def test_discover_unreachable_node_says_why(tree: Path, fake_tools: FakeTools, capsys) -> None:
    fake_tools.script(
        "talosctl",
        (
            "get links",
            fail(
                "error getting resources: rpc error: code = Unavailable desc = connection error: "
                'desc = "transport: Error while dialing: dial tcp 192.168.1.50:50000: '
                'connect: no route to host"'
            ),
        ),
    )
    assert exit_code(lambda: talos.discover(context(tree), ip="192.168.1.50")) == 1
    err = capsys.readouterr().err
    assert "cannot read node 192.168.1.50" in err and "no route to host" in err
    assert "maintenance mode" in err
    assert len(fake_tools.calls()) == 1


def test_discover_without_a_cabled_link(tree: Path, fake_tools: FakeTools, capsys) -> None:
    script_maintenance_node(fake_tools)
    fake_tools.script(
        "talosctl",
        ("get links", ok(shapes.link("192.168.1.50", "enp1s0", "00:00:5e:00:53:aa", carrier=False))),
        ("get", ok("")),
    )
    assert exit_code(lambda: talos.discover(context(tree), ip="192.168.1.50")) == 1
    assert "no network link has a cable in (carrier): enp1s0 (00:00:5e:00:53:aa)" in capsys.readouterr().err


# --------------------------------------------------------------------------- nodes


def test_nodes_lists_versions_and_readiness(tree: Path, fake_tools: FakeTools, capsys) -> None:
    fake_tools.script(
        "talosctl",
        (f"version --nodes {CP}", ok(shapes.version(CP, "v1.13.8"))),
        (f"version --nodes {WORKER}", fail("rpc error: code = Unavailable desc = connection refused")),
    )
    kubectl_nodes = (
        '{"items": [{"metadata": {"name": "k8s-0"},'
        ' "status": {"conditions": [{"type": "Ready", "status": "True"}]}},'
        '{"metadata": {"name": "k8s-1"},'
        ' "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}]}'
    )
    fake_tools.script("kubectl", ("get nodes", ok(kubectl_nodes)))
    talos.nodes(context(tree))
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == [
        ["k8s-0", CP, "controller", "v1.13.8", "yes"],
        ["k8s-1", WORKER, "worker", "no", "answer", "-"],
    ]


# --------------------------------------------------------------------------- diff / apply


def test_diff_shows_each_nodes_pending_changes(tree: Path, fake_tools: FakeTools, capsys) -> None:
    script_talhelper(fake_tools)
    fake_tools.script(
        "talosctl",
        (f"--nodes={CP}", {"exit": 0, "stdout": "", "stderr": shapes.dry_run()}),
        (f"--nodes={WORKER}", {"exit": 0, "stdout": "", "stderr": shapes.dry_run("")}),
    )
    talos.diff(context(tree))
    assert talosctl_lines(fake_tools) == [
        apply_line(CP, "--mode=auto", "--dry-run"),
        apply_line(WORKER, "--mode=auto", "--dry-run"),
    ]
    out = capsys.readouterr().out
    assert f"k8s-0 ({CP}): Applied configuration without a reboot (skipped in dry-run)." in out
    assert '+        net.core.rmem_max: "8500000"' in out
    assert f"k8s-1 ({WORKER}): no changes" in out


@pytest.mark.parametrize("node", ["k8s-1", WORKER])
def test_diff_of_one_node_by_name_or_address(tree: Path, fake_tools: FakeTools, node: str) -> None:
    script_talhelper(fake_tools)
    fake_tools.script("talosctl", (None, {"exit": 0, "stdout": "", "stderr": shapes.dry_run("")}))
    talos.diff(context(tree), node=node)
    assert talosctl_lines(fake_tools) == [apply_line(WORKER, "--mode=auto", "--dry-run")]


def test_unknown_node_lists_the_nodes(tree: Path, fake_tools: FakeTools, capsys) -> None:
    assert exit_code(lambda: talos.diff(context(tree), node="k8s-9")) == 1
    assert fake_tools.calls() == []
    assert (
        f"--node 'k8s-9' is neither the name nor an address of a node in talos/talconfig.yaml "
        f"(nodes: k8s-0 ({CP}), k8s-1 ({WORKER}))"
    ) in capsys.readouterr().err


def script_apply(fakes: FakeTools, mode: str = "auto") -> None:
    script_talhelper(fakes, mode)
    fakes.script(
        "talosctl",
        ("get machineconfig", ok("")),
        (
            f"--nodes={CP} --file=./clusterconfig/kubernetes-k8s-0.yaml --mode={mode} --dry-run",
            {"exit": 0, "stdout": "", "stderr": shapes.dry_run()},
        ),
        (
            f"--nodes={WORKER} --file=./clusterconfig/kubernetes-k8s-1.yaml --mode={mode} --dry-run",
            {"exit": 0, "stdout": "", "stderr": shapes.dry_run("")},
        ),
        ("apply-config", ok("")),
    )


def test_apply_with_yes_applies_only_what_changed(tree: Path, fake_tools: FakeTools, capsys) -> None:
    script_apply(fake_tools)
    talos.apply(context(tree), yes=True)
    assert talosctl_lines(fake_tools) == [
        f"talosctl --nodes {CP} get machineconfig",
        apply_line(CP, "--mode=auto", "--dry-run"),
        apply_line(CP, "--mode=auto"),
        f"talosctl --nodes {WORKER} get machineconfig",
        apply_line(WORKER, "--mode=auto", "--dry-run"),
    ]
    out = capsys.readouterr().out
    assert "applied to 1 of 2 node(s)" in out


@pytest.mark.parametrize(("reply", "applied"), [("yes\n", True), ("no\n", False), ("", False)])
def test_apply_asks_with_the_diff_shown(
    tree: Path, fake_tools: FakeTools, monkeypatch, capsys, reply, applied
) -> None:
    script_apply(fake_tools, "staged")
    answer(monkeypatch, reply)
    if applied:
        talos.apply(context(tree), node="k8s-0", mode="staged")
    else:
        assert exit_code(lambda: talos.apply(context(tree), node="k8s-0", mode="staged")) == 1
        assert "cancelled: nothing was changed" in capsys.readouterr().err
    assert (apply_line(CP, "--mode=staged") in talosctl_lines(fake_tools)) is applied


def test_apply_refuses_without_a_terminal(tree: Path, fake_tools: FakeTools, monkeypatch, capsys) -> None:
    script_apply(fake_tools)
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))  # piped "yes" is not a confirmation
    assert exit_code(lambda: talos.apply(context(tree))) == 1
    assert apply_line(CP, "--mode=auto") not in talosctl_lines(fake_tools)
    assert "pass --yes to confirm non-interactively" in capsys.readouterr().err


def test_apply_rejects_a_bad_mode_before_running_anything(tree: Path, fake_tools: FakeTools, capsys) -> None:
    assert exit_code(lambda: talos.apply(context(tree), mode="sideways", yes=True)) == 1
    assert fake_tools.calls() == []
    assert "--mode 'sideways' is not one of auto, no-reboot, reboot, staged, try" in capsys.readouterr().err


def test_apply_stops_when_a_node_does_not_answer(tree: Path, fake_tools: FakeTools, capsys) -> None:
    script_talhelper(fake_tools)
    fake_tools.script(
        "talosctl", ("get machineconfig", fail("dial tcp 192.168.1.10:50000: connect: connection refused"))
    )
    assert exit_code(lambda: talos.apply(context(tree), yes=True)) == 1
    assert talosctl_lines(fake_tools) == [f"talosctl --nodes {CP} get machineconfig"]
    assert "connection refused" in capsys.readouterr().err


def test_generated_commands_run_without_a_shell(tree: Path, fake_tools: FakeTools) -> None:
    """An argument with shell metacharacters reaches talosctl verbatim."""
    fake_tools.script(
        "talhelper",
        ("gencommand", ok(f"talosctl upgrade-k8s '--note=$(touch pwned); `id`' --nodes={CP};\n")),
    )
    talos.upgrade_k8s(context(tree))
    (call,) = fake_tools.calls("talosctl")
    assert call.argv == ["upgrade-k8s", "--note=$(touch pwned); `id`", f"--nodes={CP}"]
    assert not (tree / "talos" / "pwned").exists()


# --------------------------------------------------------------------------- upgrade

HEALTHY = shapes.etcd_status([(CP, "7a1b2c3d4e5f6a7b", "7a1b2c3d4e5f6a7b", False, "")])


def script_upgrade(fakes: FakeTools, *, worker_comes_back: bool = True) -> None:
    script_talhelper(fakes)
    old, new = "v1.13.0", TALOS_VERSION
    fakes.script(
        "talosctl",
        ("get machineconfig", ok("")),
        (
            f"version --nodes {CP}",
            [ok(shapes.version(CP, old)), ok(shapes.version(CP, old)), ok(shapes.version(CP, new))],
        ),
        (
            f"version --nodes {WORKER}",
            [ok(shapes.version(WORKER, old))] * 2
            + [ok(shapes.version(WORKER, new if worker_comes_back else old))],
        ),
        (
            "etcd status",
            [ok(shapes.etcd_status([(CP, "7a1b2c3d4e5f6a7b", "0000000000000000", True, "")])), ok(HEALTHY)],
        ),
        ("upgrade", ok("")),
    )


def test_upgrade_is_rolling_and_waits_for_each_node(tree: Path, fake_tools: FakeTools, capsys) -> None:
    script_upgrade(fake_tools)
    talos.upgrade(context(tree), yes=True)
    assert talosctl_lines(fake_tools) == [
        f"talosctl --nodes {CP} get machineconfig",
        f"talosctl version --nodes {CP}",
        upgrade_line(CP),
        f"talosctl version --nodes {CP}",
        f"talosctl version --nodes {CP}",  # back at the new version on the second look
        f"talosctl etcd status --nodes {CP}",
        f"talosctl etcd status --nodes {CP}",  # a learner first, healthy the second time
        f"talosctl --nodes {WORKER} get machineconfig",
        f"talosctl version --nodes {WORKER}",
        upgrade_line(WORKER),
        f"talosctl version --nodes {WORKER}",
        f"talosctl version --nodes {WORKER}",
        f"talosctl etcd status --nodes {CP}",
    ]
    out = capsys.readouterr().out
    assert f"upgrading k8s-0 ({CP}) from v1.13.0 to {IMAGE0}" in out


def test_upgrade_stops_at_the_first_node_that_does_not_come_back(
    tree: Path, fake_tools: FakeTools, monkeypatch, capsys
) -> None:
    script_upgrade(fake_tools, worker_comes_back=False)
    monkeypatch.setattr(talos_ops, "BACK_DEADLINE", 0.0)
    assert exit_code(lambda: talos.upgrade(context(tree), node="k8s-1", yes=True)) == 1
    err = capsys.readouterr().err
    assert f"gave up waiting for k8s-1 to answer at {TALOS_VERSION}" in err
    assert "stopped at k8s-1; not upgraded: none" in err


def test_upgrade_skips_a_node_already_at_the_version(tree: Path, fake_tools: FakeTools, capsys) -> None:
    script_talhelper(fake_tools)
    fake_tools.script("talosctl", ("version", ok(shapes.version(CP, TALOS_VERSION))))
    talos.upgrade(context(tree), node=CP, yes=True)
    assert not any(" upgrade " in f" {line} " for line in talosctl_lines(fake_tools))
    assert f"k8s-0 ({CP}): already at {TALOS_VERSION}" in capsys.readouterr().out


def test_upgrade_asks_naming_the_nodes_and_images(
    tree: Path, fake_tools: FakeTools, monkeypatch, capsys
) -> None:
    answer(monkeypatch, "no\n")
    assert exit_code(lambda: talos.upgrade(context(tree))) == 1
    out = capsys.readouterr().out
    assert f"Upgrade Talos to {TALOS_VERSION}, one node at a time" in out
    assert f"k8s-0 ({CP}) -> {IMAGE0}" in out and f"k8s-1 ({WORKER}) -> {IMAGE1}" in out
    assert fake_tools.calls() == []


def test_upgrade_without_image_url(tree: Path, fake_tools: FakeTools, capsys) -> None:
    talconfig = tree / "talos" / "talconfig.yaml"
    talconfig.write_text(
        talconfig.read_text().replace(f"talosImageURL: factory.talos.dev/installer/{'b' * 64}", "")
    )
    assert exit_code(lambda: talos.upgrade(context(tree), node="k8s-1", yes=True)) == 1
    assert "talos/talconfig.yaml: node k8s-1 has no talosImageURL" in capsys.readouterr().err
    assert fake_tools.calls() == []


def test_upgrade_k8s(tree: Path, fake_tools: FakeTools, capsys) -> None:
    line = (
        f"talosctl upgrade-k8s {TALOSCONFIG} --to={KUBERNETES_VERSION} --to={KUBERNETES_VERSION} --nodes={CP}"
    )
    fake_tools.script(
        "talhelper", (f"gencommand upgrade-k8s --extra-flags=--to={KUBERNETES_VERSION}", ok(f"{line};\n"))
    )
    talos.upgrade_k8s(context(tree))
    assert talosctl_lines(fake_tools) == [line]
    assert f"upgrading Kubernetes to {KUBERNETES_VERSION}" in capsys.readouterr().out


def test_failed_generated_command_stops_with_its_error(tree: Path, fake_tools: FakeTools, capsys) -> None:
    line = f"talosctl upgrade-k8s {TALOSCONFIG} --nodes={CP}"
    fake_tools.script("talhelper", ("gencommand", ok(f"{line};\n")))
    fake_tools.script(
        "talosctl", ("upgrade-k8s", fail("error: rpc error: code = Unavailable\nsecond line of reason"))
    )
    assert exit_code(lambda: talos.upgrade_k8s(context(tree))) == 1
    err = capsys.readouterr().err
    assert f"command failed (exit 1): {line}" in err
    assert "rpc error: code = Unavailable" in err and "second line of reason" in err


# --------------------------------------------------------------------------- reset

RESET_WIPE = "--system-labels-to-wipe=STATE --system-labels-to-wipe=EPHEMERAL"


def test_reset_node_graceful_with_yes(tree: Path, fake_tools: FakeTools) -> None:
    flags = "--reboot,--system-labels-to-wipe=STATE,--system-labels-to-wipe=EPHEMERAL"
    flags += ",--graceful=true,--wait=false"
    line = f"talosctl reset {TALOSCONFIG} --nodes={WORKER} {flags.replace(',', ' ')}"
    fake_tools.script(
        "talhelper", (f"gencommand reset --node {WORKER} --extra-flags={flags}", ok(f"{line};\n"))
    )
    talos.reset_node(context(tree), node="k8s-1", yes=True)
    assert talosctl_lines(fake_tools) == [line]


def test_reset_node_refuses_the_only_controller(tree: Path, fake_tools: FakeTools, capsys) -> None:
    assert exit_code(lambda: talos.reset_node(context(tree), node="k8s-0", yes=True)) == 1
    assert "k8s-0 is the only controller" in capsys.readouterr().err
    assert fake_tools.calls() == []


def test_reset_node_needs_a_node(tree: Path, fake_tools: FakeTools, capsys) -> None:
    assert exit_code(lambda: talos.reset_node(context(tree), yes=True)) == 1
    assert "--node is required" in capsys.readouterr().err


def test_reset_asks_naming_the_nodes(tree: Path, fake_tools: FakeTools, monkeypatch, capsys) -> None:
    answer(monkeypatch, "y\n")
    assert exit_code(lambda: talos.reset(context(tree))) == 1
    assert f"This DESTROYS the cluster: k8s-0 ({CP}), k8s-1 ({WORKER})" in capsys.readouterr().out
    assert fake_tools.calls() == []


@pytest.mark.parametrize("wipe_disk", [False, True])
def test_reset_with_yes(tree: Path, fake_tools: FakeTools, wipe_disk: bool) -> None:
    wipe = "" if wipe_disk else ",--system-labels-to-wipe=STATE,--system-labels-to-wipe=EPHEMERAL"
    flags = f"--reboot{wipe},--graceful=false,--wait=false"
    lines = [f"talosctl reset {TALOSCONFIG} --nodes={ip} {flags.replace(',', ' ')}" for ip in (CP, WORKER)]
    fake_tools.script(
        "talhelper", (f"gencommand reset --extra-flags={flags}", ok("".join(f"{x};\n" for x in lines)))
    )
    talos.reset(context(tree), yes=True, wipe_disk=wipe_disk)
    assert talosctl_lines(fake_tools) == lines


# --------------------------------------------------------------------------- --dry


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda c: talos.generate_config(c),
            [
                "talhelper genconfig",
                "talosctl validate --config talos/clusterconfig/kubernetes-k8s-1.yaml --mode metal",
            ],
        ),
        (
            lambda c: talos.discover(c, ip="192.168.1.50"),
            [
                f"talosctl get {r} --insecure --nodes 192.168.1.50 --output json"
                for r in ("links", "disks", "systeminformation", "extensions")
            ],
        ),
        (
            lambda c: talos.nodes(c),
            [
                f"talosctl version --nodes {CP}",
                f"talosctl version --nodes {WORKER}",
                "kubectl get nodes --output=json",
            ],
        ),
        (
            lambda c: talos.diff(c, node="k8s-1"),
            [
                f"talhelper gencommand apply --node {WORKER} --extra-flags=--mode=auto,--dry-run",
                "# then run the talosctl apply-config --dry-run it prints for k8s-1",
            ],
        ),
        (
            lambda c: talos.apply(c, mode="reboot"),
            [
                f"talosctl --nodes {CP} get machineconfig",
                f"talhelper gencommand apply --node {CP} --extra-flags=--mode=reboot,--dry-run",
                f"talhelper gencommand apply --node {CP} --extra-flags=--mode=reboot",
                f"talhelper gencommand apply --node {WORKER} --extra-flags=--mode=reboot",
            ],
        ),
        (
            lambda c: talos.upgrade(c),
            [
                f"talosctl version --nodes {CP}",
                f"talhelper gencommand upgrade --node {CP} --extra-flags=--timeout=10m",
                "# then run each talosctl command it prints (no shell), upgrading Talos",
                f"talosctl etcd status --nodes {CP}",
                f"talhelper gencommand upgrade --node {WORKER} --extra-flags=--timeout=10m",
            ],
        ),
        (
            lambda c: talos.upgrade_k8s(c),
            [f"talhelper gencommand upgrade-k8s --extra-flags=--to={KUBERNETES_VERSION}"],
        ),
        (
            lambda c: talos.reset_node(c, node=WORKER),
            [f"talhelper gencommand reset --node {WORKER} --extra-flags=--reboot"],
        ),
        (
            lambda c: talos.reset(c),
            ["talhelper gencommand reset --extra-flags=--reboot,--system-labels-to-wipe=STATE"],
        ),
    ],
)
def test_dry_runs_nothing_and_lists_every_command(
    tree: Path, fake_tools: FakeTools, capsys, call, expected
) -> None:
    (tree / "kubeconfig").write_text("apiVersion: v1\n")
    call(context(tree, dry=True))
    assert fake_tools.calls() == []  # not even talhelper gencommand
    out = capsys.readouterr().out
    for line in expected:
        assert line in out


def test_the_mode_help_names_every_mode_the_task_accepts() -> None:
    from tasks.lib.provision.facts import APPLY_MODES

    assert ", ".join(APPLY_MODES) == talos.MODES_HELP
