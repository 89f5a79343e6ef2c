"""``inv bootstrap.*``: exact command lines (scripted answers) and end-to-end runs with fake
talhelper/talosctl/kubectl/helmfile and the real sops."""

from __future__ import annotations

import _thread
import functools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke import Config, Context, Result

from tasks import bootstrap
from tasks.lib.provision import facts
from tasks.lib.tools import runner
from tests.conftest import EXAMPLE_OPERATOR, exit_code, gen
from tests.fakes import (
    APPS_DEPLOYED,
    APPS_HELMFILE,
    APPS_VALUES,
    EXAMPLE_AGE_KEY,
    FakeTools,
    encrypt_into,
    fail,
    hang,
    ok,
    publish,
    secret_manifest,
    sops_path,
    succeed_on,
    write_cluster_tree,
)
from tests.scripted import ScriptedContext, scripted
from tests.tools_contract import real_tool

TALOSCONFIG = "--talosconfig=./clusterconfig/talosconfig"
ENCRYPT = (
    "sops --encrypt --filename-override talos/talsecret.sops.yaml"
    " --input-type yaml --output-type yaml /dev/stdin"
)
SSA = "--server-side --force-conflicts --field-manager=home-ops"
APPLY_LINES = [
    f"talosctl apply-config {TALOSCONFIG} --nodes={ip} --file=./clusterconfig/{host}.yaml --insecure"
    for ip, host in (("192.168.1.10", "kubernetes-k8s-0"), ("192.168.1.11", "kubernetes-k8s-1"))
]
BOOTSTRAP_LINE = f"talosctl bootstrap {TALOSCONFIG} --nodes=192.168.1.10"
KUBECONFIG_LINE = f"talosctl kubeconfig {TALOSCONFIG} .. --force --nodes=192.168.1.10"

#: Secret values that must never reach a file or the terminal.
TALOS_SECRET = "talos-bootstrap-token-0f9e8d7c6b5a"
SECRET_VALUES = {"deploy-key": "deploy-key-plaintext-5c1d", "sops-age": "age-plaintext-77ab"}
TALHELPER_SECRETS = (
    f"cluster:\n  id: abc\n  secret: {TALOS_SECRET}\nsecrets:\n  bootstraptoken: {TALOS_SECRET}-2\n"
)
#: What sops prints, in its shape (the guard checks values, MAC and recipient by sops's rules).
_ENC = "ENC[AES256_GCM,data:eHl6,iv:" + "A" * 43 + "=,tag:" + "A" * 22 + "==,type:str]"
CIPHERTEXT = (
    f"cluster: {_ENC}\nsops:\n  age:\n    - recipient: age1example\n      enc: x\n"
    f"  mac: {_ENC}\n  version: 3.11.0\n"
)

CRD = """\
---
# Source: gateway-helm/crds/gatewayapi-crds.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {name}
spec:
  group: example.io
"""
RENDER = (
    CRD.format(name="gateways.example.io")
    + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: envoy-gateway\n"
    + CRD.format(name="dnsendpoints.example.io")
    + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: envoy\n"
)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_tools: FakeTools) -> Path:
    """A minimal rendered repository (with talosconfig and kubeconfig), the example operator
    keys, fake tools on PATH."""
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    tree = write_cluster_tree(tmp_path / "repo")
    publish(tree)
    return tree


@pytest.fixture
def fresh(tree: Path) -> Path:
    """The tree before ``inv bootstrap.talos``: no talsecret, talosconfig or kubeconfig."""
    for rel in ("talos/talsecret.sops.yaml", "talos/clusterconfig/talosconfig", "kubeconfig"):
        (tree / rel).unlink()
    return tree


@pytest.fixture
def secrets(tree: Path) -> Path:
    """Bootstrap secrets encrypted with the real sops and the tree's .sops.yaml rules."""
    for name, value in SECRET_VALUES.items():
        encrypt_into(tree, f"bootstrap/{name}.sops.yaml", secret_manifest(name, value))
    return tree


