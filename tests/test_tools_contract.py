"""Contract tests against the real tools: helmfile, flux, kustomize, kubeconform, actionlint,
and the argument formats of the tasks that need a live cluster (checked against the real
flux, helm, helmfile and kubectl flag parsers). Marked ``tools``; see ``tools_contract``
for when they skip and when they fail."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke import Config, Context

from tasks import bootstrap, dev, flux, lint
from tasks.lib.fluxtree.registry import placeholder
from tasks.lib.paths import repo_paths
from tests import test_bootstrap, test_dev
from tests.conftest import ROOT, copy_repo, git
from tests.fakes import FakeTools, encrypt_into, fail, publish, secret_manifest, write_cluster_tree
from tests.oci_registry import Registry, serve
from tests.tools_contract import TOOLS_DIR, argv_problem, real_tool, run_tool

pytestmark = pytest.mark.tools

APPS_ORDER = ["cilium", "coredns", "cert-manager", "flux-operator", "flux-instance"]
CRD_RELEASES = ["envoy-gateway", "cloudflare-dns", "external-secrets"]


def context(root: Path) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(root)}}))


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the rendered example (bootstrap/, kubernetes/, ...)."""
    return copy_repo(tmp_path / "example")


@pytest.fixture
def with_real_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the tasks find the tools `inv doctor --install` built."""
    monkeypatch.setenv("HOME_OPS_TOOLS_DIR", str(TOOLS_DIR))


# helmfile ----------------------------------------------------------------------------------
# helmfile pulls every OCI chart, even to build or show its DAG: a registry on localhost
# stands in for the chart hosts (the file's charts point at it; everything else is as rendered).
@pytest.fixture
def registry() -> Iterator[tuple[str, Registry]]:
    with serve() as running:
        yield running


def helmfile(
    example: Path, registry: tuple[str, Registry], name: str, *args: str
) -> subprocess.CompletedProcess[str]:
    file = example / "bootstrap" / "helmfile.d" / name
    file.write_text(re.sub(r"oci://[^/\s]+/", f"oci://{registry[0]}/", file.read_text()))
    argv = [real_tool("helmfile"), "--oci-plain-http", "--helm-binary", real_tool("helm")]
    return run_tool([*argv, "--file", f"bootstrap/helmfile.d/{name}", *args], cwd=example)


def built_releases(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    build = next(d for d in yaml.safe_load_all(result.stdout) if d and "releases" in d)
    return list(build["releases"])


def test_helmfile_build_apps_in_needs_order(example: Path, registry: tuple[str, Registry]) -> None:
    releases = built_releases(helmfile(example, registry, "01-apps.yaml", "build"))
    assert [r["name"] for r in releases] == APPS_ORDER
    for release in releases:
        for values in release.get("values") or []:  # every values file it resolved exists
            assert (example / "bootstrap" / "helmfile.d" / values).resolve().is_file(), values
    # helmfile's own dependency graph: one release per step, each after the one it needs
    dag = helmfile(example, registry, "01-apps.yaml", "show-dag")
    assert dag.returncode == 0, dag.stderr
    rows = [line.split() for line in dag.stdout.splitlines()[1:] if line.strip()]
    assert [row[1] for row in rows] == [f"{r['namespace']}/{r['name']}" for r in releases]
    assert [row[0] for row in rows] == [str(i) for i in range(1, len(APPS_ORDER) + 1)]
    assert [row[2:] for row in rows[1:]] == [[row[1]] for row in rows[:-1]]
    assert set(registry[1].pulled) == set(f"{r['chart'].split('/', 3)[3]}:{r['version']}" for r in releases)


def test_helmfile_build_crds(example: Path, registry: tuple[str, Registry]) -> None:
    result = helmfile(example, registry, "00-crds.yaml", "build")
    releases = built_releases(result)
    assert [r["name"] for r in releases] == CRD_RELEASES
    build = next(d for d in yaml.safe_load_all(result.stdout) if d and "releases" in d)
    assert build["helmDefaults"]["args"] == ["--include-crds", "--no-hooks"]


def test_helmfile_rejects_an_unknown_need(example: Path, registry: tuple[str, Registry]) -> None:
    file = example / "bootstrap" / "helmfile.d" / "01-apps.yaml"
    file.write_text(file.read_text().replace("kube-system/cilium\n", "kube-system/cilium-typo\n"))
    result = helmfile(example, registry, "01-apps.yaml", "show-dag")
    assert result.returncode != 0
    assert 'undefined release "kube-system/cilium-typo"' in result.stderr


def test_helmfile_lint(example: Path, registry: tuple[str, Registry]) -> None:
    """`helmfile lint` runs offline only against the stand-in charts: it proves the state
    file and values load, not the real charts."""
    result = helmfile(example, registry, "01-apps.yaml", "lint")
    assert result.returncode == 0, result.stderr


# flux build vs the offline builder ---------------------------------------------------------
def comparable(body: dict[str, Any]) -> str:
    """An object as both builders should agree on it: Flux's own ownership labels and the
    kustomize origin annotations left out, and a variable whose value sits in an encrypted
    Secret written as ``flux build --dry-run`` leaves it (``${VAR}``) rather than as the
    offline builder's placeholder for it."""
    body = json.loads(json.dumps(body))
    metadata = body.setdefault("metadata", {})
    for field in ("labels", "annotations"):
        values = {
            k: v
            for k, v in (metadata.get(field) or {}).items()
            if not k.startswith(("kustomize.toolkit.fluxcd.io/", "config.kubernetes.io/"))
        }
        if values:
            metadata[field] = values
        else:
            metadata.pop(field, None)
    text = json.dumps(body, sort_keys=True)
    return re.sub(re.escape(placeholder("")) + r"([A-Za-z_][A-Za-z0-9_]*)", r"${\1}", text)


