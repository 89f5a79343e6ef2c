"""Steps shared by talos.* and bootstrap.*: modes, node names in messages, the files every
talhelper run needs, and the confirmation question."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths
from tasks.lib.provision import facts, steps

NODES = [facts.TalosNode("k8s-0", ("10.0.0.10", "10.0.1.10"), True, None)]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_check_mode() -> None:
    assert steps.check_mode("auto") == "auto"
    with pytest.raises(UserError, match="--mode 'later' is not one of"):
        steps.check_mode("later")


def test_node_label_names_a_known_address() -> None:
    assert steps.node_label(NODES, "10.0.1.10") == "k8s-0 (10.0.1.10)"
    assert steps.node_label(NODES, "10.9.9.9") == "10.9.9.9"
    assert steps.node_label(NODES, None) == "the cluster"


def test_talhelper_needs_the_rendered_files_and_the_age_key(tmp_path: Path) -> None:
    paths = repo_paths(tmp_path)
    needed = [path for path, _fix in steps.talos_files(paths)]
    assert needed == [paths.talconfig, paths.talenv, paths.sops_config, paths.age_key]
    assert steps.known_nodes(paths) == []  # no talconfig.yaml: nothing to name


def test_confirm_wants_yes_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UserError, match="no terminal to ask on"):
        steps.confirm("Reset?", stdin=io.StringIO())
    monkeypatch.setattr("builtins.input", lambda prompt: " YES ")
    steps.confirm("Reset?", stdin=Terminal())
    assert "Reset?" in capsys.readouterr().out
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    with pytest.raises(UserError, match="cancelled: nothing was changed"):
        steps.confirm("Reset?", stdin=Terminal())
