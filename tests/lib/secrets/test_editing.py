"""sops.edit's editor session (tasks/lib/secrets/editing.py), with a stand-in sops that asks
to go back to the editor the way sops does, and with the real sops."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.lib.secrets import editing
from tests.conftest import EXAMPLE_OPERATOR, copy_repo

#: Asks for a key after every "edit", as sops does for a file that does not load, and
#: counts the edits in a file; forever, unless stopped.
STAND_IN = """\
import sys
count = 0
while True:
    count += 1
    open(sys.argv[1], "w").write(str(count))
    sys.stderr.write("Could not load tree. Press a key to return to the editor, or Ctrl+C to exit.\\n")
    sys.stderr.flush()
    sys.stdin.buffer.read(1)
"""


def test_without_a_terminal_the_editor_comes_back_twice_then_the_session_stops(tmp_path: Path) -> None:
    counter = tmp_path / "edits"
    started = time.monotonic()
    session = editing.edit(
        [sys.executable, "-c", STAND_IN, str(counter)], tmp_path, os.environ, terminal=False
    )
    assert time.monotonic() - started < 30
    assert counter.read_text() == str(editing.MAX_REEDITS + 1)
    assert session.stopped == f"the file still does not load after {editing.MAX_REEDITS} more edits"


def test_a_session_that_ends_by_itself_gives_its_exit_code(tmp_path: Path) -> None:
    session = editing.edit(
        [sys.executable, "-c", "raise SystemExit(200)"], tmp_path, os.environ, terminal=False
    )
    assert session == editing.Session(200)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


def sops_edit(repo: Path, editor: Path, **options: object) -> subprocess.Popen[str]:
    env = {**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR), "EDITOR": str(editor)}
    return subprocess.Popen(
        [sys.executable, "-m", "tasks", "sops.edit", "cluster.sops.yaml"],
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,  # type: ignore[call-overload]
    )


def test_real_sops_with_invalid_yaml_and_no_terminal_stops(repo: Path, tmp_path: Path) -> None:
    """`inv sops.edit` once looped forever here: sops read end-of-file as the key press."""
    editor = tmp_path / "editor.sh"
    edits = tmp_path / "edits"
    editor.write_text(f'#!/bin/sh\necho x >> {edits}\nprintf "a: [\\n" > "$1"\n')
    editor.chmod(0o755)
    before = (repo / "cluster.sops.yaml").read_bytes()
    process = sops_edit(repo, editor)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert err.splitlines()[-1] == (
        f"cluster.sops.yaml: the file still does not load after {editing.MAX_REEDITS} more edits; "
        "the file is unchanged"
    )
    assert len(edits.read_text().splitlines()) == editing.MAX_REEDITS + 1
    assert (repo / "cluster.sops.yaml").read_bytes() == before


def test_a_second_edit_leaves_the_first_ones_copy_alone(repo: Path, tmp_path: Path) -> None:
    """Each edit has its own scratch directory: the second one's clean-up of copies left by
    killed runs never takes the first one's, and the first edit is saved."""
    first_editor = tmp_path / "first.sh"
    copy = tmp_path / "first-copy"
    release = tmp_path / "release"
    first_editor.write_text(
        "#!/bin/sh\n"
        f'printf "%s" "$1" > {copy}\n'
        f"while [ ! -e {release} ]; do sleep 0.1; done\n"
        'printf "# first edit\\n" >> "$1"\n'
    )
    second_editor = tmp_path / "second.sh"
    second_editor.write_text("#!/bin/sh\nexit 0\n")
    for editor in (first_editor, second_editor):
        editor.chmod(0o755)
    first = sops_edit(repo, first_editor)
    deadline = time.monotonic() + 120
    while not copy.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    plaintext = Path(copy.read_text())
    second = sops_edit(repo, second_editor)
    second.communicate(timeout=120)
    assert plaintext.is_file(), "the second edit removed the first one's copy"
    release.touch()
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert not plaintext.exists()
