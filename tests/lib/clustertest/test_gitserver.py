"""The cluster test's git server without a socket: the CGI variables git http-backend gets,
which paths reach it, its output read back. Served for real: tests/test_cluster_gitserver.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.lib.clustertest import gitserver
from tasks.lib.clustertest.gitserver import BadRequest


def test_cgi_env_enables_pushes_and_passes_only_gits_headers(tmp_path: Path) -> None:
    headers = {
        "Content-Type": "application/x-git-upload-pack-request",
        "Git-Protocol": "version=2",
        "Cookie": "x",
    }
    env = gitserver.cgi_env(
        tmp_path, "POST", "/home-ops.git/git-upload-pack", "", headers, b"abc", "10.5.0.2"
    )
    assert env["GIT_PROJECT_ROOT"] == str(tmp_path)
    assert (env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_VALUE_0"]) == ("http.receivepack", "true")
    assert (env["CONTENT_LENGTH"], env["HTTP_GIT_PROTOCOL"]) == ("3", "version=2")
    assert "x" not in env.values()


def test_only_an_existing_repository_is_served(tmp_path: Path) -> None:
    (tmp_path / "home-ops.git").mkdir()
    assert gitserver.git_request(tmp_path, "/home-ops.git/info/refs") == "home-ops.git"
    for path in ("/other.git/info/refs", "/home-ops.git/../x.git/info/refs", "/etc/passwd"):
        with pytest.raises(BadRequest) as refused:
            gitserver.git_request(tmp_path, path)
        assert refused.value.status == 404


def test_cgi_output_with_lf_only_and_a_status_without_reason() -> None:
    found = gitserver.parse_cgi(b"Status: 500\nX: y\n\nbody")
    assert (found.status, found.reason, found.headers, found.body) == (500, "OK", (("X", "y"),), b"body")
