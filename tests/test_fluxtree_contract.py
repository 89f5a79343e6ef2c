"""The validator against the real flux CLI, when it is installed (on PATH or in the
repository's ``.tools/bin``): every Kustomization of the fixture corpus built with
``flux build kustomization --dry-run`` must apply exactly the objects we say it applies, and
our ``postBuild`` substitution must agree with ``flux envsubst``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.lib.fluxtree import validate, yamlio
from tasks.lib.fluxtree.model import group_of
from tasks.lib.fluxtree.subst import substitute
from tests.test_fluxtree_cases import CASES, REPORTED

ROOT = Path(__file__).parent.parent
CLEAN = Path(__file__).parent / "fixtures" / "flux-repos" / "clean"


def find_flux() -> str | None:
    local = ROOT / ".tools" / "bin" / "flux"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("flux")


FLUX = find_flux()
pytestmark = pytest.mark.skipif(FLUX is None, reason="the flux CLI is not installed")


def identities(docs: list[dict]) -> set[tuple[str, str, str, str]]:
    return {
        (
            group_of(str(d.get("apiVersion", ""))),
            str(d.get("kind", "")),
            str((d.get("metadata") or {}).get("namespace") or ""),
            str((d.get("metadata") or {}).get("name") or ""),
        )
        for d in docs
        if isinstance(d, dict)
    }


def flux_build(root: Path, ks, tmp: Path) -> list[dict]:
    body = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": ks.name, "namespace": ks.namespace},
        "spec": ks.spec,
    }
    file = tmp / f"{ks.namespace}-{ks.name}.yaml"
    file.write_text(yamlio.dump(body))
    argv = [
        str(FLUX), "build", "kustomization", ks.name, "--namespace", ks.namespace,
        "--path", str(root / ks.path), "--kustomization-file", str(file), "--dry-run",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return [{"error": done.stderr}]
    return yamlio.load_all(done.stdout)


def artifact(root: Path, target: Path) -> Path:
    """What source-controller hands kustomize-controller: the repository without the paths
    its ignore rules leave out (``flux build`` reads only the ``--path`` folder's own
    ``.sourceignore``)."""
    from tasks.lib.fluxtree.ignore import SourceIgnore

    ignore = SourceIgnore(root)

    def skip(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if ignore.ignored_path(Path(folder) / n) or n == "expected.json"}

    shutil.copytree(root, target, ignore=skip, symlinks=True)
    return target


#: Problems for which kustomize-controller fails the whole Kustomization.
FAILING = {"substitution-failed", "missing-file", "build-failed", "yaml-invalid"}


@pytest.mark.parametrize("name", [*REPORTED, "clean"])
def test_every_kustomization_applies_what_flux_builds(name: str, tmp_path: Path) -> None:
    source = CLEAN if name == "clean" else CASES / name
    repo = tmp_path / name
    shutil.copytree(source, repo, ignore=shutil.ignore_patterns("expected.json"))
    entry = "kubernetes/apps" if name == "apps-folder" else "."
    tree = validate(repo / entry)
    built = artifact(Path(tree.root), tmp_path / "artifact")
    compared = 0
    for ks in tree.kustomizations.values():
        if ks.synthetic or ks.skipped:
            continue
        theirs = flux_build(built, ks, tmp_path)
        kinds = {p.kind for p in tree.problems if p.kustomization == ks.id}
        if "outside-source" in kinds:
            continue  # the controller's secure file system refuses it; `flux build` has none
        fails = kinds & FAILING
        if fails or not ks.built:
            assert fails and "error" in theirs[0], ks.id  # flux fails where we say it does
        else:
            assert identities([o.body for o in ks.objects]) == identities(theirs), ks.id
        compared += 1
    assert compared or name in {"external-sources", "outside-source"}


EXPRESSIONS = [
    "plain ${A} and ${B}, ${MISSING} and ${1} and $A and $${A}",
    "${MISSING:=fallback} ${MISSING:-dash} ${EMPTY:=set} ${EMPTY:-unset} ${EMPTY=kept} ${MISSING:?q}",
    "nested ${MISSING:=${A}-x} and ${A:=${B}}",
    "ops ${A:1} ${A:1:2} ${A/a/b} ${A//a/b} ${A^} ${A^^} ${A,,} ${#A} ${A#al} ${A%ha} ${A:+x}",
    "url https://${A}.example.com/${B}",
    "bash default ${A-x}",
    "bash alternative ${A+x}",
    "no name ${ A}",
]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_substitution_matches_flux_envsubst(text: str) -> None:
    variables = {"A": "alpha", "B": "beta", "EMPTY": ""}
    env = {"PATH": os.environ.get("PATH", ""), **variables}
    argv = [str(FLUX), "envsubst"]
    done = subprocess.run(argv, input=text, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 and "unknown command" in done.stderr:
        pytest.skip("this flux has no envsubst")
    ours = substitute(text, variables)
    assert (ours.error is None) == (done.returncode == 0), (ours.error, done.stderr)
    if done.returncode == 0:
        assert ours.text == done.stdout.rstrip("\n")
