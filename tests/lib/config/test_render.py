"""makejinja's settings read from makejinja.toml (folders inside the repository only), the
active render context, and template errors as one line. Whole renders: tests/test_templates.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, StrictUndefined

from tasks.lib.config import render
from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths


def settings(tmp_path: Path, text: str) -> dict[str, Any]:
    (tmp_path / "makejinja.toml").write_text(text)
    return render.read_settings(repo_paths(tmp_path))


def test_settings_are_the_makejinja_table_or_one_line(tmp_path: Path) -> None:
    assert settings(tmp_path, '[makejinja]\ninputs = ["templates/config"]\n') == {
        "inputs": ["templates/config"]
    }
    for text, message in [
        ("[other]\n", "invalid makejinja settings: KeyError"),
        ("[makejinja\n", "invalid makejinja settings: TOMLDecodeError"),
        ("makejinja = 1\n", "[makejinja] must be a table"),
    ]:
        with pytest.raises(UserError, match=message.replace("[", r"\[")):
            settings(tmp_path, text)
    with pytest.raises(UserError, match=r"makejinja\.toml not found"):
        render.read_settings(repo_paths(tmp_path / "empty"))


def test_template_folders_must_be_inside_the_repository(tmp_path: Path) -> None:
    paths = repo_paths(tmp_path)
    assert render.folders_inside(paths, "inputs", ["templates/config"]) == (tmp_path / "templates/config",)
    with pytest.raises(UserError, match="inputs: expected a list of folders"):
        render.folders_inside(paths, "inputs", "templates")
    with pytest.raises(UserError, match=r"makejinja\.toml: inputs: "):
        render.folders_inside(paths, "inputs", ["../elsewhere"])


def test_a_template_error_is_one_line_with_the_template_and_line(tmp_path: Path) -> None:
    template = Environment(undefined=StrictUndefined).from_string("ok\n{{ missing.value }}\n")
    with pytest.raises(UserError) as error, render.template_errors(repo_paths(tmp_path)):
        template.render()
    assert error.value.lines == ["templates: template error: 'missing' is undefined"]
    with pytest.raises(UserError) as error, render.template_errors(repo_paths(tmp_path)):
        raise ValueError("bad\nvalue")
    assert error.value.lines == ["templates: template error: ValueError: bad value"]


def test_the_active_context_is_set_only_inside_the_block() -> None:
    context: Any = object()
    assert render.active_context() is None
    with render.activated(context):
        assert render.active_context() is context
    assert render.active_context() is None
