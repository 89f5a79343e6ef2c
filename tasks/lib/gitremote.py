"""Git repository addresses: what ``repository_name`` may be, the URL Flux clones, and which
remote of a checkout points at that repository.

``repository_name`` is either GitHub's short form ``owner/repo`` or the clone URL of any git
host: ``https://host/path``, ``http://host/path`` (a LAN server) or ``ssh://user@host[:port]/path``.
Flux clones exactly that URL; an ``ssh://`` one with the deploy key. The scp-like form git
also understands (``git@host:owner/repo``) is refused with the URL form to use, because
Flux does not clone it.

A checkout's remotes may name the same repository differently (scp-like, ``.git`` or not,
https with credentials, another port): :func:`same_repository` compares host and path only,
so the push checks (``dev.start``, ``bootstrap.apps``) find the remote Flux pulls from
whatever form it was added in. They read the remote-tracking refs (the last fetch), never
the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tasks.lib.config.constraints import HOSTNAME, REPOSITORY, parse_address, shown

GITHUB = "github.com"
#: The ssh user GitHub, GitLab, Gitea and Forgejo expect.
SSH_USER = "git"
SCHEMES = ("https", "http", "ssh")
DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22}

SEGMENT = r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*"
PATH = re.compile(rf"{SEGMENT}(/{SEGMENT})*")
USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
URL = re.compile(
    r"(?P<scheme>[a-z]+)://(?:(?P<userinfo>[^@/]*)@)?(?P<host>[^/:@]*)(?::(?P<port>[^/]*))?"
    r"(?P<path>/.*)?"
)
SCP_LIKE = re.compile(r"(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:@]+):(?!//)(?P<path>.+)")


@dataclass(frozen=True)
class GitUrl:
    """A repository address in URL form."""

    scheme: str  # https, http or ssh
    host: str  # lowercase host name or IPv4 address
    path: str  # without the leading slash, e.g. owner/repo.git
    port: int | None = None
    user: str | None = None  # ssh only

    @property
    def ssh(self) -> bool:
        return self.scheme == "ssh"

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{user}{self.host}{port}/{self.path}"

    @property
    def known_hosts_name(self) -> str:
        """How an ssh ``known_hosts`` line names this host: ``host``, or ``[host]:port`` off
        the default port."""
        if self.port is None or self.port == DEFAULT_PORTS["ssh"]:
            return self.host
        return f"[{self.host}]:{self.port}"

    def identity(self) -> tuple[str, str]:
        """What makes two addresses the same repository: the host and the path without
        ``.git`` or slashes around it, case-folded (GitHub and GitLab ignore case)."""
        path = self.path.strip("/").removesuffix(".git").casefold()
        return self.host.casefold(), path


def is_short_form(value: str) -> bool:
    return bool(REPOSITORY.fullmatch(value))


def github_url(name: str, ssh: bool) -> GitUrl:
    """The clone URL of GitHub's ``owner/repo``: over ssh (the deploy key) or https."""
    if ssh:
        return GitUrl("ssh", GITHUB, f"{name}.git", user=SSH_USER)
    return GitUrl("https", GITHUB, f"{name}.git")


def repository_problem(value: object) -> str | None:
    """Why ``value`` is not a repository ``repository_name`` accepts, or None."""
    if not isinstance(value, str):
        return f"{shown(value)} must be owner/repo (GitHub) or a clone URL"
    if is_short_form(value):
        return None
    try:
        parse_url(value)
    except ValueError as error:
        return str(error)
    return None


def parse_repository(value: str, private: bool = False) -> GitUrl:
    """The URL Flux clones for a valid ``repository_name``: GitHub's ``owner/repo`` over ssh
    when ``private`` (else https), any URL as written. Raises ValueError when invalid."""
    if is_short_form(value):
        return github_url(value, private)
    return parse_url(value)


def parse_url(value: str) -> GitUrl:
    """A clone URL Flux accepts, or ValueError naming what is wrong (and the fix)."""
    example = "owner/repo (GitHub), https://host/owner/repo.git or ssh://git@host/owner/repo.git"
    if not value.isprintable() or any(c.isspace() for c in value):
        raise ValueError(f"{shown(value)} holds a space or control character — expected {example}")
    match = URL.fullmatch(value)
    if match is None:
        scp = SCP_LIKE.fullmatch(value)
        if scp and (HOSTNAME.fullmatch(scp["host"]) or parse_address(scp["host"])):
            user = scp["user"] or SSH_USER
            fixed = f"ssh://{user}@{scp['host']}/{scp['path'].lstrip('/')}"
            raise ValueError(
                f"{shown(value)} is git's scp-like form, which Flux does not clone — use {fixed}"
            )
        raise ValueError(f"{shown(value)} is not a repository — expected {example}")
    scheme = match["scheme"]
    if scheme not in SCHEMES:
        raise ValueError(f"{shown(value)}: Flux clones over https, http or ssh, not {scheme}")
    host = match["host"]
    if not (HOSTNAME.fullmatch(host) or parse_address(host)):
        hint = f" — use {value.replace(host, host.lower(), 1)}" if HOSTNAME.fullmatch(host.lower()) else ""
        raise ValueError(f"{shown(value)}: {shown(host)} is not a lowercase host name or IPv4 address{hint}")
    port = parse_port(value, match["port"])
    path = (match["path"] or "").removeprefix("/").removesuffix("/")
    if not path or not PATH.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        raise ValueError(
            f"{shown(value)}: the repository path must be letters, digits and ._~- between slashes "
            "(e.g. /owner/repo.git), without query or fragment"
        )
    return GitUrl(scheme, host, path, port, parse_user(value, scheme, match["userinfo"]))


