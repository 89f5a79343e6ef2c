"""The validator on flux-local's own test clusters, compared with flux-local's golden snapshots.

Runs only when ``FLUX_LOCAL_TESTDATA`` points at a checkout of flux-local (its
``tests/testdata`` clusters and ``tests/tool/__snapshots__``); skipped otherwise, with the
reason. Each cluster is validated from its top folder and from its cluster folder, in the
checkout as it is (with ``.git`` when it has one) and in a copy without ``.git``. Every
difference from the golden files must be one of :data:`KNOWN`, each with the reason ours is
right; the same list is in docs/tasks/dev.md. A new difference fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
from functools import cache
from pathlib import Path

import pytest

from tasks.lib.fluxtree import Tree, validate
from tests.tools_contract import TOOLS_DIR, real_tool

CHECKOUT = Path(os.environ["FLUX_LOCAL_TESTDATA"]) if os.environ.get("FLUX_LOCAL_TESTDATA") else None
pytestmark = pytest.mark.skipif(
    CHECKOUT is None,
    reason="FLUX_LOCAL_TESTDATA is not set (a checkout of github.com/allenporter/flux-local)",
)
SNAPSHOTS = Path("tests/tool/__snapshots__")

#: golden test id -> (folder given to flux-local, its cluster folder or "" when it has none)
GET_KS = {
    "cluster": ("tests/testdata/cluster", "tests/testdata/cluster/clusters/prod"),
    "cluster_path": ("tests/testdata/cluster/clusters/prod", ""),
    "cluster2": ("tests/testdata/cluster2", "tests/testdata/cluster2/flux"),
    "cluster3": ("tests/testdata/cluster3", "tests/testdata/cluster3/clusters/cluster3"),
    "cluster4": ("tests/testdata/cluster4", "tests/testdata/cluster4/flux"),
    "cluster5": ("tests/testdata/cluster5", "tests/testdata/cluster5/clusters/prod"),
    "cluster6": ("tests/testdata/cluster6", "tests/testdata/cluster6/cluster"),
    "cluster7": ("tests/testdata/cluster7", "tests/testdata/cluster7/clusters/home"),
    "cluster9": ("tests/testdata/cluster9/clusters/dev", ""),
    "cluster11": ("tests/testdata/cluster11", "tests/testdata/cluster11/cluster"),
}
GET_HR = {
    "cluster": "tests/testdata/cluster",
    "cluster2": "tests/testdata/cluster2",
    "cluster3": "tests/testdata/cluster3",
    "cluster4": "tests/testdata/cluster4",
    "cluster5": "tests/testdata/cluster5",
    "cluster6": "tests/testdata/cluster6",
    "cluster7": "tests/testdata/cluster7",
    "cluster9": "tests/testdata/cluster9/clusters/dev",
}
#: build all without helm: golden id -> folder (flux-local leaves Secrets out by default)
BUILD = {
    "build": "tests/testdata/cluster",
    "build-cluster2": "tests/testdata/cluster2",
    "build-cluster3": "tests/testdata/cluster3",
    "build-cluster6": "tests/testdata/cluster6",
}
#: (what, golden id) -> why ours differs and is right. Keep docs/tasks/dev.md in step.
KNOWN = {
    ("ks", "cluster3"): "the OCIRepository `cluster` is another artifact: flux-local was told to read "
    "it from the folder (`--sources cluster=...`); ours lists both Kustomizations as external, not built",
    ("hr", "cluster3"): "its HelmRelease is applied by a Kustomization of the external OCIRepository",
    ("ks", "cluster11"): "`apps` is built from an ExternalArtifact (flux-local was given `--sources`): "
    "ours lists it as external, not built",
    ("hr", "cluster5"): "`infra-controllers` (namespace controllers), which applies them, has a sourceRef "
    "without namespace: Flux resolves it in the Kustomization's own namespace, where no GitRepository "
    "flux-system exists; ours reports source-missing and does not build it",
    ("build", "build"): "the plain Secret cluster-secrets gives SECRET_DOMAIN3 and SECRET_DOMAIN4 the "
    "value SECRET, and Flux substitutes it: both Certificates become SECRET-staging, which ours reports "
    "as one object applied twice (flux-local substitutes placeholders and keeps two names)",
}


@cache
def golden(file: str) -> dict[str, str]:
    """Snapshot name -> its text (syrupy's amber format, two-space indented)."""
    assert CHECKOUT is not None
    text = (CHECKOUT / SNAPSHOTS / file).read_text()
    out = {}
    for match in re.finditer(r"^# name: (.+?)\n  '''\n(.*?)\n  '''\n# ---", text, re.S | re.M):
        lines = match.group(2).splitlines()
        out[match.group(1)] = "\n".join(line[2:] if line.startswith("  ") else line for line in lines)
    return out


def table(text: str) -> list[dict[str, str]]:
    """Rows of flux-local's text table (columns split on two or more spaces)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0].startswith("no "):
        return []
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=False)) for line in lines[1:]]


@pytest.fixture(scope="module", params=["checkout", "no-git"])
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The flux-local checkout as it is, or its test clusters copied without ``.git``."""
    assert CHECKOUT is not None
    if request.param == "checkout":
        return CHECKOUT
    copy = tmp_path_factory.mktemp("flux-local") / "checkout"
    shutil.copytree(CHECKOUT / "tests/testdata", copy / "tests/testdata", symlinks=True)
    return copy


def kustomizations(tree: Tree, all_namespaces: bool = False) -> set[tuple[str, str]]:
    """(name, path) of what flux-local would list: every Kustomization it could build
    (ours: validated), the cluster's own flux-system when it is not itself one of them."""
    out = {
        (ks.name, ks.path)
        for ks in tree.kustomizations.values()
        if ks.built and not ks.synthetic and (all_namespaces or ks.namespace == "flux-system")
    }
    root = next(ks for ks in tree.kustomizations.values() if ks.synthetic)
    if root.path not in {path for _name, path in out}:
        out.add((root.name, root.path))
    return out


@pytest.mark.parametrize("start", ["top", "cluster"])
@pytest.mark.parametrize("case", sorted(GET_KS))
def test_kustomizations_match_flux_local(base: Path, case: str, start: str) -> None:
    top, cluster = GET_KS[case]
    folder = top if start == "top" else cluster
    if not folder:
        pytest.skip(f"{case} is given to flux-local as a cluster folder already")
    expected = {
        (row["NAME"], row["PATH"]) for row in table(golden("test_get_ks.ambr")[f"test_get_ks[{case}]"])
    }
    ours = kustomizations(validate(base / folder))
    if ours != expected:
        assert ("ks", case) in KNOWN, (
            f"{case} from {folder}: ours {sorted(ours)} != golden {sorted(expected)}"
        )
    else:
        assert ("ks", case) not in KNOWN, f"{case} matches now: drop it from KNOWN and the docs"


@pytest.mark.parametrize("case", sorted(GET_HR))
def test_helmreleases_match_flux_local(base: Path, case: str) -> None:
    expected = {
        (row.get("NAMESPACE", ""), row["NAME"])
        for row in table(golden("test_get_hr.ambr")[f"test_get_hr[{case}]"])
    }
    tree = validate(base / GET_HR[case])
    ours = {(hr.namespace, hr.name) for hr in tree.helmreleases()}
    if ours != expected:
        assert ("hr", case) in KNOWN, f"{case}: ours {sorted(ours)} != golden {sorted(expected)}"
    else:
        assert ("hr", case) not in KNOWN, f"{case} matches now: drop it from KNOWN and the docs"


def identities(documents: list[dict]) -> set[tuple[str, str, str, str]]:
    out = set()
    for doc in documents:
        metadata = doc.get("metadata") or {}
        labels = metadata.get("labels") or {}
        group = "kustomize.toolkit.fluxcd.io"
        owner = f"{labels.get(f'{group}/namespace')}/{labels.get(f'{group}/name')}"
        out.add(
            (owner, str(doc.get("kind")), str(metadata.get("namespace") or ""), str(metadata.get("name")))
        )
    return out


@pytest.mark.parametrize("case", sorted(BUILD))
def test_built_objects_match_flux_local(base: Path, case: str) -> None:
    from tasks.lib.fluxtree import yamlio

    expected = identities(
        [d for d in yamlio.load_all(golden("test_build_all.ambr")[f"test_build_all[{case}]"]) if d]
    )
    tree = validate(base / BUILD[case])
    ours = {
        (o.owner, o.kind, o.namespace, o.name) for o in tree.objects() if o.kind != "Secret"
    }  # flux-local leaves Secrets out of `build all` by default
    if ours != expected:
        assert ("build", case) in KNOWN, (
            f"{case}: ours - golden {sorted(ours - expected)}; golden - ours {sorted(expected - ours)}"
        )
    else:
        assert ("build", case) not in KNOWN, f"{case} matches now: drop it from KNOWN and the docs"


def test_an_invalid_pod_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """flux-local's image_error cluster: a Pod whose image is a mapping (the API server
    refuses it; flux-local fails extracting images)."""
    real_tool("kubeconform")
    monkeypatch.setenv("HOME_OPS_TOOLS_DIR", str(TOOLS_DIR))
    assert CHECKOUT is not None
    tree = validate(CHECKOUT / "tests/testdata/image_error")
    assert [(p.kind, p.file) for p in tree.problems] == [
        ("schema-invalid", "tests/testdata/image_error/apps/pods.yaml")
    ]