#: bootstrap.apps' first commands: is the commit on the remote Flux deploys (here: yes).
PUSHED = {
    "git config --null --get-regexp '^remote\\..*\\.url$'": Result(
        stdout="remote.origin.url\nhttps://github.com/octo/home-ops.git\0"
    ),
    "git status --porcelain -- kubernetes": Result(),
    "git fetch --quiet --no-tags --end-of-options origin +refs/heads/main:refs/remotes/origin/main": Result(),
    "git rev-parse --verify --quiet 'refs/remotes/origin/main^{commit}'": Result(stdout="abc\n"),
    "git merge-base --is-ancestor HEAD refs/remotes/origin/main": Result(),
}


def mock(tree: Path, run: dict[str, Result | list[Result]]) -> ScriptedContext:
    return scripted(tree, {**PUSHED, **run})


def context(tree: Path, dry: bool = False) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(tree)}, "run": {"dry": dry}}))


def ran(c: ScriptedContext) -> list[str]:
    return c.script.ran()


def stdin_of(c: ScriptedContext, command: str) -> list[str]:
    """What each call of ``command`` received on stdin."""
    return c.script.stdin_of(command)


def files_containing(root: Path, *needles: str) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            if any(needle in text for needle in needles):
                hits.append(path)
    return hits


def nodes_json(*ready: str | None) -> str:
    items = [
        {
            "metadata": {"name": f"k8s-{i}"},
            "status": {"conditions": [] if r is None else [{"type": "Ready", "status": r}]},
        }
        for i, r in enumerate(ready)
    ]
    return json.dumps({"items": items})


def fast(**extra: float) -> dict[str, float]:
    return {"deadline": 5.0, "interval": 0.01, **extra}


# =========================================================================== bootstrap.talos


def talos_responses(*, gensecret: bool) -> dict[str, Result | list[Result]]:
    responses: dict[str, Result | list[Result]] = {}
    if gensecret:
        responses["talhelper gensecret"] = Result(stdout=TALHELPER_SECRETS)
        responses[ENCRYPT] = Result(stdout=CIPHERTEXT)
    responses |= {
        "talhelper genconfig": Result(),
        "talhelper gencommand apply --extra-flags=--insecure": gen(*APPLY_LINES),
        APPLY_LINES[0]: Result(),
        APPLY_LINES[1]: Result(),
        "talhelper gencommand bootstrap": gen(BOOTSTRAP_LINE),
        BOOTSTRAP_LINE: [Result(stderr="connection refused", exited=1), Result()],
        "talhelper gencommand kubeconfig --extra-flags=..,--force": gen(KUBECONFIG_LINE),
        KUBECONFIG_LINE: Result(),
    }
    return responses