def parse_port(value: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{shown(value)}: the port must be a number from 1 to 65535")
    return int(text)


def parse_user(value: str, scheme: str, userinfo: str | None) -> str | None:
    if scheme != "ssh":
        if userinfo is not None:
            raise ValueError(
                f"{scheme}:// URL with a user name or credentials — they do not belong in cluster.yaml; "
                "a private repository uses ssh:// and the deploy key"
            )
        return None
    if userinfo is None:
        raise ValueError(f"{shown(value)}: an ssh URL names its user — use ssh://{SSH_USER}@…")
    if not USER.fullmatch(userinfo):
        raise ValueError(f"{shown(value)}: {shown(userinfo)} is not an ssh user name such as {SSH_USER}")
    return userinfo


# --------------------------------------------------------------------------- a checkout's remotes


def parse_remote(text: str) -> GitUrl | None:
    """A git remote's URL, leniently: every form git accepts for a network remote (scp-like,
    credentials in an https URL, any user), or None for a local path or anything else."""
    text = text.strip()
    match = URL.fullmatch(text)
    if match is not None:
        host = match["host"].lower()
        path = (match["path"] or "").strip("/")
        if not host or not path or match["scheme"] not in (*SCHEMES, "git"):
            return None
        return GitUrl(match["scheme"], host, path)
    scp = SCP_LIKE.fullmatch(text)
    if scp is not None and "/" not in scp["host"]:
        return GitUrl("ssh", scp["host"].lower(), scp["path"].strip("/"), user=scp["user"])
    return None


def same_repository(a: GitUrl, b: GitUrl) -> bool:
    return a.identity() == b.identity()


def remotes(root: Path) -> dict[str, str]:
    """Every remote of the checkout at ``root`` with its fetch URL (empty when git fails)."""
    from tasks.lib.tools.runner import Command, run_one

    outcome = run_one(Command(("git", "config", "--null", "--get-regexp", r"^remote\..*\.url$"), cwd=root))
    found: dict[str, str] = {}
    if not outcome.ok:
        return found
    for entry in outcome.stdout.split("\0"):
        key, _, url = entry.partition("\n")
        if key.startswith("remote.") and key.endswith(".url"):
            found.setdefault(key[len("remote.") : -len(".url")], url)
    return found


def remote_for(root: Path, repository: GitUrl) -> str | None:
    """The name of the remote of ``root`` that points at ``repository`` (``origin`` first
    when several do), or None."""
    matching = [
        name
        for name, url in remotes(root).items()
        if (parsed := parse_remote(url)) is not None and same_repository(parsed, repository)
    ]
    return "origin" if "origin" in matching else (matching[0] if matching else None)


def unpushed(root: Path, remote: str, branch: str, commit: str = "HEAD") -> str | None:
    """Why ``commit`` is not on ``remote``'s ``branch`` as of the last fetch, or None when
    it is (the remote branch holds it, ahead or not)."""
    from tasks.lib.tools.runner import Command, run_many

    ref = f"refs/remotes/{remote}/{branch}"
    exists, contained = run_many(
        [
            Command(("git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"), cwd=root),
            Command(("git", "merge-base", "--is-ancestor", commit, ref), cwd=root),
        ]
    )
    if not exists.ok:
        return f"branch '{branch}' is not on {remote}: run `git push -u {remote} {branch}` first"
    if not contained.ok:
        return f"{remote}/{branch} does not have your latest commit: run `git push {remote} {branch}` first"
    return None


def upstream_problem(root: Path, branch: str) -> str | None:
    """Why HEAD is not on the upstream of ``branch`` (its tracking branch), or None."""
    from tasks.lib.tools.runner import Command, run_many

    upstream, ahead = run_many(
        [
            Command(("git", "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"), cwd=root),
            Command(("git", "rev-list", "--count", "@{upstream}..HEAD"), cwd=root),
        ]
    )
    if not upstream.ok or not upstream.stdout.strip():
        return f"branch '{branch}' is not pushed: run `git push -u origin {branch}` first"
    count = ahead.stdout.strip()
    if ahead.ok and count not in ("", "0"):
        return f"branch '{branch}' has {count} unpushed commit(s): run `git push` first"
    return None


def push_problem(root: Path, repository: GitUrl | None, branch: str, commit: str = "HEAD") -> str | None:
    """Why Flux, pulling ``branch`` from ``repository``, would not see ``commit`` (as of the
    last fetch), or None. The remote whose URL is ``repository`` is checked; a checkout with
    none (no config, or the remote goes through an ssh host alias) falls back to the
    branch's upstream."""
    remote = remote_for(root, repository) if repository is not None else None
    if remote is not None:
        return unpushed(root, remote, branch, commit)
    return upstream_problem(root, branch)
