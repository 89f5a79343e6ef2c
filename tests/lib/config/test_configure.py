"""tasks/lib/config/configure.py: pieces of the pipeline that need no render. The pipeline
itself is tests/test_pipeline.py."""

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
