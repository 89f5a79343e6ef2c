"""Flux's source ignore rules (``.sourceignore``, ``spec.ignore``, the defaults), as
source-controller applies them (cases from fluxcd/pkg's sourceignore and gitignore tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.lib.fluxtree.ignore import Pattern, SourceIgnore


@pytest.mark.parametrize(
    "pattern, path, is_dir, verdict",
    [
        ("vendor/", "vendor", True, True),
        ("vendor/", "vendor", False, None),  # a file named vendor
        ("vendor/", "a/vendor/b.go", False, True),
        ("*.yaml", "a/b/c.yaml", False, True),
        ("/*", "anything/below.yaml", False, True),
        ("!/kubernetes", "kubernetes/apps/x.yaml", False, False),
        ("/kubernetes/**/secrets/", "kubernetes/clusters/main/secrets/a.yaml", False, True),
        ("/kubernetes/**/secrets/", "kubernetes/secrets/a.yaml", False, True),
        ("/kubernetes/**/secrets/", "other/secrets/a.yaml", False, None),
        ("**/.sops.yaml", "a/b/.sops.yaml", False, True),
        ("a/b", "a/b/c", False, True),
        ("a/b", "x/a/b", False, None),
        ("[abc].txt", "b.txt", False, True),
        ("[!abc].txt", "d.txt", False, None),  # Go negates with ^ only: ! is one of the set
        ("[!abc].txt", "!.txt", False, True),
        ("[^abc].txt", "d.txt", False, True),
        ("\\*.txt", "*.txt", False, True),
        ("[", "[", False, None),  # a malformed pattern matches nothing
    ],
)
def test_pattern(pattern: str, path: str, is_dir: bool, verdict: bool | None) -> None:
    assert Pattern.parse(pattern).match(tuple(path.split("/")), is_dir) is verdict


def test_defaults_apply_only_without_rules_of_the_user(tmp_path: Path) -> None:
    ignore = SourceIgnore(tmp_path)
    assert ignore.ignored(".github/workflows/x.yaml")
    assert ignore.ignored("apps/.sops.yaml")
    assert ignore.ignored(".git/config", False)
    assert not ignore.ignored("apps/x.yaml")
    (tmp_path / ".sourceignore").write_text("# only this\n/drafts/\n")
    ignore = SourceIgnore(tmp_path)
    assert ignore.ignored("drafts/a.yaml")
    assert not ignore.ignored(".github/workflows/x.yaml")  # the defaults are off now
    assert ignore.ignored(".git/config")  # never in an artifact


def test_nested_sourceignore_applies_below_its_folder_and_spec_ignore_last(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps/.sourceignore").write_text("*.local.yaml\n")
    ignore = SourceIgnore(tmp_path, spec_ignore="!/apps/keep.local.yaml\n")
    assert ignore.ignored("apps/x.local.yaml")
    assert not ignore.ignored("x.local.yaml")  # above the file's folder
    assert not ignore.ignored("apps/keep.local.yaml")  # re-included by spec.ignore


@given(
    st.lists(st.text(alphabet="ab*?[]!/\\^.-", max_size=12), max_size=5),
    st.text(alphabet="ab./-", min_size=1, max_size=20),
    st.booleans(),
)
def test_never_raises(lines: list[str], path: str, is_dir: bool) -> None:
    patterns = [Pattern.parse(line) for line in lines if line]
    for pattern in patterns:
        assert pattern.match(tuple(p for p in path.split("/") if p), is_dir) in (True, False, None)
