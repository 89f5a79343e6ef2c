"""Repository addresses and a checkout's remotes (tasks/lib/gitremote.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.lib import gitremote
from tasks.lib.gitremote import GitUrl
from tests.conftest import git


@pytest.mark.parametrize(
    ("value", "private", "url"),
    [
        ("onedr0p/home-ops", False, "https://github.com/onedr0p/home-ops.git"),
        ("onedr0p/home-ops", True, "ssh://git@github.com/onedr0p/home-ops.git"),
        ("https://gitlab.com/group/sub/home-ops.git", False, "https://gitlab.com/group/sub/home-ops.git"),
        ("ssh://git@git.lan:2222/me/home-ops.git", True, "ssh://git@git.lan:2222/me/home-ops.git"),
        ("ssh://forgejo@10.0.0.5/me/home-ops", False, "ssh://forgejo@10.0.0.5/me/home-ops"),
        ("http://git.lan/me/home-ops.git", False, "http://git.lan/me/home-ops.git"),
    ],
)
def test_the_url_flux_clones(value: str, private: bool, url: str) -> None:
    assert gitremote.repository_problem(value) is None
    assert str(gitremote.parse_repository(value, private)) == url


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "git@github.com:onedr0p/cluster-template.git",
            "use ssh://git@github.com/onedr0p/cluster-template.git",
        ),
        ("https://user:token@github.com/a/b.git", "credentials"),
        ("ssh://github.com/a/b.git", "use ssh://git@"),
        ("ftp://host/a/b", "not ftp"),
        ("https://GitHub.com/a/b", "use https://github.com/a/b"),
        ("https://host:99999/a/b", "port"),
        ("https://host/a/../b", "repository path"),
        ("https://host/a/b?x=1", "repository path"),
        ("https://host/", "repository path"),
        ("https://host/a b", "space"),
        ("owner", "expected owner/repo"),
        (42, "owner/repo"),
    ],
)
def test_a_repository_flux_cannot_clone_is_one_line_with_the_fix(value: object, message: str) -> None:
    problem = gitremote.repository_problem(value)
    assert problem is not None and message in problem
    assert "\n" not in problem


def test_an_scp_like_fix_is_itself_accepted() -> None:
    problem = gitremote.repository_problem("git@git.lan:me/home-ops.git") or ""
    fixed = problem.rsplit("use ", 1)[1]
    assert gitremote.repository_problem(fixed) is None


def test_known_hosts_name_carries_a_port_off_22() -> None:
    assert gitremote.parse_url("ssh://git@git.lan/a/b").known_hosts_name == "git.lan"
    assert gitremote.parse_url("ssh://git@git.lan:22/a/b").known_hosts_name == "git.lan"
    assert gitremote.parse_url("ssh://git@git.lan:2222/a/b").known_hosts_name == "[git.lan]:2222"


segments = st.from_regex(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,10}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
urls = st.builds(
    GitUrl,
    scheme=st.sampled_from(["https", "http", "ssh"]),
    host=st.from_regex(r"[a-z0-9]{1,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    path=st.lists(segments, min_size=1, max_size=4).map("/".join),
    port=st.none() | st.integers(1, 65535),
)


@given(url=urls)
def test_a_url_parses_back_to_itself(url: GitUrl) -> None:
    if url.ssh:
        url = GitUrl(url.scheme, url.host, url.path, url.port, "git")
    assert gitremote.parse_url(str(url)) == url


@given(url=urls)
def test_every_form_git_accepts_names_the_same_repository(url: GitUrl) -> None:
    base = url.path.removesuffix(".git")
    forms = [
        f"git@{url.host}:{base}.git",
        f"ssh://git@{url.host}:2222/{base}",
        f"https://user:secret@{url.host}/{base}.git/",
        f"http://{url.host.upper()}/{base}",
    ]
    for form in forms:
        parsed = gitremote.parse_remote(form)
        assert parsed is not None and gitremote.same_repository(parsed, url), form


def test_local_remotes_name_no_repository() -> None:
    assert gitremote.parse_remote("/srv/git/home-ops.git") is None
    assert gitremote.parse_remote("file:///srv/git/home-ops.git") is None
    assert gitremote.parse_remote("../home-ops") is None


# --------------------------------------------------------------------------- a checkout's remotes


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A clone of a bare repository, with a second remote pointing at another host."""
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "a").write_text("a\n")
    git(work, "add", "a")
    git(work, "commit", "-q", "-m", "a")
    git(work, "remote", "add", "mirror", str(bare))
    git(work, "push", "-q", "mirror", "main")
    git(work, "remote", "add", "origin", "git@git.lan:me/home-ops.git")
    git(work, "remote", "add", "upstream", "https://github.com/onedr0p/cluster-template")
    return work


