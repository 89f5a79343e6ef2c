"""What a kustomization folder references: children, missing files, remote references,
and whether its build renames objects."""

from __future__ import annotations

from pathlib import Path

from tasks.lib.fluxtree import kustfiles


def read(directory: Path) -> kustfiles.KDir:
    return kustfiles.read_kdir(directory, kustfiles.SourceView.of(directory.parent))


def kustomization(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(text)
    return directory


def test_references_are_sorted_into_children_missing_and_remote(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "base.yaml").write_text("kind: ConfigMap\n")
    kdir = read(
        kustomization(
            tmp_path,
            "resources:\n  - ./app\n  - base.yaml\n  - gone.yaml\n  - https://example.com/x.yaml\n"
            "patches:\n  - path: patch.yaml\n"
            "configMapGenerator:\n  - name: c\n    files:\n      - key=settings.ini\n",
        )
    )
    assert kdir.children == [tmp_path / "app"]
    assert kdir.missing == [
        ("resources", "gone.yaml"),
        ("patches", "patch.yaml"),
        ("configMapGenerator", "settings.ini"),
    ]
    assert kdir.remote == ["https://example.com/x.yaml"]
    assert kdir.renames  # a generator with a hash suffix renames its ConfigMap


def test_renames_only_with_prefix_suffix_or_hashed_generators(tmp_path: Path) -> None:
    plain = read(
        kustomization(
            tmp_path / "a",
            "generatorOptions:\n  disableNameSuffixHash: true\nconfigMapGenerator:\n  - name: c\n",
        )
    )
    assert not plain.renames
    assert read(kustomization(tmp_path / "b", "namePrefix: x-\n")).renames


def test_a_broken_or_absent_kustomization(tmp_path: Path) -> None:
    broken = read(kustomization(tmp_path / "a", "resources: [\n"))
    assert broken.error is not None and broken.error[0] is not None
    assert read(kustomization(tmp_path / "b", "- a list\n")).error == (
        None,
        "a kustomization must be a mapping",
    )
    assert read(tmp_path).file is None


def test_without_remote_keeps_every_local_reference() -> None:
    data = {
        "resources": ["./a", "github.com/org/repo//x?ref=v1"],
        "configMapGenerator": [{"name": "c", "files": ["x=https://e.com/f", "local.txt"]}],
    }
    assert kustfiles.without_remote(data) == {
        "resources": ["./a"],
        "configMapGenerator": [{"name": "c", "files": ["local.txt"]}],
    }
    assert kustfiles.references(data) == [
        "./a",
        "github.com/org/repo//x?ref=v1",
        "https://e.com/f",
        "local.txt",
    ]
    assert kustfiles.is_remote("git@github.com:o/r") and not kustfiles.is_remote("../base")
