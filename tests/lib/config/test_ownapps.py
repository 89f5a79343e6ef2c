"""The user's own apps listed in the generated namespace kustomizations, on the text."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tasks.lib.config import ownapps

GENERATED = (
    "---\n# keep me\nnamespace: web\n"
    "resources:\n  - ./namespace.yaml\n  - ./echo/ks.yaml\n"
    "components:\n  - ../c\n"
)
FOLDER_NAMES = st.from_regex(ownapps.APP_FOLDER, fullmatch=True).filter(lambda name: "\n" not in name)


def app(root: Path, namespace: str, name: str) -> None:
    (root / ownapps.APPS / namespace / name).mkdir(parents=True)
    (root / ownapps.APPS / namespace / name / "ks.yaml").write_text("kind: Kustomization\n")


def test_namespace_of() -> None:
    assert ownapps.namespace_of("kubernetes/apps/web/kustomization.yaml") == "web"
    assert ownapps.namespace_of("kubernetes/apps/web/echo/kustomization.yaml") is None
    assert ownapps.namespace_of("kubernetes/flux/kustomization.yaml") is None


def test_own_apps_are_folders_with_a_ks_yaml_configure_did_not_generate(tmp_path: Path) -> None:
    for name in ("echo", "blog", ".hidden", "wiki"):
        app(tmp_path, "web", name)
    (tmp_path / ownapps.APPS / "web" / "notes").mkdir()  # no ks.yaml
    (tmp_path / ownapps.APPS / "web" / "link").symlink_to(tmp_path / ownapps.APPS / "web" / "blog")
    generated = {ownapps.app_file("web", "echo")}
    assert ownapps.own_apps(tmp_path, "web", generated) == (["blog", "wiki"], [".hidden"])
    assert ownapps.apps_on_disk(tmp_path, generated) == ["web/blog", "web/wiki", "web/.hidden"]
    assert ownapps.own_apps(tmp_path, "absent", generated) == ([], [])


def test_add_own_appends_after_the_generated_entries_and_keeps_the_rest() -> None:
    text = ownapps.add_own(GENERATED, ["blog", "echo"])
    assert text == GENERATED.replace("  - ./echo/ks.yaml\n", "  - ./echo/ks.yaml\n  - ./blog/ks.yaml\n")
    assert ownapps.add_own(text, ["blog"]) == text
    assert ownapps.listed(text) == {"echo", "blog"}
    assert ownapps.add_own("namespace: x", ["a"]) == "namespace: x\nresources:\n  - ./a/ks.yaml\n"


def test_strip_own_removes_only_entries_of_apps_not_generated() -> None:
    text = ownapps.add_own(GENERATED, ["blog"]).replace("./blog/ks.yaml", "blog/ks.yaml  # mine")
    assert ownapps.strip_own(text, ["echo"]) == GENERATED
    assert ownapps.strip_own("no: resources\n", []) == "no: resources\n"


@given(
    st.lists(st.from_regex(ownapps.APP_FOLDER, fullmatch=True).filter(lambda n: "\n" not in n), max_size=5)
)
def test_adding_then_stripping_gives_the_generated_text_back(names: list[str]) -> None:
    names = [name for name in names if name != "echo"]
    added = ownapps.add_own(GENERATED, names)
    assert ownapps.listed(added) == {"echo", *names}
    assert ownapps.strip_own(added, ["echo"]) == GENERATED
