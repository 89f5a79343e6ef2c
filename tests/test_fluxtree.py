"""The offline Flux validator on fixture repositories, with the real kustomize."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tasks.lib.fluxtree import EntryNotFound, locate, validate
from tasks.lib.fluxtree.report import as_json, as_text

FIXTURES = Path(__file__).parent / "fixtures" / "flux-repos"
CLEAN = FIXTURES / "clean"
PROBLEMS = FIXTURES / "problems"
LAYOUTS = FIXTURES / "layouts"  # layouts of real repositories that must not be reported

#: Problem fixture -> (kind reported, file it must name, text the message must contain).
EXPECTED = {
    "yaml-invalid": ("yaml-invalid", "kubernetes/apps/default/echo/app/helmrelease.yaml", "mapping values"),
    "missing-file": ("missing-file", "kubernetes/apps/default/atuin/app/kustomization.yaml", "./pvc.yaml"),
    "build-failed": ("build-failed", "kubernetes/apps/default/echo/app/kustomization.yaml", "frobnicate"),
    "depends-on-missing": (
        "depends-on-missing",
        "kubernetes/apps/default/atuin/ks.yaml",
        "storage/rook-ceph-clustr",
    ),
    "depends-on-cycle": (
        "depends-on-cycle",
        "kubernetes/apps/storage/rook-ceph/ks.yaml",
        "storage/rook-ceph -> storage/rook-ceph-cluster -> storage/rook-ceph",
    ),
    "chart-source-missing": (
        "chart-source-missing",
        "kubernetes/apps/default/echo/app/helmrelease.yaml",
        "OCIRepository default/app-templ8",
    ),
    "source-missing": ("source-missing", "kubernetes/apps/default/echo/ks.yaml", "echo-repo"),
    "duplicate-object": (
        "duplicate-object",
        "kubernetes/components/repos/app-template/ocirepository.yaml",
        "OCIRepository default/app-template is applied by 2 Kustomizations",
    ),
    "sops-unencrypted": (
        "sops-unencrypted",
        "kubernetes/apps/default/atuin/app/secret.sops.yaml",
        "not encrypted",
    ),
    "substitute-from-missing": (
        "substitute-from-missing",
        "kubernetes/flux/cluster/ks.yaml",
        "meta-settings",
    ),
    "unresolved-variable": (
        "unresolved-variable",
        "kubernetes/apps/default/atuin/app/helmrelease.yaml",
        "${ATUIN_DB_PASSWORD}",
    ),
}


def make_repo(tmp_path: Path, problem: str | None = None, layout: str | None = None) -> Path:
    """The clean fixture, with a problem fixture's files (then a layout's) laid over it. A
    ``*.fixture`` file loses that suffix and ``.plain-sops.`` becomes ``.sops.`` (so the
    checkout itself holds no unencrypted ``*.sops.*`` file)."""
    repo = tmp_path / "repo"
    shutil.copytree(CLEAN, repo)
    overlays = [PROBLEMS / problem] if problem else []
    overlays += [LAYOUTS / layout] if layout else []
    for overlay in overlays:
        for source in overlay.rglob("*"):
            if source.is_file():
                name = str(source.relative_to(overlay))
                if name.endswith(".fixture"):
                    name = name.removesuffix(".fixture").replace(".plain-sops.", ".sops.")
                target = repo / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
    return repo


@pytest.fixture(scope="module")
def clean_tree():
    return validate(CLEAN)


def obj(tree, owner: str, kind: str, name: str):
    matches = [o for o in tree.kustomizations[owner].objects if o.kind == kind and o.name == name]
    assert matches, f"{kind} {name} not applied by {owner}"
    return matches[0]


def test_clean_tree_passes(clean_tree) -> None:
    assert clean_tree.problems == []
    assert {k for k, ks in clean_tree.kustomizations.items() if not ks.synthetic} == {
        "flux-system/cluster-meta",
        "flux-system/cluster-apps",
        "flux-system/flux-operator",
        "flux-system/flux-instance",
        "default/echo",
        "default/atuin",
        "storage/rook-ceph",
        "storage/rook-ceph-cluster",
    }
    assert all(ks.built for ks in clean_tree.kustomizations.values())
    assert len(clean_tree.helmreleases()) == 6


def test_components_and_substitution_as_flux_does(clean_tree) -> None:
    pvc = obj(clean_tree, "default/atuin", "PersistentVolumeClaim", "atuin")
    assert pvc.namespace == "default"  # targetNamespace set by the namespace component's replacement
    assert pvc.file == "kubernetes/components/volsync/pvc.yaml"
    assert pvc.body["spec"]["resources"]["requests"]["storage"] == "2Gi"  # substitute wins over default
    assert pvc.body["spec"]["accessModes"] == ["ReadWriteOnce"]  # ${VAR:=default}
    assert pvc.body["spec"]["storageClassName"] == "ceph-block"  # ${VAR:-default}


def test_encrypted_secret_values_become_placeholders(clean_tree) -> None:
    release = obj(clean_tree, "default/echo", "HelmRelease", "echo")
    assert release.body["spec"]["values"]["route"]["app"]["hostnames"] == [
        "{{ .Release.Name }}.PLACEHOLDER_SECRET_DOMAIN"
    ]
    assert (
        release.body["spec"]["values"]["controllers"]["echo"]["containers"]["app"]["env"]["GREETING"]
        == "hello ${USER}"
    )


def test_parent_patches_reach_children(clean_tree) -> None:
    # cluster-apps patches every child Kustomization, which patches its HelmReleases.
    release = obj(clean_tree, "storage/rook-ceph-cluster", "HelmRelease", "rook-ceph-cluster")
    assert release.body["spec"]["upgrade"]["crds"] == "CreateReplace"
    assert release.namespace == "storage"


def test_disabled_substitution_is_left_alone(clean_tree) -> None:
    scripts = obj(clean_tree, "default/echo", "ConfigMap", "echo-scripts")
    assert "${PORT:-8080}" in scripts.body["data"]["healthcheck.sh"]


def test_common_metadata_and_hashed_generators(clean_tree) -> None:
    release = obj(clean_tree, "flux-system/flux-operator", "HelmRelease", "flux-operator")
    assert release.body["metadata"]["labels"]["app.kubernetes.io/name"] == "flux-operator"
    names = [o.name for o in clean_tree.kustomizations["flux-system/flux-instance"].objects]
    assert any(n.startswith("flux-instance-values-") for n in names)


def test_path_without_kustomization_file_is_generated(clean_tree) -> None:
    release = obj(clean_tree, "storage/rook-ceph", "HelmRelease", "rook-ceph-operator")
    assert release.file == "kubernetes/apps/storage/rook-ceph/app/helmrelease.yaml"


@pytest.mark.parametrize("problem", sorted(EXPECTED))
def test_each_problem_is_reported_with_its_file(problem: str, tmp_path: Path) -> None:
    kind, file, text = EXPECTED[problem]
    tree = validate(make_repo(tmp_path, problem))
    found = [p for p in tree.problems if p.kind == kind]
    assert found, f"{kind} not reported; got {[str(p) for p in tree.problems]}"
    assert any(p.file == file and text in p.message for p in found), [str(p) for p in found]
    assert {p.kind for p in tree.problems} == {kind}, [str(p) for p in tree.problems]


@pytest.mark.parametrize(
    "script, line",
    [
        ("bootstrap/mod.just", None),  # {{ kubernetes_dir }}/components/...
        ("scripts/bootstrap-apps.sh", '"${ROOT_DIR}/kubernetes/components/common/vars/meta-settings.yaml"'),
        ("Taskfile.yaml", "- kubectl apply -f ./kubernetes/components/common/vars/meta-settings.yaml"),
    ],
)
def test_values_a_bootstrap_script_applies_are_known(tmp_path: Path, script: str, line: str | None) -> None:
    # Like Diaoul/home-ops and the cluster template: the bootstrap applies a manifest kept under
    # kubernetes/ into flux-system, and Flux Kustomizations there substitute from it.
    repo = make_repo(tmp_path, "substitute-from-missing", layout="bootstrap-script")
    if line is not None:
        (repo / "bootstrap/mod.just").unlink()
        (repo / script).parent.mkdir(parents=True, exist_ok=True)
        (repo / script).write_text(f"apply {line}\n")
    assert validate(repo).problems == []


def test_a_manifest_no_bootstrap_script_names_is_not_a_source(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "substitute-from-missing", layout="bootstrap-script")
    (repo / "bootstrap/mod.just").write_text("resources:\n    kubectl apply -f other/settings.yaml\n")
    assert [p.kind for p in validate(repo).problems] == ["substitute-from-missing"]


def test_every_problem_fixture_has_an_expectation() -> None:
    assert {p.name for p in PROBLEMS.iterdir()} == set(EXPECTED)


def test_a_failed_build_does_not_hide_the_others(tmp_path: Path) -> None:
    tree = validate(make_repo(tmp_path, "build-failed"))
    assert not tree.kustomizations["default/echo"].built
    assert tree.kustomizations["default/atuin"].built
    assert tree.kustomizations["storage/rook-ceph-cluster"].objects


def test_remote_resources_are_skipped_offline(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    kustomization = repo / "kubernetes/apps/storage/rook-ceph/cluster/kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text()
        + "  - https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.3.0/standard-install.yaml\n"
    )
    tree = validate(repo)
    assert tree.problems == []
    assert any("skipped remote reference" in note for note in tree.notes)
    assert tree.kustomizations["storage/rook-ceph-cluster"].objects


def test_locate(tmp_path: Path) -> None:
    assert locate(CLEAN) == (CLEAN.resolve(), (CLEAN / "kubernetes/flux/cluster").resolve())
    with pytest.raises(EntryNotFound):
        locate(tmp_path)


def test_reports(clean_tree) -> None:
    text = as_text(clean_tree)
    assert "Kustomizations  8 (8 built, 0 skipped)" in text
    assert "Problems        0" in text
    data = json.loads(as_json(clean_tree))
    assert data["summary"]["helmreleases"] == 6
    assert {s["kind"] for s in data["sources"]} == {"OCIRepository", "HelmRepository"}


def test_helm_inflation_with_fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_tree) -> None:
    import copy

    from tasks.lib.fluxtree.helm import inflate
    from tests.fakes import FakeTools, fail, ok

    clean_tree = copy.deepcopy(clean_tree)
    fakes = FakeTools(tmp_path / "bin").install("helm", "kubeconform")
    fakes.script(
        "helm", ("rook-ceph-cluster", fail("Error: chart not found")), (None, ok("kind: ConfigMap\n"))
    )
    monkeypatch.setenv("PATH", fakes.path_env())
    notes = inflate(clean_tree, helm="helm", kubeconform="kubeconform")
    lines = fakes.lines("helm")
    assert (
        "helm template atuin oci://ghcr.io/bjw-s-labs/helm/app-template --version 4.4.0 "
        "--namespace default --include-crds --values -"
    ) in lines
    assert (
        "helm template rook-ceph-operator rook-ceph --repo https://charts.rook.io/release --version v1.18.0 "
        "--namespace storage --include-crds --values -"
    ) in lines
    atuin = next(call for call in fakes.calls("helm") if "atuin" in call.argv)
    assert "ghcr.io/atuinsh/atuin" in atuin.stdin  # the values travel on stdin
    assert any("valuesFrom" in note for note in notes)  # flux-instance's values are partial
    failed = [p for p in clean_tree.problems if p.kind == "helm-template-failed"]
    assert [p.file for p in failed] == ["kubernetes/apps/storage/rook-ceph/cluster/helmrelease.yaml"]
    assert len(fakes.calls("kubeconform")) == 1


def test_helm_skipped_without_tools(clean_tree) -> None:
    from tasks.lib.fluxtree.helm import inflate

    notes = inflate(clean_tree, helm=None, kubeconform=None)
    assert notes == [
        "--helm: helm is not installed, 6 HelmRelease(s) not inflated",
        "--helm: kubeconform is not installed, schemas not checked",
    ]