def key(body: dict[str, Any]) -> tuple[str, str, str, str]:
    metadata = body.get("metadata") or {}
    return (
        body.get("apiVersion", ""),
        body.get("kind", ""),
        metadata.get("namespace") or "",
        metadata["name"],
    )


def test_flux_build_matches_the_offline_builder(example: Path, tmp_path: Path) -> None:
    from tasks.lib.fluxtree import validate

    flux_cli = real_tool("flux")
    tree = validate(example)
    checked = 0
    differing: list[str] = []
    for ks in tree.kustomizations.values():
        if ks.synthetic or not ks.built:
            continue
        manifest = tmp_path / f"{ks.namespace}-{ks.name}.yaml"
        body = {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": ks.name, "namespace": ks.namespace},
            "spec": ks.spec,
        }
        manifest.write_text(yaml.safe_dump(body))
        argv = [flux_cli, "build", "kustomization", ks.name, "--namespace", ks.namespace]
        argv += ["--path", str(example / ks.path), "--kustomization-file", str(manifest), "--dry-run"]
        result = run_tool(argv, cwd=example)
        assert result.returncode == 0, f"{ks.id}: {result.stderr}"
        theirs = {key(d): comparable(d) for d in yaml.safe_load_all(result.stdout) if d}
        ours = {key(o.body): comparable(o.body) for o in ks.objects}
        assert sorted(ours) == sorted(theirs), ks.id
        for ref in ours:
            if ref[1] != "Secret":  # flux masks Secret data in its output
                differing.extend(
                    [f"{ks.id}: {ref}", ours[ref], theirs[ref]] if ours[ref] != theirs[ref] else []
                )
        checked += 1
    assert differing == []
    assert checked >= 10


def test_standalone_kustomize_agrees_with_kubectl_kustomize(example: Path) -> None:
    kustomize = real_tool("kustomize")
    kubectl = real_tool("kubectl")
    directories = sorted(
        {
            p.parent
            for p in (example / "kubernetes").rglob("kustomization.yaml")
            if "components" not in p.parts
        }
    )
    assert len(directories) >= 10
    for directory in directories:
        theirs = run_tool([kustomize, "build", "--load-restrictor", "LoadRestrictionsNone", str(directory)])
        ours = run_tool([kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(directory)])
        assert theirs.returncode == ours.returncode == 0, f"{directory}: {theirs.stderr}{ours.stderr}"
        assert list(yaml.safe_load_all(theirs.stdout)) == list(yaml.safe_load_all(ours.stdout)), directory


# kubeconform -------------------------------------------------------------------------------
def test_kubeconform_checks_the_example_offline(example: Path, with_real_tools: None) -> None:
    from tasks.lib.fluxtree import validate

    real_tool("kubeconform")
    tree = validate(example)
    assert tree.problems == [], [str(p) for p in tree.problems]
    checked = next(n for n in tree.notes if "checked against the Kubernetes" in n)
    assert int(checked.split()[0]) >= 10
    assert "of kinds without a shipped schema" in checked  # HelmReleases, Kustomizations, ...


def test_kubeconform_finds_an_invalid_object(example: Path, with_real_tools: None) -> None:
    from tasks.lib.fluxtree.model import Obj
    from tasks.lib.fluxtree.schemacheck import check

    real_tool("kubeconform")
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": "http"}]},
    }
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}}
    invalid, notes = check([Obj(bad, "ks", "bad.yaml"), Obj(good, "ks", "good.yaml")])
    assert [(i.obj.file, i.reason.split(":")[0]) for i in invalid] == [("bad.yaml", "spec.ports[0].port")]
    assert notes[0].startswith("2 object(s) checked against the Kubernetes")


