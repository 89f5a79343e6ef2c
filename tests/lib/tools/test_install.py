"""doctor --install's pieces: Go's error in one line, the record of the proxy's refusals,
the go command lines. Against a fake go: tests/test_install.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.tools import install
from tasks.lib.tools.pins import BY_NAME


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (
            "go: github.com/a/b@v1.0.0: reading https://proxy.example/github.com/a/b/@v/v1.0.0.info: "
            "403 Forbidden\n\tserver response: This module version is not available.",
            "the Go module proxy refused github.com/a/b@v1.0.0 "
            "(403 Forbidden: This module version is not available.)",
        ),
        (
            "go: downloading x v1\ncmd/flux/x.go:27:12: pattern manifests/*.yaml: no matching files found",
            None,
        ),
        ("", "go failed without a message"),
    ],
)
def test_go_reason_is_one_line(output: str, reason: str | None) -> None:
    got = install.go_reason(output)
    assert "\n" not in got
    assert got == (reason or "cmd/flux/x.go:27:12: pattern manifests/*.yaml: no matching files found")


def test_a_refusal_is_remembered_for_its_pin_while_fresh(tmp_path: Path) -> None:
    assert install.read_record(tmp_path) == {}
    install.write_record(
        tmp_path, {"talosctl": {"pin": "1.13.0", "state": "refused", "detail": "403", "at": 1000.0}}
    )
    assert install.recorded_refusal(tmp_path, "talosctl", "1.13.0", now=1001.0) == "403"
    assert install.recorded_refusal(tmp_path, "talosctl", "1.13.1", now=1001.0) is None
    assert (
        install.recorded_refusal(tmp_path, "talosctl", "1.13.0", now=1000.0 + install.REFUSAL_TTL + 1) is None
    )
    (tmp_path / install.RECORD).write_text("[broken")
    assert install.read_record(tmp_path) == {}


def test_at_pin_and_the_go_command_lines(tmp_path: Path) -> None:
    assert install.at_pin("1.13.0", "1.13.0") and not install.at_pin(None, "1.13.0")
    go = BY_NAME["flux"].go
    assert go is not None
    argv = install.install_argv(go, "2.9.5")
    assert argv[:2] == ["go", "install"] and argv[-1].endswith("@v2.9.5")
    assert install.build_argv(go, "2.9.5", tmp_path / "flux")[:2] == ["go", "build"]