def test_talos_command_lines(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = mock(fresh, talos_responses(gensecret=True))
    bootstrap.talos(c, **fast())
    assert ran(c) == [
        "talhelper gensecret",
        ENCRYPT,
        "talhelper genconfig",
        "talhelper gencommand apply --extra-flags=--insecure",
        *APPLY_LINES,
        "talhelper gencommand bootstrap",
        BOOTSTRAP_LINE,
        BOOTSTRAP_LINE,
        "talhelper gencommand kubeconfig --extra-flags=..,--force",
        KUBECONFIG_LINE,
    ]
    # the plaintext secrets went to sops through stdin, and only ciphertext was written
    assert stdin_of(c, ENCRYPT) == [TALHELPER_SECRETS]
    assert (fresh / "talos" / "talsecret.sops.yaml").read_text() == CIPHERTEXT
    out = capsys.readouterr().out
    assert TALOS_SECRET not in out
    assert "applying config (insecure, maintenance mode): k8s-1 (192.168.1.11)" in out
    assert "waiting for etcd to bootstrap on k8s-0 (192.168.1.10) (up to 5s, retrying every 0.01s)" in out


def test_talos_keeps_existing_secrets(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (tree / "talos" / "talsecret.sops.yaml").read_text()
    c = mock(tree, talos_responses(gensecret=False))
    bootstrap.talos(c, **fast())
    assert "talhelper gensecret" not in ran(c)
    assert (tree / "talos" / "talsecret.sops.yaml").read_text() == before
    assert "talos/talsecret.sops.yaml exists: keeping the cluster's secrets" in capsys.readouterr().out


def test_talos_rerun_on_a_bootstrapped_cluster(tree: Path) -> None:
    responses = talos_responses(gensecret=False)
    responses[BOOTSTRAP_LINE] = Result(
        stderr="rpc error: code = AlreadyExists desc = etcd data directory is not empty", exited=1
    )
    c = mock(tree, responses)
    bootstrap.talos(c, **fast())
    assert ran(c).count(BOOTSTRAP_LINE) == 1


def test_talos_never_writes_what_sops_did_not_encrypt(fresh: Path, capsys) -> None:
    responses = talos_responses(gensecret=True)
    responses[ENCRYPT] = Result(stdout=TALHELPER_SECRETS)  # a broken sops echoing its input
    c = mock(fresh, responses)
    assert exit_code(lambda: bootstrap.talos(c, **fast())) == 1
    assert not (fresh / "talos" / "talsecret.sops.yaml").exists()
    assert files_containing(fresh, TALOS_SECRET) == []
    err = capsys.readouterr().err
    assert "talos/talsecret.sops.yaml was not written" in err and TALOS_SECRET not in err


def test_talos_preconditions_before_anything_runs(fresh: Path, monkeypatch, capsys) -> None:
    (fresh / "talos" / "talconfig.yaml").unlink()
    (fresh / ".sops.yaml").unlink()
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(fresh / "nowhere"))
    c = mock(fresh, {})
    assert exit_code(lambda: bootstrap.talos(c)) == 1
    assert ran(c) == []
    assert capsys.readouterr().err.splitlines() == [
        "talos/talconfig.yaml not found — run `inv configure`",
        ".sops.yaml not found — run `inv configure`",
        "nowhere/age.key not found — run `inv init`",
    ]


# --------------------------------------------------------------------------- end to end


def script_talhelper(fake_tools: FakeTools) -> None:
    fake_tools.script(
        "talhelper",
        ("gensecret", ok(TALHELPER_SECRETS)),
        ("gencommand apply", ok("".join(f"{line};\n" for line in APPLY_LINES))),
        ("gencommand bootstrap", ok(f"{BOOTSTRAP_LINE};\n")),
        ("gencommand kubeconfig", ok(f"{KUBECONFIG_LINE};\n")),
    )


def decrypt(tree: Path, rel: str) -> str:
    env = {"SOPS_AGE_KEY_FILE": str(EXAMPLE_AGE_KEY), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sops_path(), "--decrypt", rel], cwd=tree, env=env, capture_output=True, text=True, check=True
    ).stdout


def test_talos_end_to_end_retries_until_it_succeeds(fresh: Path, fake_tools: FakeTools, capsys) -> None:
    script_talhelper(fake_tools)
    fake_tools.script(
        "talosctl",
        ("bootstrap", succeed_on(3, stderr="rpc error: etcd not ready")),
        ("kubeconfig", succeed_on(2)),
    )
    bootstrap.talos(context(fresh), **fast())
    assert [call.line for call in fake_tools.calls()] == [
        "talhelper gensecret",
        "talhelper genconfig",
        "talhelper gencommand apply --extra-flags=--insecure",
        *APPLY_LINES,
        "talhelper gencommand bootstrap",
        *[BOOTSTRAP_LINE] * 3,
        "talhelper gencommand kubeconfig --extra-flags=..,--force",
        *[KUBECONFIG_LINE] * 2,
    ]
    assert {Path(call.cwd) for call in fake_tools.calls() if call.argv != ["gensecret"]} == {fresh / "talos"}
    # the real sops encrypted the secrets; nothing in the repository holds them in plaintext
    talsecret = fresh / "talos" / "talsecret.sops.yaml"
    assert "ENC[AES256_GCM," in talsecret.read_text()
    assert TALOS_SECRET in decrypt(fresh, "talos/talsecret.sops.yaml")
    assert files_containing(fresh, TALOS_SECRET) == []
    assert [p.name for p in (fresh / "talos").iterdir() if p.name.endswith(".tmp")] == []
    out, err = capsys.readouterr()
    assert TALOS_SECRET not in out + err
    assert "etcd to bootstrap on k8s-0 (192.168.1.10): done after 3 attempt(s)" in out
    assert "the kubeconfig on k8s-0 (192.168.1.10): done after 2 attempt(s)" in out


