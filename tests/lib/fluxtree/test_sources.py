"""Which Flux sources are this repository: git URLs of one repository in every spelling."""

from __future__ import annotations

import pytest

from tasks.lib.fluxtree.sources import normalize_url, same_repository


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/Example/Home-Ops.git",
        "ssh://git@github.com/example/home-ops",
        "git@github.com:example/home-ops.git",
        "https://github.com/example/home-ops/",
    ],
)
def test_git_urls_of_one_repository_match(url: str) -> None:
    assert same_repository(url, {normalize_url("https://github.com/example/home-ops")})
    assert not same_repository(url, {"github.com/example/other"})