# actionlint --------------------------------------------------------------------------------
def actions_repo(tmp_path: Path) -> Path:
    root = tmp_path / "actions"
    shutil.copytree(ROOT / ".github", root / ".github")
    git(root, "init", "-q")  # actionlint finds the workflows from the repository root
    return root


def test_actionlint_is_clean_on_our_workflows(tmp_path: Path, with_real_tools: None, capsys) -> None:
    real_tool("actionlint")
    root = actions_repo(tmp_path)
    assert lint.actionlint(context(root), repo_paths(root)) is True
    assert "actionlint: ok" in capsys.readouterr().out


def test_actionlint_runs_shellcheck_on_run_scripts(tmp_path: Path, with_real_tools: None, capsys) -> None:
    real_tool("actionlint")
    real_tool("shellcheck")
    root = actions_repo(tmp_path)
    (root / ".github" / "workflows" / "broken.yaml").write_text(
        "on: push\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo $UNQUOTED_VAR\n"
    )
    assert lint.actionlint(context(root), repo_paths(root)) is False
    assert "SC2086" in capsys.readouterr().out


# Argument formats of the live-cluster tasks ------------------------------------------------
def scenario_bootstrap_apps(tmp_path: Path, fakes: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(ROOT / "tests" / "fixtures" / "example-operator"))
    tree = write_cluster_tree(tmp_path / "repo")
    publish(tree)
    for name, value in test_bootstrap.SECRET_VALUES.items():
        encrypt_into(tree, f"bootstrap/{name}.sops.yaml", secret_manifest(name, value))
    test_bootstrap.script_cluster(fakes, namespaces="default", diff=fail("", code=1))
    bootstrap.apps(test_bootstrap.context(tree), **test_bootstrap.fast())


def scenario_flux(tmp_path: Path, fakes: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\n")
    flux.reconcile(context(tmp_path))
    flux.status(context(tmp_path))


def scenario_dev(tmp_path: Path, fakes: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    root = test_dev.pushed_clone(tmp_path)
    test_dev.cluster(fakes, "main", suspended=False)
    dev.start(context(root))
    fakes.reset()
    test_dev.cluster(fakes, "feature", suspended=True, original="main")
    dev.stop(context(root))


SCENARIOS: dict[str, Callable[[Path, FakeTools, pytest.MonkeyPatch], None]] = {
    "bootstrap.apps": scenario_bootstrap_apps,
    "flux.reconcile+status": scenario_flux,
    "dev.start+stop": scenario_dev,
}
CHECKED_TOOLS = ("flux", "helm", "helmfile", "kubectl")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_task_arguments_parse_with_the_real_tools(
    scenario: str, tmp_path: Path, fake_tools: FakeTools, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Run the task against fakes (there is no cluster), then hand every command line it
    built to the real tool's flag parser."""
    log: list[tuple[str, tuple[str, ...]]] = []
    fakes_seen = fake_tools.calls  # calls survive fakes.reset() only if collected first
    original_reset = fake_tools.reset

    def collecting_reset() -> None:
        log.extend((c.tool, tuple(c.argv)) for c in fakes_seen())
        original_reset()

    monkeypatch.setattr(fake_tools, "reset", collecting_reset)
    SCENARIOS[scenario](tmp_path, fake_tools, monkeypatch)
    log.extend((c.tool, tuple(c.argv)) for c in fake_tools.calls())
    capsys.readouterr()
    commands = sorted({entry for entry in log if entry[0] in CHECKED_TOOLS})
    assert commands, "the scenario ran no command"
    problems = [argv_problem(real_tool(tool), tool, list(argv)) for tool, argv in commands]
    assert [p for p in problems if p] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--namespace", "flux-system", "apply", "--server-sid", "-f", "-"],  # misspelt flag
        ["create", "namespac", "flux-system"],  # misspelt subcommand
    ],
)
def test_a_wrong_argument_fails_the_check(argv: list[str]) -> None:
    assert argv_problem(real_tool("kubectl"), "kubectl", argv)


def test_talhelper_validates_the_example_talconfig(example: Path) -> None:
    talhelper = real_tool("talhelper")
    argv = [talhelper, "validate", "talconfig", "talconfig.yaml", "--env-file", "talenv.yaml"]
    result = run_tool(argv, cwd=example / "talos")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("line", [*test_bootstrap.APPLY_LINES, test_bootstrap.BOOTSTRAP_LINE])
def test_talosctl_parses_the_commands_talhelper_prints(line: str) -> None:
    """The talosctl lines the fakes print for talhelper gencommand, against the real talosctl."""
    tool, *argv = line.split()
    assert argv_problem(real_tool(tool), tool, argv) is None