def test_talos_end_to_end_gives_up_at_the_deadline(
    tree: Path, fake_tools: FakeTools, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    script_talhelper(fake_tools)
    fake_tools.script("talosctl", ("bootstrap", fail("rpc error: etcd is still starting")))
    ticks = iter(range(1000))  # a clock that advances 10 s each time it is read
    retry = functools.partial(runner.retry, clock=lambda: 10.0 * next(ticks), sleep=lambda _: None)
    monkeypatch.setattr(runner, "retry", retry)
    assert exit_code(lambda: bootstrap.talos(context(tree), deadline=35, interval=10)) == 1
    err = capsys.readouterr().err
    assert "gave up waiting for etcd to bootstrap on k8s-0 (192.168.1.10) after 30s (3 attempts)" in err
    assert "rpc error: etcd is still starting" in err  # the last error
    assert fake_tools.lines("talosctl") == [*APPLY_LINES, *[BOOTSTRAP_LINE] * 3]
    assert not any("kubeconfig" in call.line for call in fake_tools.calls())


def test_talos_end_to_end_a_hanging_attempt_counts_as_failed(
    tree: Path, fake_tools: FakeTools, capsys
) -> None:
    script_talhelper(fake_tools)
    fake_tools.script("talosctl", ("bootstrap", hang(30)))
    started = time.monotonic()
    code = exit_code(lambda: bootstrap.talos(context(tree), deadline=0.5, interval=0.05, attempt_timeout=0.4))
    assert code == 1
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert "gave up waiting for etcd to bootstrap" in err
    assert "talosctl did not finish within its 0.4 s deadline" in err


@pytest.fixture
def interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in this test even where the runner ignores SIGINT."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_cleanly_and_leaves_no_secret_file(
    fresh: Path, fake_tools: FakeTools, interruptible: None, capsys
) -> None:
    fake_tools.script("talhelper", ("gensecret", hang(20)))
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    try:
        assert exit_code(lambda: bootstrap.talos(context(fresh), **fast())) == 130
    finally:
        timer.cancel()
    assert time.monotonic() - started < 10  # the hanging command was stopped, not waited for
    assert sorted(p.name for p in (fresh / "talos").iterdir() if p.is_file()) == [
        "talconfig.yaml",
        "talenv.yaml",
    ]
    assert "interrupted" in capsys.readouterr().err
    assert fake_tools.lines() in ([], ["talhelper gensecret"])  # [] only on a very slow machine


def test_talos_dry_run(fresh: Path, fake_tools: FakeTools, capsys) -> None:
    bootstrap.talos(context(fresh, dry=True))
    assert fake_tools.calls() == []
    assert not (fresh / "talos" / "talsecret.sops.yaml").exists()
    out = capsys.readouterr().out
    root, talos_dir = str(fresh), str(fresh / "talos")
    for line in (
        f"cd {root} && talhelper gensecret | {ENCRYPT} > talos/talsecret.sops.yaml",
        f"cd {talos_dir} && talhelper genconfig",
        f"cd {talos_dir} && talhelper gencommand apply --extra-flags=--insecure",
        f"cd {talos_dir} && talhelper gencommand bootstrap",
        "# then retry each talosctl command it prints (no shell), waiting for etcd to bootstrap (up to 600s)",
        f"cd {talos_dir} && talhelper gencommand kubeconfig --extra-flags=..,--force",
    ):
        assert line in out


# =========================================================================== bootstrap.apps

