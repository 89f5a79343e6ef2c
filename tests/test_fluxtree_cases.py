"""The validator on a corpus of small hand-written Flux repositories, one per class of real
repository it must handle (tests/fixtures/flux-repos/cases/NAME), each with its exact
expected report in ``expected.json``. Every case is copied to a temporary folder without
``.git``, so the entry discovery works as on an extracted archive."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tasks.lib.fluxtree import EntryNotFound, validate
from tasks.lib.fluxtree.report import summary

CASES = Path(__file__).parent / "fixtures" / "flux-repos" / "cases"
REPORTED = [p.parent.name for p in sorted(CASES.glob("*/expected.json"))]


def copy_case(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(CASES / name, target, ignore=shutil.ignore_patterns("expected.json"))
    return target


def report(name: str, tmp_path: Path) -> dict:
    """What the validator says about a case, in the shape of its expected.json."""
    expected = json.loads((CASES / name / "expected.json").read_text())
    tree = validate(copy_case(name, tmp_path) / expected.get("path", "."))
    info = summary(tree)
    return {
        **({"path": expected["path"]} if "path" in expected else {}),
        "entry": info["entry"],
        "kustomizations": info["kustomizations"],
        "built": info["built"],
        "helmreleases": info["helmreleases"],
        "objects": info["objects"],
        "skipped": info["skipped"],
        "problems": [str(p) for p in tree.problems],
    }


@pytest.mark.parametrize("name", REPORTED)
def test_case_report_is_exactly_as_expected(name: str, tmp_path: Path) -> None:
    expected = json.loads((CASES / name / "expected.json").read_text())
    assert report(name, tmp_path) == expected


def test_go_yaml_scalars_stay_strings(tmp_path: Path) -> None:
    tree = validate(copy_case("go-yaml-scalars", tmp_path))
    (config,) = [o for o in tree.objects() if o.kind == "AlertmanagerConfig"]
    assert config.spec["route"]["matchers"][0]["matchType"] == "="
    assert config.spec["route"]["groupBy"] == ["<<"]
    # As kustomize itself writes them: go-yaml reads 0755 as octal and a date as a timestamp.
    assert config.spec["labels"] == {"on": "y", "off": "n", "since": "2024-01-01T00:00:00Z", "mode": 493}
    (matchers,) = [o for o in tree.objects() if o.name == "matchers"]
    assert matchers.body["data"] == {
        "op": "=",
        "merge": "<<",
        "yes": "y",
        "no": "n",
        "date": "2024-01-01",
        "mode": "0755",
        "clock": "1:20",
    }


def test_empty_substitute_leaves_variables_alone(tmp_path: Path) -> None:
    tree = validate(copy_case("empty-substitute", tmp_path))
    (dashboard,) = [o for o in tree.objects() if o.name == "node-dashboard"]
    assert "${DS_PROMETHEUS}" in dashboard.body["data"]["node.json"]


def test_bootstrap_folder_is_built_with_its_namespace(tmp_path: Path) -> None:
    tree = validate(copy_case("bootstrap-namespace", tmp_path))
    (config,) = [o for o in tree.objects() if o.name == "tunnel" and o.kind == "ConfigMap"]
    assert config.body["data"]["tunnel"] == "00000000-0000-0000-0000-000000000000"


def test_variables_given_by_the_user(tmp_path: Path) -> None:
    repo = copy_case("kustomize-error", tmp_path)
    tree = validate(repo, variables={"A": "7"})
    (config,) = [o for o in tree.objects() if o.name == "other" and o.kind == "ConfigMap"]
    # kustomize writes the value unquoted (${A:=1}), so after substitution YAML reads a number,
    # exactly as Flux's own substitution does.
    assert config.body["data"]["a"] == 7


@pytest.mark.parametrize(
    "name, text",
    [
        (
            "multi-cluster",
            "holds 2 Flux clusters (kubernetes/home/flux/cluster, kubernetes/lab/flux/cluster)",
        ),
        ("not-flux", "no Flux tree under"),
    ],
)
def test_no_single_entry_is_one_clear_line(name: str, text: str, tmp_path: Path) -> None:
    with pytest.raises(EntryNotFound) as error:
        validate(copy_case(name, tmp_path))
    assert text in str(error.value)
    assert "\n" not in str(error.value)


def test_one_cluster_of_many_by_its_folder(tmp_path: Path) -> None:
    tree = validate(copy_case("multi-cluster", tmp_path) / "kubernetes/lab/flux/cluster")
    assert [o.name for o in tree.objects() if o.kind == "ConfigMap"] == ["lab"]


def test_a_bug_in_one_kustomization_is_reported_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.lib.fluxtree import engine

    original = engine.Engine.objects

    def faulty(self, ks, *, report):
        if ks.name == "blog":
            raise RuntimeError("injected")
        return original(self, ks, report=report)

    monkeypatch.setattr(engine.Engine, "objects", faulty)
    tree = validate(copy_case("features", tmp_path))
    assert [(p.kind, p.kustomization) for p in tree.problems] == [("internal-error", "web/blog")]
    assert "RuntimeError: injected" in tree.problems[0].message
    assert tree.kustomizations["db/postgres"].built


def test_commands_are_seen_through_the_runner() -> None:
    import sys

    from tasks.lib.tools.runner import Command, observe, run_many

    seen: list[str] = []
    with observe(lambda command: seen.append(command.line)):  # type: ignore[func-returns-value]
        outcomes = run_many([Command((sys.executable, "-c", "print(1)")), Command((sys.executable, "-V"))])
    assert [o.ok for o in outcomes] == [True, True]
    assert outcomes[0].stdout.strip() == "1"
    assert len(seen) == 2


def _git(repo: Path, *args: str) -> None:
    import subprocess

    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_a_fork_with_its_own_remote_still_follows_the_self_managing_kustomization(tmp_path: Path) -> None:
    """The FluxInstance's sync URL is this repository, whatever the checkout's remote says
    (a fork, a mirror): the Kustomization managing kubernetes/flux is built from here, so
    the HelmRepositories it applies exist."""
    repo = copy_case("self-managed-sync", tmp_path)
    _git(repo, "init", "-q")
    _git(repo, "remote", "add", "origin", "https://github.com/someone/fork.git")
    tree = validate(repo)
    assert tree.kustomizations["flux-system/cluster"].built
    assert tree.problems == []
    assert sorted(o.name for o in tree.sources()) == ["bjw-s", "controlplaneio", "home-kubernetes"]


def test_makejinja_template_sources_are_not_applied(tmp_path: Path) -> None:
    tree = validate(copy_case("makejinja-templates", tmp_path))
    (echo,) = [o for o in tree.objects() if o.name == "echo"]
    assert echo.body["data"] == {"host": "echo.example.com", "timezone": "Etc/UTC"}
    assert tree.kustomizations["flux-system/flux"].skipped.endswith("is external, not built")


def test_a_git_source_named_by_the_sync_url_is_this_repository(tmp_path: Path) -> None:
    tree = validate(copy_case("external-git-no-remote", tmp_path))
    assert tree.kustomizations["flux-system/crds"].built
    assert not tree.kustomizations["flux-system/gateway-api-crds"].built


def test_without_any_url_a_git_source_with_an_existing_path_is_this_repository(tmp_path: Path) -> None:
    """No remote and no sync URL: the old rule holds for non-empty paths only."""
    repo = copy_case("external-git-no-remote", tmp_path)
    sync = repo / "clusters/main/flux-system/gotk-sync.yaml"
    sync.write_text(sync.read_text().replace("  url: ssh://git@github.com/example/home-ops\n", ""))
    tree = validate(repo)
    assert tree.kustomizations["flux-system/gateway-api-crds"].built  # config/crd exists here
    assert not tree.kustomizations["flux-system/gateway-api"].built  # the root: no evidence


def test_sourceignore_leaves_files_out_of_the_generated_kustomization(tmp_path: Path) -> None:
    tree = validate(copy_case("sourceignore", tmp_path))
    (echo,) = [o for o in tree.objects() if o.name == "echo"]
    assert echo.body["data"] == {"greeting": "hello"}  # override.local.yaml is ignored
    assert not [o for o in tree.objects() if o.name == "draft"]


def test_coverage_is_reported_and_strict_fails_skipped_kustomizations(tmp_path: Path) -> None:
    from tasks.lib.fluxtree.report import as_text

    repo = copy_case("mostly-external", tmp_path)
    text = as_text(validate(repo))
    assert text.splitlines()[0].startswith("WARNING: 2 of 3 Kustomizations were not validated")
    assert "Kustomizations  3 (1 validated, 2 skipped: 2 external source)" in text
    strict = validate(repo, strict=True)
    assert [(p.kind, p.kustomization) for p in strict.problems] == [
        ("not-validated", "flux-system/platform"),
        ("not-validated", "flux-system/platform-config"),
    ]
    assert not as_text(validate(copy_case("features", tmp_path))).startswith("WARNING")


def test_strict_substitution_follows_the_pinned_flux(tmp_path: Path) -> None:
    repo = copy_case("substitution-flux-2-6", tmp_path)
    assert "Flux replaces it with an empty string" in validate(repo).problems[0].message
    components = repo / "clusters/home/flux-system/gotk-components.yaml"
    components.write_text(components.read_text().replace("v2.6.4", "v2.9.5"))
    assert "Flux fails the whole Kustomization flux-system/apps" in validate(repo).problems[0].message
    # an explicit feature gate wins over the version
    (repo / "clusters/home/flux-system/kustomization.yaml").write_text(
        "resources: [gotk-components.yaml, gotk-sync.yaml]\n"
        "patches:\n  - patch: |\n      - op: add\n        path: /spec/template/spec/containers/0/args/-\n"
        "        value: --feature-gates=StrictPostBuildSubstitutions=false\n"
        "    target: {kind: Deployment, name: kustomize-controller}\n"
    )
    assert "replaces it with an empty string" in validate(repo).problems[0].message
