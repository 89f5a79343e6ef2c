"""configure's render cache (tasks/lib/config/cache.py): a rendered copy of the example is up
to date until any input of a render changes, and saying so loads no renderer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.lib import swap
from tasks.lib.config import cache
from tasks.lib.config import manifest as mf
from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths
from tasks.lib.secrets.keys import read_operator_files
from tests.conftest import rewrite_secrets


def unchanged(repo: Path, dry: bool = False) -> int | None:
    return cache.unchanged(repo_paths(repo), dry=dry, say=lambda line: None)


def tree(repo: Path) -> dict[str, bytes]:
    return {
        path.relative_to(repo).as_posix(): path.read_bytes()
        for path in repo.rglob("*")
        if path.is_file() and ".git" not in path.parts
    }


def test_an_untouched_tree_is_up_to_date_and_stays_as_it_is(example_repo: Path) -> None:
    before = tree(example_repo)
    assert unchanged(example_repo) == len(mf.Manifest.load(example_repo / ".configure-manifest.json").files)
    assert unchanged(example_repo, dry=True) is not None
    assert tree(example_repo) == before


def append(name: str, text: str = "# changed\n") -> Callable[[Path], None]:
    def change(repo: Path) -> None:
        with (repo / name).open("a") as file:
            file.write(text)

    return change


def first_rendered(repo: Path, suffix: str) -> Path:
    manifest = mf.Manifest.load(repo / ".configure-manifest.json")
    return repo / next(name for name in sorted(manifest.files) if name.endswith(suffix))


def edit_rendered(repo: Path) -> None:
    path = first_rendered(repo, ".yaml")
    path.write_text(path.read_text() + "# edited by hand\n")


def remove_rendered(repo: Path) -> None:
    first_rendered(repo, ".yaml").unlink()


def edit_template(repo: Path) -> None:
    template = next(path for path in sorted((repo / "templates").rglob("*.j2")))
    template.write_text(template.read_text() + "\n")


def add_template(repo: Path) -> None:
    (repo / "templates" / "config" / "kubernetes" / "new.yaml.j2").write_text("a: 1\n")


def change_secret(repo: Path) -> None:
    rewrite_secrets(repo, lambda text: text + "extra_value: changed\n")


def add_own_app(repo: Path) -> None:
    app = repo / "kubernetes" / "apps" / "default" / "mine"
    app.mkdir()
    (app / "ks.yaml").write_text("kind: Kustomization\n")


@pytest.mark.parametrize(
    "change",
    [
        append("cluster.yaml"),
        append("nodes.yaml"),
        append("makejinja.toml"),
        change_secret,
        edit_template,
        add_template,
        edit_rendered,
        remove_rendered,
        add_own_app,
        lambda repo: (repo / ".configure-manifest.json").unlink(),
    ],
    ids=[
        "cluster.yaml",
        "nodes.yaml",
        "makejinja.toml",
        "cluster.sops.yaml",
        "a template edited",
        "a template added",
        "a rendered file edited",
        "a rendered file missing",
        "an app of the user's own",
        "no manifest",
    ],
)
def test_any_change_to_an_input_means_a_render(example_repo: Path, change: Callable[[Path], None]) -> None:
    change(example_repo)
    assert unchanged(example_repo) is None


def test_a_change_to_the_render_code_means_a_render(
    example_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code is named by module; its bytes are read from wherever the module lives."""
    render = tmp_path / "render.py"
    shutil.copy(cache.module_file("tasks.lib.config.render"), render)
    real = cache.module_file
    monkeypatch.setattr(cache, "module_file", lambda name: render if name.endswith(".render") else real(name))
    assert unchanged(example_repo) is not None
    render.write_text(render.read_text() + "\n# changed\n")
    assert unchanged(example_repo) is None


def test_a_different_operator_key_means_a_render(
    example_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = tmp_path / "operator"
    shutil.copytree(os.environ["HOME_OPS_OPERATOR_DIR"], operator)
    (operator / "github-push-token.txt").write_text("another-token\n")
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(operator))
    assert unchanged(example_repo) is None


def test_the_digest_is_keyed_and_independent_of_where_the_checkout_lives(
    example_repo: Path, tmp_path: Path
) -> None:
    paths = repo_paths(example_repo)
    operator = read_operator_files(paths)
    manifest = mf.Manifest.load(paths.manifest)
    files, values = cache.render_inputs(paths, operator)
    assert set(cache.RENDER_CODE) <= set(files) and operator.push_token in values
    assert all(not name.startswith("/") for name in files)
    digest = cache.inputs_digest(paths, operator, manifest)
    assert digest == manifest.inputs
    moved = tmp_path / "elsewhere"
    shutil.copytree(example_repo, moved, symlinks=True)
    assert cache.inputs_digest(repo_paths(moved), operator, manifest) == digest
    assert mf.inputs_digest(b"another key", files, values) != digest


def test_problems_with_the_inputs_stop_it_with_the_pipelines_lines(
    example_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"age\.key not found"):
        unchanged(example_repo)
    monkeypatch.undo()
    (example_repo / "nodes.yaml").unlink()
    (example_repo / "nodes.yaml").symlink_to("/etc/hostname")
    with pytest.raises(UserError, match=r"nodes\.yaml"):
        unchanged(example_repo)


def test_another_writer_holding_the_lock_is_one_line(example_repo: Path) -> None:
    with swap.locked(example_repo, "sops.rotate"), pytest.raises(UserError, match=r"sops\.rotate"):
        unchanged(example_repo)


def test_an_unknown_render_module_is_a_bug_not_a_silent_miss() -> None:
    with pytest.raises(RuntimeError, match=r"tasks\.lib\.config\.no_such_module"):
        cache.module_file("tasks.lib.config.no_such_module")


def test_a_no_change_configure_loads_neither_renderer_nor_config_model(example_repo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tasks", "configure"],
        cwd=example_repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert cache.UP_TO_DATE in done.stdout
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "import time:" in line}
    heavy = {"makejinja", "jinja2", "ruamel.yaml", "tasks.lib.config.configure", "tasks.lib.config.schema"}
    assert "tasks.lib.config.cache" in loaded and not heavy & loaded
