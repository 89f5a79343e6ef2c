"""``inv talos.*``: exact command lines (scripted answers) and end-to-end runs with fake tools."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from invoke import Config, Context, Result

from tasks import talos
from tests.conftest import EXAMPLE_OPERATOR, exit_code, gen
from tests.fakes import KUBERNETES_VERSION, TALOS_VERSION, FakeTools, fail, ok, write_cluster_tree
from tests.scripted import ScriptedContext, scripted

TALOSCONFIG = "--talosconfig=./clusterconfig/talosconfig"
IMAGE0 = f"factory.talos.dev/installer/{'a' * 64}:{TALOS_VERSION}"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_tools: FakeTools) -> Path:
    """A minimal rendered repository, the example operator keys, fake tools on PATH."""
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    return write_cluster_tree(tmp_path / "repo")


def mock(tree: Path, run: dict[str, Result | list[Result]] | None = None) -> ScriptedContext:
    return scripted(tree, run)


def context(tree: Path, dry: bool = False) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(tree)}, "run": {"dry": dry}}))


def ran(c: ScriptedContext) -> list[str]:
    return c.script.ran()


# --------------------------------------------------------------------------- generate-config


def test_generate_config(tree: Path) -> None:
    c = mock(tree, {"talhelper genconfig": Result()})
    talos.generate_config(c)
    assert ran(c) == ["talhelper genconfig"]


def test_generate_config_needs_the_talsecret(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "talos" / "talsecret.sops.yaml").unlink()
    (tree / "talos" / "talenv.yaml").unlink()
    c = mock(tree)
    assert exit_code(lambda: talos.generate_config(c)) == 1
    assert ran(c) == []
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "talos/talenv.yaml not found — run `inv configure`",
        "talos/talsecret.sops.yaml not found — run `inv bootstrap.talos`, which creates it",
    ]


def test_missing_tool_is_one_line(tree: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    (Path(str(tree.parent / "fakebin")) / "talhelper").unlink()
    monkeypatch.setattr("tasks.lib.tools.runner.search_path", lambda: str(tree.parent / "fakebin"))
    c = mock(tree)
    assert exit_code(lambda: talos.generate_config(c)) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("talhelper not found: install talhelper 3.1.9 (pinned in .mise.toml)")
    assert ran(c) == []


# --------------------------------------------------------------------------- apply-node


def apply_responses(mode: str, ip: str = "192.168.1.10", host: str = "k8s-0") -> dict[str, Result]:
    return {
        f"talosctl --nodes {ip} get machineconfig": Result(),
        f"talhelper gencommand apply --node {ip} --extra-flags=--mode={mode}": gen(
            f"talosctl apply-config {TALOSCONFIG} --nodes={ip} --file=./clusterconfig/kubernetes-{host}.yaml "
            f"--mode={mode}"
        ),
        f"talosctl apply-config {TALOSCONFIG} --nodes={ip} --file=./clusterconfig/kubernetes-{host}.yaml "
        f"--mode={mode}": Result(),
    }


@pytest.mark.parametrize("mode", ["auto", "interactive", "no-reboot", "reboot", "staged", "try"])
def test_apply_node_every_mode(tree: Path, mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    responses = apply_responses(mode, "192.168.1.11", "k8s-1")
    c = mock(tree, responses)
    talos.apply_node(c, ip="192.168.1.11", mode=mode)
    assert ran(c) == list(responses)
    assert f"applying config (mode {mode}): k8s-1 (192.168.1.11)" in capsys.readouterr().out


def test_apply_node_default_mode_is_auto(tree: Path) -> None:
    responses = apply_responses("auto")
    c = mock(tree, responses)
    talos.apply_node(c, ip="192.168.1.10")
    assert ran(c) == list(responses)


@pytest.mark.parametrize(
    ("ip", "mode", "message"),
    [
        ("", "auto", "--ip is required"),
        ("k8s-0", "auto", "--ip 'k8s-0' is not an IPv4 address"),
        ("192.168.1.10; rm -rf /", "auto", "is not an IPv4 address"),
        ("192.168.1.99", "auto", "--ip 192.168.1.99 is not a node in nodes.yaml"),
        ("192.168.1.10", "sideways", "--mode 'sideways' is not one of auto, interactive"),
    ],
)
def test_apply_node_rejects_before_running_anything(
    tree: Path, ip: str, mode: str, message: str, capsys
) -> None:
    c = mock(tree)
    assert exit_code(lambda: talos.apply_node(c, ip=ip, mode=mode)) == 1
    assert ran(c) == []
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_apply_node_stops_when_the_node_does_not_answer(tree: Path, capsys) -> None:
    c = mock(
        tree,
        {"talosctl --nodes 192.168.1.10 get machineconfig": Result(stderr="connection refused", exited=1)},
    )
    assert exit_code(lambda: talos.apply_node(c, ip="192.168.1.10")) == 1
    assert ran(c) == ["talosctl --nodes 192.168.1.10 get machineconfig"]
    err = capsys.readouterr().err
    assert "node 192.168.1.10 does not answer on the Talos API" in err
    assert "connection refused" in err


def test_apply_node_needs_a_talosconfig(tree: Path, capsys) -> None:
    (tree / "talos" / "clusterconfig" / "talosconfig").unlink()
    c = mock(tree)
    assert exit_code(lambda: talos.apply_node(c, ip="192.168.1.10")) == 1
    assert "talos/clusterconfig/talosconfig not found — run `inv bootstrap.talos`" in capsys.readouterr().err


# --------------------------------------------------------------------------- upgrade-node / upgrade-k8s


def test_upgrade_node(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    upgrade = f"talosctl upgrade {TALOSCONFIG} --nodes=192.168.1.10 --image={IMAGE0} --timeout=10m"
    responses = {
        "talosctl --nodes 192.168.1.10 get machineconfig": Result(),
        f"talhelper gencommand upgrade --node 192.168.1.10 --extra-flags=--image={IMAGE0},--timeout=10m": gen(
            upgrade
        ),
        upgrade: Result(),
    }
    c = mock(tree, responses)
    talos.upgrade_node(c, ip="192.168.1.10")
    assert ran(c) == list(responses)
    out = capsys.readouterr().out
    assert f"upgrading 192.168.1.10 to {IMAGE0}" in out
    assert "upgrading Talos: k8s-0 (192.168.1.10)" in out


def test_upgrade_node_stops_when_the_node_does_not_answer(tree: Path, capsys) -> None:
    c = mock(
        tree,
        {"talosctl --nodes 192.168.1.10 get machineconfig": Result(stderr="i/o timeout", exited=1)},
    )
    assert exit_code(lambda: talos.upgrade_node(c, ip="192.168.1.10")) == 1
    assert ran(c) == ["talosctl --nodes 192.168.1.10 get machineconfig"]
    err = capsys.readouterr().err
    assert "node 192.168.1.10 does not answer on the Talos API" in err
    assert "i/o timeout" in err
    assert "Traceback" not in err


def test_upgrade_node_end_to_end_probes_first(tree: Path, fake_tools: FakeTools) -> None:
    upgrade = f"talosctl upgrade {TALOSCONFIG} --nodes=192.168.1.10 --image={IMAGE0} --timeout=10m"
    fake_tools.script("talhelper", ("gencommand upgrade", ok(f"{upgrade};\n")))
    talos.upgrade_node(context(tree), ip="192.168.1.10")
    assert [call.line for call in fake_tools.calls()] == [
        "talosctl --nodes 192.168.1.10 get machineconfig",
        f"talhelper gencommand upgrade --node 192.168.1.10 --extra-flags=--image={IMAGE0},--timeout=10m",
        upgrade,
    ]


def test_upgrade_node_end_to_end_unreachable_node_is_not_upgraded(
    tree: Path, fake_tools: FakeTools, capsys
) -> None:
    fake_tools.script("talosctl", ("get machineconfig", fail("dial tcp 192.168.1.10:50000: no route")))
    assert exit_code(lambda: talos.upgrade_node(context(tree), ip="192.168.1.10")) == 1
    assert [call.line for call in fake_tools.calls()] == ["talosctl --nodes 192.168.1.10 get machineconfig"]
    assert "no route" in capsys.readouterr().err


def test_upgrade_node_without_image_url(tree: Path, capsys) -> None:
    talconfig = tree / "talos" / "talconfig.yaml"
    talconfig.write_text(
        talconfig.read_text().replace(f"talosImageURL: factory.talos.dev/installer/{'b' * 64}", "")
    )
    c = mock(tree)
    assert exit_code(lambda: talos.upgrade_node(c, ip="192.168.1.11")) == 1
    assert "talos/talconfig.yaml: node k8s-1 has no talosImageURL" in capsys.readouterr().err
    assert ran(c) == []


def test_upgrade_node_rejects_unknown_ip(tree: Path) -> None:
    c = mock(tree)
    assert exit_code(lambda: talos.upgrade_node(c, ip="10.9.9.9")) == 1
    assert ran(c) == []


def test_upgrade_k8s(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    upgrade = (
        f"talosctl upgrade-k8s {TALOSCONFIG} --to=v1.36.0 --to={KUBERNETES_VERSION} --nodes=192.168.1.10"
    )
    responses = {
        f"talhelper gencommand upgrade-k8s --extra-flags=--to={KUBERNETES_VERSION}": gen(upgrade),
        upgrade: Result(),
    }
    c = mock(tree, responses)
    talos.upgrade_k8s(c)
    assert ran(c) == list(responses)
    assert f"upgrading Kubernetes to {KUBERNETES_VERSION}" in capsys.readouterr().out


def test_failed_generated_command_stops_with_its_error(tree: Path, capsys) -> None:
    upgrade = f"talosctl upgrade-k8s {TALOSCONFIG} --nodes=192.168.1.10"
    responses = {
        f"talhelper gencommand upgrade-k8s --extra-flags=--to={KUBERNETES_VERSION}": gen(upgrade),
        upgrade: Result(stderr="rpc error: unavailable", exited=1),
    }
    c = mock(tree, responses)
    assert exit_code(lambda: talos.upgrade_k8s(c)) == 1
    err = capsys.readouterr().err
    assert f"command failed (exit 1): {upgrade}" in err
    assert "rpc error: unavailable" in err


# --------------------------------------------------------------------------- reset

RESET_FLAGS = (
    "--reboot,--system-labels-to-wipe=STATE,--system-labels-to-wipe=EPHEMERAL,--graceful=false,--wait=false"
)


def reset_responses(flags: str) -> dict[str, Result]:
    lines = [
        f"talosctl reset {TALOSCONFIG} --nodes={ip} {flags.replace(',', ' ')}"
        for ip in ("192.168.1.10", "192.168.1.11")
    ]
    return {
        f"talhelper gencommand reset --extra-flags={flags}": gen(*lines),
        **{line: Result() for line in lines},
    }


def test_reset_with_yes(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    responses = reset_responses(RESET_FLAGS)
    c = mock(tree, responses)
    talos.reset(c, yes=True)
    assert ran(c) == list(responses)
    out = capsys.readouterr().out
    assert "resetting: k8s-0 (192.168.1.10)" in out and "resetting: k8s-1 (192.168.1.11)" in out


def test_reset_wipe_disk(tree: Path) -> None:
    responses = reset_responses("--reboot,--graceful=false,--wait=false")
    c = mock(tree, responses)
    talos.reset(c, yes=True, wipe_disk=True)
    assert ran(c) == list(responses)


def test_reset_refuses_without_a_terminal(tree: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))  # piped "yes" is not a confirmation
    c = mock(tree)
    assert exit_code(lambda: talos.reset(c)) == 1
    assert ran(c) == []
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "refusing to continue without confirmation: there is no terminal to ask on",
        "pass --yes to confirm non-interactively",
    ]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "runs"), [("yes\n", True), ("y\n", False), ("\n", False), ("", False)])
def test_reset_asks_naming_the_nodes(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys, answer: str, runs: bool
) -> None:
    monkeypatch.setattr("sys.stdin", FakeTerminal(answer))
    responses = reset_responses(RESET_FLAGS)
    c = mock(tree, responses)
    if runs:
        talos.reset(c)
        assert ran(c) == list(responses)
    else:
        assert exit_code(lambda: talos.reset(c)) == 1
        assert ran(c) == []
        assert "cancelled: nothing was changed" in capsys.readouterr().err
    out = capsys.readouterr().out if runs else ""
    if runs:
        assert "This DESTROYS the cluster: k8s-0 (192.168.1.10), k8s-1 (192.168.1.11)" in out


# --------------------------------------------------------------------------- end to end (fake tools)


def test_apply_node_end_to_end(tree: Path, fake_tools: FakeTools) -> None:
    command = (
        f"talosctl apply-config {TALOSCONFIG} --nodes=192.168.1.11"
        " --file=./clusterconfig/kubernetes-k8s-1.yaml --mode=staged;\n"
    )
    fake_tools.script("talhelper", ("gencommand apply", ok(command)))
    talos.apply_node(context(tree), ip="192.168.1.11", mode="staged")
    calls = fake_tools.calls()
    assert [call.line for call in calls] == [
        "talosctl --nodes 192.168.1.11 get machineconfig",
        "talhelper gencommand apply --node 192.168.1.11 --extra-flags=--mode=staged",
        command.rstrip(";\n"),
    ]
    assert {Path(call.cwd) for call in calls} == {tree / "talos"}


def test_generated_commands_run_without_a_shell(tree: Path, fake_tools: FakeTools) -> None:
    """An argument with shell metacharacters reaches talosctl verbatim."""
    fake_tools.script(
        "talhelper",
        ("gencommand", ok("talosctl upgrade-k8s '--note=$(touch pwned); `id`' --nodes=192.168.1.10;\n")),
    )
    talos.upgrade_k8s(context(tree))
    (call,) = fake_tools.calls("talosctl")
    assert call.argv == ["upgrade-k8s", "--note=$(touch pwned); `id`", "--nodes=192.168.1.10"]
    assert not (tree / "talos" / "pwned").exists()


def test_reset_end_to_end_refuses_without_yes(tree: Path, fake_tools: FakeTools, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert exit_code(lambda: talos.reset(context(tree))) == 1
    assert fake_tools.calls() == []


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: talos.generate_config(c), ["talhelper genconfig"]),
        (
            lambda c: talos.apply_node(c, ip="192.168.1.10", mode="reboot"),
            [
                "talosctl --nodes 192.168.1.10 get machineconfig",
                "talhelper gencommand apply --node 192.168.1.10 --extra-flags=--mode=reboot",
                "# then run each talosctl command it prints (no shell), applying config (mode reboot)",
            ],
        ),
        (
            lambda c: talos.upgrade_node(c, ip="192.168.1.10"),
            [
                "talosctl --nodes 192.168.1.10 get machineconfig",
                f"talhelper gencommand upgrade --node 192.168.1.10 --extra-flags=--image={IMAGE0}",
                ",--timeout=10m",
                "# then run each talosctl command it prints (no shell), upgrading Talos",
            ],
        ),
        (
            lambda c: talos.upgrade_k8s(c),
            [f"talhelper gencommand upgrade-k8s --extra-flags=--to={KUBERNETES_VERSION}"],
        ),
        (lambda c: talos.reset(c), [f"talhelper gencommand reset --extra-flags={RESET_FLAGS}"]),
    ],
)
def test_dry_runs_nothing_and_prints_pasteable_commands(
    tree: Path, fake_tools: FakeTools, capsys, call, expected
) -> None:
    call(context(tree, dry=True))
    assert fake_tools.calls() == []  # not even talhelper gencommand
    out = capsys.readouterr().out
    for line in expected:
        assert line in out
    talos_dir = str(tree / "talos")
    assert f"cd {talos_dir} && " in out


def test_failing_talhelper_is_reported(tree: Path, fake_tools: FakeTools, capsys) -> None:
    fake_tools.script("talhelper", ("gencommand", fail("failed to parse talconfig.yaml: line 3")))
    assert exit_code(lambda: talos.upgrade_k8s(context(tree))) == 1
    err = capsys.readouterr().err
    assert "command failed (exit 1): talhelper gencommand upgrade-k8s" in err
    assert "failed to parse talconfig.yaml: line 3" in err