def test_the_remote_that_points_at_the_repository(checkout: Path) -> None:
    assert (
        gitremote.remote_for(checkout, gitremote.parse_url("ssh://git@git.lan:2222/me/home-ops")) == "origin"
    )
    github = gitremote.parse_repository("onedr0p/cluster-template", private=True)
    assert gitremote.remote_for(checkout, github) == "upstream"
    assert gitremote.remote_for(checkout, gitremote.parse_url("https://elsewhere/x/y")) is None


def test_unpushed_reads_the_remote_tracking_branch(checkout: Path) -> None:
    assert gitremote.unpushed(checkout, "mirror", "main") is None
    (checkout / "b").write_text("b\n")
    git(checkout, "add", "b")
    git(checkout, "commit", "-q", "-m", "b")
    assert "does not have your latest commit" in (gitremote.unpushed(checkout, "mirror", "main") or "")
    assert "git push -u origin main" in (gitremote.unpushed(checkout, "origin", "main") or "")
    git(checkout, "push", "-q", "mirror", "main")
    assert gitremote.unpushed(checkout, "mirror", "main") is None


# --------------------------------------------------------------------------- ssh host keys

ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def hashed_entry(name: str, salt: bytes = b"0123456789abcdefghij") -> str:
    import base64
    import hashlib
    import hmac

    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (f"git.lan ssh-ed25519 {ED25519}", None),
        (f"@cert-authority *.lan ssh-ed25519 {ED25519} a comment", None),
        (f"[git.lan]:2222,10.0.0.5 ssh-ed25519 {ED25519}", None),
        (f"git.lan ssh-rsa {ED25519}", "the key is an 'ssh-ed25519' key, but the line says ssh-rsa"),
        (f"git.lan ssh-dss {ED25519}", "is not a key type Flux accepts"),
        ("git.lan ssh-ed25519 not-base64!", "not base64 of an ssh public key"),
        (f"git.lan {ED25519}", "is not `HOST KEYTYPE KEY`"),
        (f"git lan/x ssh-ed25519 {ED25519}", "is not a key type"),
        (f"git/lan ssh-ed25519 {ED25519}", "is not a host name"),
    ],
)
def test_known_hosts_lines_are_checked_by_shape(line: str, problem: str | None) -> None:
    found = gitremote.known_hosts_line_problem(line)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_a_line_names_the_host_plainly_or_hashed() -> None:
    assert gitremote.names_host(f"git.lan,10.0.0.5 ssh-ed25519 {ED25519}", "git.lan")
    assert not gitremote.names_host(f"git.lan ssh-ed25519 {ED25519}", "[git.lan]:2222")
    assert gitremote.names_host(f"{hashed_entry('[git.lan]:2222')} ssh-ed25519 {ED25519}", "[git.lan]:2222")
    assert not gitremote.names_host(f"{hashed_entry('git.lan')} ssh-ed25519 {ED25519}", "other.lan")


def test_the_bundled_host_keys_are_well_formed_and_trusted_for_their_host_only() -> None:
    for host, lines in gitremote.BUNDLED_KNOWN_HOSTS.items():
        assert {line.split()[1] for line in lines} == {"ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"}
        for line in lines:
            assert gitremote.known_hosts_line_problem(line) is None, line
            assert gitremote.names_host(line, host)
    github = gitremote.parse_url("ssh://git@github.com/a/b.git")
    assert gitremote.known_hosts_problem(github, ()) is None
    other_port = gitremote.parse_url("ssh://git@github.com:443/a/b.git")  # not the bundled port
    assert "needs its host keys" in (gitremote.known_hosts_problem(other_port, ()) or "")
    https = gitremote.parse_url("https://git.lan/a/b.git")
    assert gitremote.known_hosts_problem(https, ()) is None  # no ssh, nothing to verify


def test_known_hosts_as_a_block_or_a_list() -> None:
    constraint = gitremote.KnownHosts()
    block = f"# from ssh-keyscan\ngit.lan ssh-ed25519 {ED25519}\n\n"
    assert constraint.check(block) is None
    assert constraint.convert(block) == (f"git.lan ssh-ed25519 {ED25519}",)
    assert constraint.check([f"git.lan ssh-ed25519 {ED25519}"]) is None
    assert constraint.check([]) is None
    assert "holds no known_hosts line" in (constraint.check("# only a comment\n") or "")
    assert "line 2:" in (constraint.check(f"git.lan ssh-ed25519 {ED25519}\ngit.lan bogus x") or "")
    assert constraint.check([1, 2]) == "must be known_hosts lines (text)"


@given(text=st.text(max_size=300))
def test_no_text_makes_the_checks_raise(text: str) -> None:
    gitremote.KnownHosts().check(text)
    gitremote.known_hosts_line_problem(text)
    gitremote.repository_problem(text)
    gitremote.parse_remote(text)
