"""The Renovate config finds our dependencies: each manager's patterns match the files
they are meant for (real files of this repository, plus representative paths), and every
inline `# renovate:` annotation is understood by the regex manager."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_json5(text: str) -> dict:
    """The subset of JSON5 that .renovaterc.json5 uses: comment lines, bare keys, trailing commas."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("//")]
    text = "\n".join(lines)
    text = re.sub(r"^(\s*)([A-Za-z_$][\w$]*)\s*:", r'\1"\2":', text, flags=re.MULTILINE)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    return json.loads(text)


CONFIG = load_json5((ROOT / ".renovaterc.json5").read_text())


def js_regex(pattern: str) -> re.Pattern[str]:
    """A Renovate `/regex/` (or JS regex string) as a Python pattern."""
    if pattern.startswith("/") and pattern.rstrip("i").endswith("/"):
        pattern = pattern[1 : pattern.rstrip("i").rindex("/")]
    return re.compile(pattern.replace("(?<", "(?P<"))


def patterns(manager: str) -> list[re.Pattern[str]]:
    return [js_regex(p) for p in CONFIG[manager]["managerFilePatterns"]]


def matches(manager: str, path: str) -> bool:
    return any(p.search(path) for p in patterns(manager))


def repo_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(p for p in out.splitlines() if (ROOT / p).is_file() and not p.startswith("tests/fixtures/"))


FILES = repo_files()


def files_containing(regex: str, suffixes: tuple[str, ...]) -> list[str]:
    found = []
    for path in FILES:
        if path.endswith(suffixes) and re.search(regex, (ROOT / path).read_text(errors="replace"), re.M):
            found.append(path)
    return found


MEANT_FOR: dict[str, tuple[list[str], list[str]]] = {
    # manager: (must match, must not match)
    "flux": (
        [
            "kubernetes/apps/network/cloudflared/app/helmrelease.yaml",
            "kubernetes/apps/network/cloudflared/app/ocirepository.yaml",
            "templates/config/kubernetes/apps/network/cloudflared/app/helmrelease.yaml.j2",
            "kubernetes/flux/cluster/ks.yaml",
        ],
        ["bootstrap/helmfile.d/01-apps.yaml", "README.md", "talos/talconfig.yaml", "tasks/core.py"],
    ),
    "helm-values": (
        [
            "kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml",
            "templates/config/kubernetes/apps/flux-system/flux-instance/app/helm/values.yaml.j2",
            "kubernetes/apps/network/cloudflared/app/helmrelease.yaml",
        ],
        ["kubernetes/apps/network/cloudflared/ks.yaml", "bootstrap/helmfile.d/01-apps.yaml"],
    ),
    "kubernetes": (
        [
            "kubernetes/apps/default/echo/app/helmrelease.yaml",
            "templates/config/kubernetes/apps/x/app/y.yaml.j2",
        ],
        ["talos/talenv.yaml", "cluster.yaml", ".github/workflows/lint.yaml"],
    ),
    "helmfile": (
        [
            "bootstrap/helmfile.d/00-crds.yaml",
            "bootstrap/helmfile.d/01-apps.yaml",
            "templates/config/bootstrap/helmfile.d/01-apps.yaml.j2",
        ],
        ["bootstrap/github-deploy-key.sops.yaml", "kubernetes/apps/x/app/helmrelease.yaml"],
    ),
    "pep621": (["pyproject.toml"], ["uv.lock", "tasks/__init__.py"]),
    "mise": ([".mise.toml"], ["pyproject.toml"]),
    "github-actions": (
        [".github/workflows/lint.yaml", ".github/workflows/e2e.yaml"],
        [".github/labels.yaml"],
    ),
    "pre-commit": ([".pre-commit-config.yaml"], [".yamlfmt.yaml"]),
}


@pytest.mark.parametrize("manager", sorted(MEANT_FOR))
def test_manager_patterns_match_the_files_they_are_meant_for(manager: str) -> None:
    must, must_not = MEANT_FOR[manager]
    assert [p for p in must if not matches(manager, p)] == []
    assert [p for p in must_not if matches(manager, p)] == []


@pytest.mark.parametrize("manager", sorted(MEANT_FOR))
def test_every_pattern_matches_a_real_file_or_a_file_configure_renders(manager: str) -> None:
    """No dead pattern: each matches a file of the repository (rendered trees may not be
    committed yet, so a pattern for them counts when its template counterpart exists)."""
    for pattern in patterns(manager):
        hits = [f for f in FILES if pattern.search(f)]
        rendered = [f for f in FILES if f.startswith("templates/config/") and pattern.search(f[17:-3])]
        assert hits or rendered, f"{manager}: {pattern.pattern} matches no file"


def test_flux_and_kubernetes_managers_see_every_flux_object() -> None:
    objects = files_containing(
        r"^kind: (HelmRelease|OCIRepository|Kustomization|HelmRepository)$", (".yaml", ".j2")
    )
    assert objects, "no Flux objects found"
    assert [f for f in objects if not matches("flux", f)] == []


def test_helmfile_manager_sees_every_helmfile() -> None:
    helmfiles = [f for f in FILES if "/helmfile.d/" in f]
    assert helmfiles
    assert [f for f in helmfiles if not matches("helmfile", f)] == []


def test_every_inline_annotation_is_understood() -> None:
    (manager,) = CONFIG["customManagers"]
    file_patterns = [js_regex(p) for p in manager["managerFilePatterns"]]
    (match_string,) = [js_regex(s) for s in manager["matchStrings"]]
    annotated = files_containing(r"#\s?renovate:", (".yaml", ".yml", ".j2"))
    assert annotated, "no # renovate: annotations found"
    for path in annotated:
        assert any(p.search(path) for p in file_patterns), f"{path} is not covered by the regex manager"
        text = (ROOT / path).read_text()
        expected = len(re.findall(r"#\s?renovate:", text))
        found = list(match_string.finditer(text))
        assert len(found) == expected, f"{path}: {expected} annotations, {len(found)} understood"
        for m in found:
            assert m["datasource"] and m["depName"] and re.match(r"v?\d", m["currentValue"]), (
                path,
                m.group(0),
            )


def test_schedule_is_weekends_and_actions_automerge_after_three_days() -> None:
    assert CONFIG["schedule"] == ["every weekend"]
    rule = next(
        r
        for r in CONFIG["packageRules"]
        if r.get("matchManagers") == ["github-actions"] and r.get("automerge")
    )
    assert rule["minimumReleaseAge"] == "3 days"