GET_NODES = "kubectl get nodes --output=json"
GET_NAMESPACES = "kubectl get namespaces '--output=jsonpath={.items[*].metadata.name}'"
DECRYPT = "sops --decrypt bootstrap/{}.sops.yaml"
SECRET_DIFF = f"kubectl --namespace flux-system diff {SSA} -f -"
SECRET_APPLY = f"kubectl --namespace flux-system apply {SSA} -f -"
RENDER_CRDS = "helmfile --file bootstrap/helmfile.d/00-crds.yaml template"
CRD_DIFF = f"kubectl diff {SSA} -f -"
CRD_APPLY = f"kubectl apply {SSA} -f -"
HELM_LIST = "helm list --all-namespaces --output json"
SYNC = "helmfile --file bootstrap/helmfile.d/01-apps.yaml sync --hide-notes"


def test_apps_command_lines(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("deploy-key", "sops-age"):
        (tree / "bootstrap" / f"{name}.sops.yaml").write_text("placeholder\n")
    c = mock(
        tree,
        {
            GET_NODES: Result(stdout=nodes_json("True", "True")),
            GET_NAMESPACES: Result(stdout="default kube-node-lease kube-system"),
            "kubectl create namespace flux-system": Result(),
            DECRYPT.format("deploy-key"): Result(stdout="deploy-plain"),
            DECRYPT.format("sops-age"): Result(stdout="age-plain"),
            SECRET_DIFF: [Result(exited=1), Result(exited=0)],
            SECRET_APPLY: Result(),
            RENDER_CRDS: Result(stdout=RENDER),
            CRD_DIFF: Result(exited=1),
            CRD_APPLY: Result(),
            HELM_LIST: Result(stdout="[]"),
            SYNC: Result(),
        },
    )
    bootstrap.apps(c, **fast())
    assert ran(c) == [
        *PUSHED,
        GET_NODES,
        GET_NAMESPACES,
        "kubectl create namespace flux-system",
        DECRYPT.format("deploy-key"),
        SECRET_DIFF,
        DECRYPT.format("deploy-key"),
        SECRET_APPLY,
        DECRYPT.format("sops-age"),
        SECRET_DIFF,
        RENDER_CRDS,
        CRD_DIFF,
        CRD_APPLY,
        HELM_LIST,
        SYNC,
    ]
    assert stdin_of(c, SECRET_APPLY) == ["deploy-plain"]
    (crds,) = stdin_of(c, CRD_APPLY)
    assert "gateways.example.io" in crds and "dnsendpoints.example.io" in crds
    assert "Deployment" not in crds and "Service" not in crds
    out = capsys.readouterr().out
    assert "nodes: all 2 Ready, not waiting" in out
    assert "secret bootstrap/deploy-key.sops.yaml: applied" in out
    assert "secret bootstrap/sops-age.sops.yaml: current" in out
    assert "CRDs: 2 applied" in out
    assert "plain" not in out


def test_apps_diff_error_stops(tree: Path, capsys) -> None:
    (tree / "bootstrap" / "x.sops.yaml").write_text("placeholder\n")
    c = mock(
        tree,
        {
            GET_NODES: Result(stdout=nodes_json("True")),
            GET_NAMESPACES: Result(stdout="default flux-system kube-system"),
            DECRYPT.format("x"): Result(stdout="plain"),
            SECRET_DIFF: Result(stderr="error: the server could not find the requested resource", exited=2),
        },
    )
    assert exit_code(lambda: bootstrap.apps(c, **fast())) == 1
    err = capsys.readouterr().err
    assert "kubectl diff of bootstrap/x.sops.yaml" in err and "could not find" in err


def test_apps_preconditions(tree: Path, capsys) -> None:
    (tree / "kubeconfig").unlink()
    (tree / "bootstrap" / "helmfile.d" / "01-apps.yaml").unlink()
    c = mock(tree, {})
    assert exit_code(lambda: bootstrap.apps(c)) == 1
    assert ran(c) == []
    assert capsys.readouterr().err.splitlines() == [
        "kubeconfig not found — run `inv bootstrap.talos`",
        "bootstrap/helmfile.d/01-apps.yaml not found — run `inv configure`",
    ]


def test_apps_dry_run_before_the_cluster_exists(tree: Path, fake_tools: FakeTools, capsys) -> None:
    """`inv --dry bootstrap.talos bootstrap.apps` can show the whole sequence on a fresh
    checkout: the kubeconfig that bootstrap.talos would fetch is only a note."""
    (tree / "kubeconfig").unlink()
    bootstrap.apps(context(tree, dry=True))
    assert fake_tools.calls() == []
    captured = capsys.readouterr()
    assert "note: kubeconfig does not exist yet — run `inv bootstrap.talos`" in captured.err
    assert "helmfile --file bootstrap/helmfile.d/01-apps.yaml sync --hide-notes" in captured.out
    assert ": created" not in captured.out and ": applied" not in captured.out


# --------------------------------------------------------------------------- end to end


def script_cluster(fake_tools: FakeTools, *, namespaces: str, diff: dict[str, object]) -> None:
    fake_tools.script(
        "kubectl",
        ("get nodes", [ok(nodes_json()), ok(nodes_json("Unknown")), ok(nodes_json("False", "False"))]),
        ("get namespaces", ok(namespaces)),
        ("diff", diff),
    )
    fake_tools.script("helmfile", ("template", ok(RENDER)))


def test_apps_end_to_end_then_nothing_changes(secrets: Path, fake_tools: FakeTools, capsys) -> None:
    tree = secrets
    script_cluster(fake_tools, namespaces="default kube-node-lease", diff=fail("", code=1))
    bootstrap.apps(context(tree), **fast())
    lines = fake_tools.lines()
    secret_apply = f"kubectl --namespace flux-system apply {SSA} -f -"
    secret_diff = f"kubectl --namespace flux-system diff {SSA} -f -"
    assert lines == [
        "kubectl get nodes --output=json",  # probe: not all Ready
        "kubectl get nodes --output=json",  # waiting: Unknown
        "kubectl get nodes --output=json",  # registered (Ready=False before the CNI)
        "kubectl get namespaces --output=jsonpath={.items[*].metadata.name}",
        "kubectl create namespace flux-system",
        "kubectl create namespace kube-system",
        secret_diff,
        secret_apply,
        secret_diff,
        secret_apply,
        "helmfile --file bootstrap/helmfile.d/00-crds.yaml template",
        f"kubectl diff {SSA} -f -",
        f"kubectl apply {SSA} -f -",
        HELM_LIST,
        "helmfile --file bootstrap/helmfile.d/01-apps.yaml sync --hide-notes",
    ]
    # decrypted secrets reached kubectl through stdin only, in sorted file order
    applied = [call.stdin for call in fake_tools.calls("kubectl") if call.argv[2:3] == ["apply"]]
    assert SECRET_VALUES["deploy-key"] in applied[0] and SECRET_VALUES["sops-age"] in applied[1]
    assert files_containing(tree, *SECRET_VALUES.values()) == []
    # only the CRDs of the multi-document render were applied
    (crd_apply,) = [call for call in fake_tools.calls("kubectl") if call.argv[:1] == ["apply"]]
    assert crd_apply.stdin.count("kind: CustomResourceDefinition") == 2
    assert "kind: Deployment" not in crd_apply.stdin and "kind: Service" not in crd_apply.stdin
    assert {Path(call.cwd) for call in fake_tools.calls("helmfile")} == {tree}
    out, err = capsys.readouterr()
    assert not any(value in out + err for value in SECRET_VALUES.values())
    assert "waiting for the nodes to register (Ready=False is expected until the CNI runs)" in out

    # second run: everything is current
    fake_tools.reset()
    fake_tools.script(
        "kubectl",
        ("get nodes", ok(nodes_json("True", "True"))),
        ("get namespaces", ok("default flux-system kube-system")),
        ("diff", ok()),
    )
    fake_tools.script("helm", *current_releases())
    fake_tools.script("helmfile", ("template", ok(RENDER)))
    bootstrap.apps(context(tree), **fast())
    lines = fake_tools.lines()
    assert not any(" apply " in line or "create namespace" in line for line in lines)
    assert not any(" sync " in line for line in lines)
    assert lines[-3:] == [HELM_LIST, GET_VALUES.format("cilium", "kube-system"), GET_VALUES.format(*FLUX_OP)]
    out = capsys.readouterr().out
    assert "namespaces: all 3 exist" in out
    assert "CRDs: all 2 current" in out
    assert "releases: all 2 deployed at their pinned versions and values" in out
    assert "done: nothing changed" in out


GET_VALUES = "helm get values {} --namespace {} --output json"


def ready_cluster(fake_tools: FakeTools) -> None:
    """Fake kubectl: nodes Ready, every namespace there, secrets and CRDs current."""
    fake_tools.script(
        "kubectl",
        ("get nodes", ok(nodes_json("True", "True"))),
        ("get namespaces", ok("default flux-system kube-system")),
        ("diff", ok()),
    )
    fake_tools.script("helmfile", ("template", ok(RENDER)))


FLUX_OP = ("flux-operator", "flux-system")


def current_releases(**values: str) -> tuple[tuple[str, dict[str, object]], ...]:
    """Fake helm rules: both releases deployed at their pinned versions, with the values
    helmfile would apply unless ``values`` gives other JSON for a release."""
    shown = {**APPS_VALUES, **values}
    return (
        ("list", ok(APPS_DEPLOYED)),
        ("get values cilium ", ok(shown["cilium"])),
        ("get values flux-operator ", ok(shown["flux-operator"])),
    )


@pytest.mark.parametrize(
    ("cilium", "reason"),
    [
        (
            json.dumps({"ipam": {"mode": "kubernetes"}, "operator": {"replicas": 2, "rollOutPods": True}}),
            "value",
        ),
        (json.dumps({"ipam": {"mode": "kubernetes"}, "operator": {"replicas": 1}}), "added key"),
        (
            json.dumps(
                {"ipam": {"mode": "kubernetes"}, "operator": {"replicas": 1, "rollOutPods": True}, "x": 1}
            ),
            "removed override",
        ),
        ("null", "no values at all"),
    ],
)
def test_apps_end_to_end_changed_values_are_synced(
    tree: Path, fake_tools: FakeTools, capsys, cilium: str, reason: str
) -> None:
    """A release at its pinned chart version whose values in the cluster are not what the
    helmfile now says is synced (a changed value must reach the cluster on a re-run)."""
    ready_cluster(fake_tools)
    fake_tools.script("helm", *current_releases(cilium=cilium))
    bootstrap.apps(context(tree), **fast())
    assert fake_tools.lines("helmfile")[-1] == f"helmfile {SYNC.removeprefix('helmfile ')}", reason
    out = capsys.readouterr().out
    assert "release kube-system/cilium: values changed, will sync" in out
    assert "flux-operator: values changed" not in out
    assert "done: release kube-system/cilium" in out


def test_apps_syncs_when_values_cannot_be_read(tree: Path, fake_tools: FakeTools, capsys) -> None:
    """helm failing to show the values, or a release whose values only helmfile can
    compute (a template), counts as changed: syncing is the safe side."""
    helmfile = tree / "bootstrap" / "helmfile.d" / "01-apps.yaml"
    helmfile.write_text(
        helmfile.read_text().replace("    needs:", "    valuesTemplate: [a.gotmpl]\n    needs:")
    )
    ready_cluster(fake_tools)
    fake_tools.script(
        "helm", ("list", ok(APPS_DEPLOYED)), ("get values cilium ", fail("Error: release: not found"))
    )
    bootstrap.apps(context(tree), **fast())
    assert fake_tools.lines("helm")[1:] == [GET_VALUES.format("cilium", "kube-system")]
    assert " sync " in fake_tools.lines("helmfile")[-1]
    out = capsys.readouterr().out
    assert "release kube-system/cilium: values changed, will sync" in out
    assert "release flux-system/flux-operator: its values are only known when helmfile runs" in out


def test_apps_sync_decision_command_lines(tree: Path) -> None:
    """Scripted answers: the exact helm argv, and no sync when versions and values match."""
    responses = {
        GET_NODES: Result(stdout=nodes_json("True", "True")),
        GET_NAMESPACES: Result(stdout="default flux-system kube-system"),
        RENDER_CRDS: Result(stdout=RENDER),
        CRD_DIFF: Result(exited=0),
        HELM_LIST: Result(stdout=APPS_DEPLOYED),
        GET_VALUES.format("cilium", "kube-system"): Result(stdout=APPS_VALUES["cilium"]),
        GET_VALUES.format(*FLUX_OP): Result(stdout="null\n"),
    }
    c = mock(tree, responses)
    bootstrap.apps(c, **fast())
    assert ran(c)[-3:] == [HELM_LIST, GET_VALUES.format("cilium", "kube-system"), GET_VALUES.format(*FLUX_OP)]


def test_apps_end_to_end_nodes_never_register(tree: Path, fake_tools: FakeTools, capsys) -> None:
    fake_tools.script("kubectl", ("get nodes", ok(nodes_json(None))))
    assert exit_code(lambda: bootstrap.apps(context(tree), deadline=0.3, interval=0.05)) == 1
    err = capsys.readouterr().err
    assert "gave up waiting for the nodes to register" in err
    assert "nodes seen: k8s-0 Ready=Unknown" in err
    assert all(call.argv[:2] == ["get", "nodes"] for call in fake_tools.calls())


def test_apps_end_to_end_render_without_crds(tree: Path, fake_tools: FakeTools, capsys) -> None:
    fake_tools.script(
        "kubectl",
        ("get nodes", ok(nodes_json("True"))),
        ("get namespaces", ok("default flux-system kube-system")),
    )
    fake_tools.script("helmfile", ("template", ok("---\napiVersion: v1\nkind: ConfigMap\n")))
    assert exit_code(lambda: bootstrap.apps(context(tree), **fast())) == 1
    assert "rendered no CustomResourceDefinition" in capsys.readouterr().err


def test_apps_dry_run(secrets: Path, fake_tools: FakeTools, capsys) -> None:
    bootstrap.apps(context(secrets, dry=True))
    assert fake_tools.calls() == []
    out = capsys.readouterr().out
    root = str(secrets)
    for line in (
        "kubectl get nodes --output=json",
        GET_NAMESPACES,
        "kubectl create namespace flux-system",
        f"cd {root} && sops --decrypt bootstrap/deploy-key.sops.yaml | {SECRET_DIFF}",
        f"cd {root} && sops --decrypt bootstrap/sops-age.sops.yaml | {SECRET_APPLY}",
        f"cd {root} && {RENDER_CRDS}",
        CRD_APPLY,
        f"cd {root} && {SYNC}",
    ):
        assert line in out
    assert not any(value in out for value in SECRET_VALUES.values())


@pytest.mark.tools
def test_helm_accepts_the_arguments_we_pass(tmp_path: Path) -> None:
    """The real helm parses our argv: with no cluster it fails on the connection, never on
    an unknown flag or a bad flag value."""
    helmfile = tmp_path / "01-apps.yaml"
    helmfile.write_text(APPS_HELMFILE)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
        "users: [{name: u, user: {}}]\n"
    )
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HELM_CACHE_HOME": str(tmp_path / "cache")}
    release = facts.helmfile_releases(helmfile, "01-apps.yaml")[0]
    for argv in (
        facts.helm_get_values_argv(release),
        ["helm", "list", "--all-namespaces", "--output", "json"],
    ):
        done = subprocess.run(
            [real_tool("helm"), *argv[1:]], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode != 0
        assert "unknown flag" not in done.stderr and "invalid argument" not in done.stderr, done.stderr
        assert "127.0.0.1:1" in done.stderr, done.stderr
    bad = subprocess.run(
        [real_tool("helm"), *facts.helm_get_values_argv(release)[1:], "--no-such-flag"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "unknown flag" in bad.stderr  # the check above can fail
