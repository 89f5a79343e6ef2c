"""tasks/lib/boundary.py: recorded names, symlinks that leave the repository, option-shaped
arguments."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.lib import boundary
from tasks.lib.config import manifest as mf
from tasks.lib.errors import UserError

# --------------------------------------------------------------------------- recorded names


@pytest.mark.parametrize(
    "name",
    ["kubernetes/apps/a.yaml", "talos/talconfig.yaml", "bootstrap/x/y.sops.yaml", ".sops.yaml"],
)
def test_rendered_names_that_are_accepted(name: str) -> None:
    assert boundary.rendered_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("/tmp/x/abs.txt", "absolute"),
        ("../victim/rel.txt", ".."),
        ("kubernetes/../../victim", ".."),
        ("kubernetes/./a.yaml", "normalised"),
        ("kubernetes//a.yaml", "normalised"),
        ("kubernetes/a.yaml/", "normalised"),
        ("~/x", "absolute"),
        ("kubernetes\\..\\x", "backslash"),
        ("kubernetes/a\0b", "control"),
        ("kubernetes", "not under"),
        ("README.md", "not under"),
        ("tasks/lib/files.py", "not under"),
        ("cluster.sops.yaml", "not under"),
        ("", "not a path"),
        (3, "not a path"),
    ],
)
def test_rendered_names_that_are_refused(name: object, why: str) -> None:
    problem = boundary.rendered_name_problem(name)
    assert problem is not None and why in problem


@given(st.text(alphabet="ab./\\~\0-_ kt", max_size=30))
def test_an_accepted_name_stays_inside_the_root_whatever_it_is(name: str) -> None:
    if boundary.rendered_name_problem(name) is not None:
        return
    root = PurePosixPath("/repo")
    joined = PurePosixPath(os.path.normpath(root / name))
    assert joined != root and root in joined.parents
    assert joined.relative_to(root).parts[0] in (*boundary.RENDERED_DIRS, *boundary.RENDERED_FILES)


def test_a_manifest_with_a_name_outside_stops_with_one_line_per_entry(tmp_path: Path) -> None:
    path = tmp_path / ".configure-manifest.json"
    good = mf.Manifest({"kubernetes/a.yaml": mf.Entry("0" * 64)}, "x")
    path.write_text(good.dumps())
    assert mf.Manifest.load(path).files == good.files
    bad = good.dumps().replace('"kubernetes/a.yaml"', '"/tmp/x/abs.txt": {"sha256": "1"}, "../v/rel.txt"')
    path.write_text(bad)
    with pytest.raises(UserError) as error:
        mf.Manifest.load(path)
    first, second = error.value.lines
    assert first.startswith(".configure-manifest.json: files: '/tmp/x/abs.txt': an absolute path — ")
    assert second.startswith(".configure-manifest.json: files: '../v/rel.txt': leads out of its folder")
    assert first.endswith(
        "nothing was changed (restore the manifest: `git checkout -- .configure-manifest.json`)"
    )


def test_the_inputs_digest_does_not_depend_on_where_the_checkout_lives(tmp_path: Path) -> None:
    digests = []
    for place in ("one", "elsewhere/two"):
        root = tmp_path / place
        (root / "templates").mkdir(parents=True)
        (root / "cluster.yaml").write_text("a: 1\n")
        (root / "templates" / "x.j2").write_text("{{ a }}\n")
        names = ["cluster.yaml", "templates/x.j2", "missing.yaml"]
        digests.append(mf.inputs_digest(b"key", {name: root / name for name in names}, ["value"]))
    assert digests[0] == digests[1]


# --------------------------------------------------------------------------- symlinks


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    (root / "kubernetes" / "apps").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("root:x:0:0\n")
    (root / "cluster.yaml").write_text("a: 1\n")
    return root, outside


def test_links_inside_the_repository_are_fine(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    (root / "link.yaml").symlink_to("cluster.yaml")
    (root / "kubernetes" / "up").symlink_to("..")
    paths = [root / "link.yaml", root / "kubernetes" / "up" / "cluster.yaml", root / "not-yet.yaml"]
    assert boundary.outside_problems(root, paths) == []
    assert boundary.inside(root, Path("link.yaml")) == root / "link.yaml"


def test_a_link_out_is_refused_naming_the_link_once(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    (root / "cluster.yaml").unlink()
    (root / "cluster.yaml").symlink_to(outside / "secret")
    (root / "kubernetes" / "apps" / "default").symlink_to(outside)
    (root / "chain.yaml").symlink_to("cluster.yaml")
    paths = [
        root / "cluster.yaml",
        root / "chain.yaml",
        root / "kubernetes" / "apps" / "default" / "a.yaml",
        root / "kubernetes" / "apps" / "default" / "b" / "c.yaml",
    ]
    refused = "outside the repository — refused (replace the link)"
    assert boundary.outside_problems(root, paths) == [
        f"cluster.yaml: a symlink to {outside / 'secret'}, {refused}",
        f"chain.yaml: a symlink to {outside / 'secret'}, {refused}",
        f"kubernetes/apps/default: a symlink to {outside}, {refused}",
    ]
    with pytest.raises(boundary.OutsideRepository):
        boundary.inside(root, Path("cluster.yaml"))
    assert boundary.outside_problems(
        root, [root / "kubernetes/apps/default/a.yaml", root / "kubernetes"]
    ) == [f"kubernetes/apps/default: a symlink to {outside}, {refused}"]


def test_a_symlink_loop_is_one_line(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    (root / "cluster.sops.yaml").symlink_to("cluster.sops.yaml")
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    problems = boundary.outside_problems(root, [root / "cluster.sops.yaml", root / "a" / "x.yaml"])
    assert problems == [
        "cluster.sops.yaml: a symlink loop — replace it with the file or folder itself",
        "a: a symlink loop — replace it with the file or folder itself",
    ]


def test_a_path_given_outside_the_root_is_refused(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    lines = boundary.outside_problems(root, [outside / "secret", root / ".." / "outside" / "secret"])
    assert len(lines) == 2
    assert all(line.endswith(f"{outside / 'secret'} is outside the repository — refused") for line in lines)


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("value", ["-x", "--output=/tmp/x", "-"])
def test_option_shaped_values_are_refused(value: str) -> None:
    with pytest.raises(UserError, match="starts with '-'"):
        boundary.not_an_option(value, "--base")


def test_path_arguments_never_start_with_a_dash() -> None:
    assert boundary.path_argument("-x.sops.yaml") == "./-x.sops.yaml"
    assert boundary.path_argument("kubernetes/a.sops.yaml") == "kubernetes/a.sops.yaml"


def test_git_commit_resolves_refs_and_refuses_everything_else(tmp_path: Path) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout
    assert boundary.git_commit(tmp_path, "main") == sha.strip()
    assert boundary.git_commit(tmp_path, sha.strip()[:10]) == sha.strip()
    for ref in ("--output=out", "-p", "nope", "main\nx", "", "main^{tree}"):
        with pytest.raises(UserError) as error:
            boundary.git_commit(tmp_path, ref)
        (line,) = error.value.lines
        assert line.startswith("--base ")
    assert not (tmp_path / "out").exists()
