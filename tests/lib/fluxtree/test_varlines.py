"""Where a ${VARIABLE} of a built object is written: the object's document, its generator's
files, the Flux Kustomization, the other files the build loaded."""

from __future__ import annotations

from pathlib import Path

from tasks.lib.fluxtree.varlines import VariableFinder


def test_the_line_inside_the_objects_own_document_first(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("a: ${NAME}\n---\nb: $${NAME}\nc: ${NAME:=x}\nd: ${NAMES}\n")
    finder = VariableFinder(tmp_path)
    assert finder.locate("NAME", "cm.yaml", {}, 3, []) == ("cm.yaml", 4)
    assert finder.locate("NAME", "cm.yaml", {}, None, []) == ("cm.yaml", 1)
    assert finder.line_in("cm.yaml", "NAMES") == 5


def test_a_generated_object_is_found_in_its_generators_file(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "kustomization.yaml").write_text(
        "configMapGenerator:\n  - name: settings\n    files:\n      - settings.ini\n"
    )
    (tmp_path / "app" / "settings.ini").write_text("[x]\nhost = ${HOST}\n")
    body = {"metadata": {"name": "settings-5f2k9"}}
    finder = VariableFinder(tmp_path)
    assert finder.locate("HOST", "app/kustomization.yaml", body, None, []) == ("app/settings.ini", 2)


def test_other_files_last_then_the_object_itself(tmp_path: Path) -> None:
    (tmp_path / "ks.yaml").write_text("patch: |\n  value: ${PORT}\n")
    finder = VariableFinder(tmp_path)
    assert finder.locate("PORT", "absent.yaml", {}, 7, ["ks.yaml"]) == ("ks.yaml", 2)
    assert finder.locate("OTHER", "absent.yaml", {}, 7, ["ks.yaml"]) == ("absent.yaml", 7)
