"""The offline Flux validator on fixture repositories, with the real kustomize."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tasks.lib.fluxtree import EntryNotFound, locate, validate, yamlio
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
    assert "Kustomizations  8 (8 validated, 0 skipped)" in text
    assert "Problems        0" in text
    data = json.loads(as_json(clean_tree))
    assert data["summary"]["helmreleases"] == 6
    assert {s["kind"] for s in data["sources"]} == {"OCIRepository", "HelmRepository"}


def test_helm_without_helm_is_a_note_not_a_problem(tmp_path: Path) -> None:
    tree = validate(CLEAN, helm=True)  # the tests see no .tools/bin: no helm, no kubeconform
    assert tree.problems == []
    assert "--helm: helm is missing, 6 HelmRelease(s) not rendered" in tree.notes
    assert any(note.startswith("schemas not checked: kubeconform is missing") for note in tree.notes)


SHARED = """---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: shared
provisioner: x
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: reader
rules: []
"""
BINDING = """---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {app}-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: reader
subjects: []
"""
APP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {app}
data:
  claim: ${{APP}}
"""
APP_KS = """---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {app}
  namespace: flux-system
spec:
  path: ./kubernetes/apps/{app}
  targetNamespace: media
  components: [../../components/app]
  postBuild:
    substitute:
      APP: {app}
  sourceRef:
    kind: GitRepository
    name: flux-system
"""
CLAIM = """apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: ${APP}
spec:
  storageClassName: shared
  accessModes: [ReadWriteOnce]
"""


def test_batched_builds_give_exactly_what_builds_one_by_one_give(tmp_path: Path, monkeypatch) -> None:
    """Many Kustomizations share one kustomize run (same-namespace apps loading one component
    take a nameSuffix of their own, removed afterwards): the objects are exactly those of
    one run per Kustomization, references to another app's objects included."""
    from tasks.lib.fluxtree import build

    repo = tmp_path / "repo"
    component = repo / "kubernetes/components/app"
    component.mkdir(parents=True)
    (component / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [claim.yaml]\n"
    )
    (component / "claim.yaml").write_text(CLAIM)
    for index in range(6):
        app = repo / f"kubernetes/apps/app{index}"
        app.mkdir(parents=True)
        (app / "kustomization.yaml").write_text("resources: [all.yaml]\n")
        extra = SHARED if index == 0 else BINDING.format(app=f"app{index}")
        (app / "all.yaml").write_text(APP.format(app=f"app{index}") + extra)
    (repo / "kubernetes/flux/cluster").mkdir(parents=True)
    (repo / "kubernetes/flux/cluster/ks.yaml").write_text(
        "".join(APP_KS.format(app=f"app{i}") for i in range(6))
    )

    def objects(tree) -> dict[str, list[str]]:
        return {k.id: sorted(yamlio.dump(o.body) for o in k.objects) for k in tree.kustomizations.values()}

    batched = validate(repo, workers=1)
    assert batched.builds < 6  # the apps shared a kustomize run
    monkeypatch.setattr(build, "plan_groups", lambda items, workers: [[item] for item in items])
    alone = validate(repo, workers=1)
    assert objects(batched) == objects(alone)
    (binding,) = [o for o in alone.objects() if o.name == "app3-reader"]
    assert binding.body["roleRef"]["name"] == "reader"
