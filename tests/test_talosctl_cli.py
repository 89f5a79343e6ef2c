"""The talosctl command-line table the fakes are checked against (tests/talosctl_cli.py) is
talosctl's own: compared with the cobra flag registrations in the Talos source at the rendered
version (marked ``tools``: it needs Go to fetch the module). And the check itself can fail."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.lib.tools import coherence
from tests import talosctl_cli
from tests.conftest import ROOT, SESSION_ENV
from tests.test_bootstrap import APPLY_LINES, BOOTSTRAP_LINE


@pytest.mark.parametrize("line", [*APPLY_LINES, BOOTSTRAP_LINE])
def test_the_bootstrap_fakes_print_commands_talosctl_accepts(line: str) -> None:
    assert talosctl_cli.argv_problem(line.split()[1:]) is None


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (
            ["apply-config", "--nodes", "10.0.0.1", "--mode=interactive", "--file=x"],
            None,
        ),  # a value, not a flag
        (["apply-config", "--nodes", "10.0.0.1", "--preserve"], "unknown flag --preserve"),
        (["get", "links", "--insecure", "-n", "10.0.0.1", "-o", "json"], None),
        (["get", "links", "--output-format", "json"], "unknown flag --output-format"),
        (["etcd", "stats", "--nodes", "10.0.0.1"], "no such subcommand"),
        (["--nodes", "10.0.0.1", "version"], None),
        (["upgrade", "--image=x", "--wait=false", "--timeout=10m"], None),
        (["reset", "--graceful=false", "--system-labels-to-wipe", "STATE", "-x"], "unknown flag -x"),
    ],
)
def test_the_check_tells_a_wrong_argument(argv: list[str], problem: str | None) -> None:
    found = talosctl_cli.argv_problem(argv)
    assert found is None if problem is None else (found is not None and problem in found)


# against the source ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def talosctl_source() -> Path:
    """cmd/talosctl/cmd/talos of the Talos module at talenv's talosVersion, from Go's module
    cache (downloaded through the module proxy when missing)."""
    talos = coherence.talenv_version(ROOT, "talosVersion")
    assert talos is not None
    go = shutil.which("go", path=SESSION_ENV.get("PATH"))
    if go is None:
        if os.environ.get("CI"):
            pytest.fail("go is missing in CI: talosctl's source cannot be fetched")
        pytest.skip("go is not installed: talosctl's source cannot be fetched")
    result = subprocess.run(
        [go, "mod", "download", "-json", f"github.com/siderolabs/talos@v{talos[1]}"],
        env=SESSION_ENV,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT / "tests" / "talosvalidate",
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(json.loads(result.stdout)["Dir"]) / "cmd" / "talosctl" / "cmd" / "talos"


def source_flags(base: Path, files: tuple[str, ...]) -> dict[str, tuple[str, bool]]:
    found: dict[str, tuple[str, bool]] = {}
    for name in files:
        found |= talosctl_cli.flags_in_source(base / name)
    return found


@pytest.mark.tools
def test_the_table_is_talosctls_source(talosctl_source: Path) -> None:
    """Every command's flags (long name, shorthand, boolean or not) are exactly what its
    source files register, and each command's ``Use:`` is in its file."""
    differing = []
    for path, (files, flags, _) in talosctl_cli.COMMANDS.items():
        source = source_flags(talosctl_source, files)
        table = {name: (short, name in talosctl_cli.BOOLEANS) for name, short in flags.items()}
        if source != table:
            differing.append((path, table, source))
        text = (talosctl_source / files[0]).read_text()
        assert re.search(rf'Use:\s+"{re.escape(path[-1])}[\s"]', text), path
    for name, flags, file in (
        ("root", talosctl_cli.GLOBAL, "root.go"),
        ("track", talosctl_cli.TRACK, "track.go"),
    ):
        source = talosctl_cli.flags_in_source(talosctl_source / file)
        table = {long: (short, long in talosctl_cli.BOOLEANS) for long, short in flags.items()}
        if source != table:
            differing.append((name, table, source))
    assert differing == []


@pytest.mark.tools
def test_the_cluster_commands_flags_are_in_talosctls_source(talosctl_source: Path) -> None:
    """`talosctl cluster create qemu` and `cluster destroy` register their flags through
    helpers and name constants: each flag the table lists is a string in its files."""
    base = talosctl_source.parent / "mgmt" / "cluster"
    cluster = (base / "cluster.go").read_text()
    for name in talosctl_cli.CLUSTER:
        assert f'"{name}"' in cluster, name
    for path, (files, flags) in talosctl_cli.MGMT.items():
        text = "".join((base / name).read_text() for name in files)
        assert re.search(rf'Use:\s+(providers\.QemuProviderName|"{re.escape(path[-1])}")', text), path
        missing = [name for name in flags if f'"{name}"' not in text]
        assert missing == [], (path, missing)
        for name, short in flags.items():
            if short:
                assert f'"{name}", "{short}"' in text, (path, name, short)
