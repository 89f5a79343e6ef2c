"""tasks/lib/config/configure.py: pieces of the pipeline that need no render (the early
decryption, sops failures and commands, YAML equality, what the staged tree holds, the summary
line). The pipeline itself is tests/test_pipeline.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.lib.config import configure
from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths
from tasks.lib.tools.runner import Command, Outcome, observe

ENCRYPTED = "cloudflare_token: ENC[AES256_GCM,data:x,type:str]\nsops:\n  version: 3.9.0\n"


def answering(seen: list[tuple[str, ...]], outcome: tuple[int, str, str]) -> Callable[[Command], Outcome]:
    def answer(command: Command) -> Outcome:
        seen.append(command.argv)
        return Outcome(command, *outcome)

    return answer


def test_sops_decrypts_the_secrets_before_they_are_asked_for(tmp_path: Path) -> None:
    paths = repo_paths(tmp_path)
    paths.secrets_config.write_text(ENCRYPTED)
    seen: list[tuple[str, ...]] = []
    answer = answering(seen, (0, "cloudflare_token: t\n", ""))
    with observe(answer), configure.decrypting_early(paths) as decrypt:
        assert len(seen) == 1 and str(paths.secrets_config) in seen[0]  # already started
        assert decrypt(paths.secrets_config) == "cloudflare_token: t\n"
    assert len(seen) == 1  # once, not again when asked


def test_an_early_decryption_that_fails_is_the_usual_one_line(tmp_path: Path) -> None:
    paths = repo_paths(tmp_path)
    paths.secrets_config.write_text(ENCRYPTED)
    failed = (128, "", "Error getting data key: 0 successful groups required, got 0")
    answer = answering([], failed)
    with observe(answer), configure.decrypting_early(paths) as decrypt, pytest.raises(UserError) as error:
        decrypt(paths.secrets_config)
    assert error.value.lines == [
        "cluster.sops.yaml: sops could not decrypt it: no key in the age key file can decrypt it "
        "(wrong or missing age key; see `inv init`)"
    ]


@pytest.mark.parametrize("kind", ["fifo", "missing", "too big"])
def test_sops_is_not_started_early_on_anything_but_a_small_regular_file(tmp_path: Path, kind: str) -> None:
    """A pipe would block sops, a device could feed it without end: such a file is left to
    the usual checks, which say what is wrong in their usual order."""
    paths = repo_paths(tmp_path)
    if kind == "fifo":
        os.mkfifo(paths.secrets_config)
    elif kind == "too big":
        paths.secrets_config.write_bytes(b"#" * (1 << 20))
    seen: list[tuple[str, ...]] = []
    with observe(answering(seen, (0, "", ""))), configure.decrypting_early(paths):
        pass
    assert seen == []


def outcome(returncode: int, stdout: str = "", stderr: str = "") -> Outcome:
    return Outcome(Command(("sops",)), returncode, stdout, stderr)


def test_sops_failure_names_the_file_and_the_missing_key() -> None:
    assert configure.sops_failure("cluster.sops.yaml", "decrypt", outcome(1, stderr="a\nboom")) == (
        "cluster.sops.yaml: sops could not decrypt it: boom"
    )
    no_key = outcome(128, stderr="Error getting data key: 0 successful groups required, got 0")
    assert "wrong or missing age key" in configure.sops_failure("x", "decrypt", no_key)


def test_same_yaml_compares_data_not_text() -> None:
    assert configure.same_yaml("a: 1\nb: [x]\n", "{b: [x], a: 1}")
    assert not configure.same_yaml("a: 1\n", "a: '1'\n")
    assert not configure.same_yaml("a: [", "a: [ ")  # unparsable: compared as text
    assert configure.same_yaml("a: [", "a: [")


def test_one_sops_command_per_secret_with_its_plaintext_on_stdin(tmp_path: Path) -> None:
    config = tmp_path / ".sops.yaml"
    commands = configure.encrypt_commands(
        config, {"a.sops.yaml": b"x: 1\n", "b.sops.yaml": b"y: 2\n"}, ["b.sops.yaml"]
    )
    (command,) = commands
    assert command.stdin == b"y: 2\n"
    assert command.env == {"SOPS_CONFIG": str(config)} and command.cwd == tmp_path
    assert command.argv[0] == "sops" and "b.sops.yaml" in command.argv


def test_kustomization_dirs_of_the_tree_or_of_the_generated_files(tmp_path: Path) -> None:
    for folder in ("kubernetes/apps/web", "kubernetes/components/sops", "talos"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "kubernetes/apps/web/kustomization.yaml").write_text("resources: []\n")
    (tmp_path / "kubernetes/components/sops/kustomization.yaml").write_text("kind: Component\n")
    assert configure.kustomization_dirs(tmp_path) == ["kubernetes/apps/web", "kubernetes/components/sops"]
    generated = ["kubernetes/apps/web/kustomization.yaml", "kubernetes/apps/web/app.yaml"]
    assert configure.kustomization_dirs(tmp_path, generated) == ["kubernetes/apps/web"]
    assert configure.is_component(tmp_path, "kubernetes/components/sops")
    assert not configure.is_component(tmp_path, "kubernetes/apps/web")
    assert not configure.is_component(tmp_path, "talos")


def test_outputs_outside_the_rendered_folders_are_reported() -> None:
    assert configure.stray_outputs(["kubernetes/apps/a.yaml", "talos/talconfig.yaml"]) == []
    (line,) = configure.stray_outputs(["kubernetes/a.yaml", "../escape.yaml"])
    assert line.startswith("the render produced '../escape.yaml'")


def test_describe() -> None:
    assert (
        configure.describe(configure.Summary(unchanged=7, up_to_date=True)) == "up to date: 7 files unchanged"
    )
    summary = configure.Summary(["a", "b"], 3, ["c"], ["s"], [])
    assert configure.describe(summary) == "2 written, 3 unchanged, 1 removed; secrets: 1 encrypted, 0 kept"
