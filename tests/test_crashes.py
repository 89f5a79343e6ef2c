"""The crashes a hostile review found, each now one clear line through ``inv`` (exit 1),
never a traceback: broken ``makejinja.toml``, unreadable operator files, undefined template
variables and failing template helpers (named by template file and line), an output file
in a missing folder, and a configure that another one is already running."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.lib import swap
from tests.conftest import EXAMPLE_OPERATOR, copy_repo, git
from tests.test_pipeline import TOKEN


def inv(repo: Path, *args: str, operator: Path = EXAMPLE_OPERATOR) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME_OPS_OPERATOR_DIR": str(operator)}
    env.pop("HOME_OPS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "tasks", *args], cwd=repo, capture_output=True, text=True, env=env
    )


def one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Exception in thread" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    return result.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


@pytest.mark.parametrize(
    "toml",
    [
        "[makejinja\ninputs = [",  # not TOML
        "[other]\nx = 1\n",  # no [makejinja] table
        "makejinja = 5\n",  # not a table
        '[makejinja]\ninputs = 5\nplugins = ["plugin:Plugin"]\n',  # wrong type
        '[makejinja]\ninputs = ["./templates/config"]\nimport_paths = ["./templates/scripts"]\n'
        'plugins = ["nosuchmodule:Plugin"]\n',  # a plugin that does not exist
        '[makejinja]\ninputs = ["./templates/config"]\nundefined = "nope"\n',  # unknown enum value
        '[makejinja]\ninputs = ["./templates/config"]\n[makejinja.delimiter]\nbogus = "x"\n',
    ],
)
def test_a_broken_makejinja_toml_is_one_line(repo: Path, toml: str) -> None:
    (repo / "makejinja.toml").write_text(toml)
    result = inv(repo, "configure", "--force")
    assert "makejinja.toml" in one_line_error(result) or "template error" in result.stderr


@pytest.mark.parametrize("name", ["age.key", "github-push-token.txt", "github-deploy.key"])
@pytest.mark.parametrize("kind", ["directory", "binary"])
def test_unreadable_operator_files_are_named(repo: Path, tmp_path: Path, name: str, kind: str) -> None:
    operator = tmp_path / "operator"
    import shutil

    shutil.copytree(EXAMPLE_OPERATOR, operator)
    (operator / name).unlink()
    if kind == "directory":
        (operator / name).mkdir()
    else:
        (operator / name).write_bytes(b"\xff\xfe\x80binary\x00")
    result = inv(repo, "configure", operator=operator)
    reason = "is a directory" if kind == "directory" else "not UTF-8 text"
    one_line_error(result, name, reason)


def test_an_undefined_template_variable_names_template_and_line(repo: Path) -> None:
    template = repo / "templates/config/kubernetes/apps/default/kustomization.yaml.j2"
    lines = template.read_text().splitlines(keepends=True)
    lines.insert(2, "# #{ no_such_variable }#\n")
    template.write_text("".join(lines))
    result = inv(repo, "configure")
    one_line_error(
        result,
        "templates/config/kubernetes/apps/default/kustomization.yaml.j2:3: template error",
        "no_such_variable",
    )


def test_a_failing_template_helper_names_template_and_line(repo: Path) -> None:
    template = repo / "templates/config/kubernetes/apps/default/kustomization.yaml.j2"
    template.write_text("#{ '10.0.0.0/30' | nthhost(99) }#\n" + template.read_text())
    result = inv(repo, "configure")
    one_line_error(result, "templates/config/kubernetes/apps/default/kustomization.yaml.j2:1: template error")


def test_a_secret_template_error_names_it_too(repo: Path) -> None:
    template = repo / "templates/config/bootstrap/github-deploy-key.sops.yaml.j2"
    template.write_text(template.read_text() + "#{ undefined_in_a_secret }#\n")
    result = inv(repo, "configure")
    one_line_error(
        result, "templates/config/bootstrap/github-deploy-key.sops.yaml.j2:", "undefined_in_a_secret"
    )


def test_dev_diff_output_into_a_missing_folder(repo: Path) -> None:
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    result = inv(repo, "dev.diff", "--base", "main", "--output-file", "no/such/folder/diff.md")
    one_line_error(result, "no/such/folder/diff.md", "does not exist")


def test_a_second_configure_stops_while_one_runs(repo: Path) -> None:
    git(repo, "init", "-q", "-b", "main")
    lock = swap.lock_path(repo)
    assert lock.parent.name == ".git"  # never part of the tree
    with lock.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.truncate(0)
        handle.write("4242 sops.rotate\n")
        handle.flush()
        result = inv(repo, "configure")
    one_line_error(result, "another task is writing this repository (inv sops.rotate, pid 4242)")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_sops_edit_removes_its_plaintext_copy_on_a_signal(repo: Path, tmp_path: Path, signum: int) -> None:
    """The editor's plaintext copy (the one file an editor needs) is gone after any signal."""
    marker = tmp_path / "editing"
    editor = tmp_path / "editor.sh"
    # The stand-in editor lets go of the output pipes: sops.edit does not wait for an editor
    # it leaves behind, and a sleeper holding them would keep communicate() below waiting.
    editor.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {marker}\nexec sleep 120 </dev/null >/dev/null 2>&1\n')
    editor.chmod(0o755)
    env = {**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR), "EDITOR": str(editor)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tasks", "sops.edit", "cluster.sops.yaml"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a terminal's Ctrl-C reaches the whole group: so does ours
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    plaintext = Path(marker.read_text())
    assert plaintext.is_file() and TOKEN in plaintext.read_text()  # the editor had its copy
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert not plaintext.exists() and not plaintext.parent.parent.exists()
    unchanged = copy_repo(tmp_path / "again") / "cluster.sops.yaml"
    assert (repo / "cluster.sops.yaml").read_bytes() == unchanged.read_bytes()
