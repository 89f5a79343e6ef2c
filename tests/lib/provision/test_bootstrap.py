"""bootstrap.*'s pieces: the talsecret commands and what counts as already bootstrapped.
The whole flow against fakes: tests/test_bootstrap.py."""

from __future__ import annotations

from pathlib import Path

from tasks.lib.paths import repo_paths
from tasks.lib.provision import bootstrap
from tasks.lib.tools.runner import Command, Outcome


def test_talsecret_is_generated_then_encrypted_by_its_sops_rule(tmp_path: Path) -> None:
    generate, encrypt = bootstrap.talsecret_argvs(repo_paths(tmp_path))
    assert generate == ["talhelper", "gensecret"]
    assert encrypt[:2] == ["sops", "--encrypt"]
    assert encrypt[encrypt.index("--filename-override") + 1] == "talos/talsecret.sops.yaml"


def test_already_bootstrapped_is_read_from_either_stream() -> None:
    def outcome(stdout: str = "", stderr: str = "") -> Outcome:
        return Outcome(Command(("talosctl", "bootstrap")), 1, stdout, stderr)

    assert bootstrap.already_bootstrapped(outcome(stderr="rpc error: code = AlreadyExists desc = etcd"))
    assert bootstrap.already_bootstrapped(outcome(stdout="etcd data directory is not empty"))
    assert not bootstrap.already_bootstrapped(outcome(stderr="connection refused"))
