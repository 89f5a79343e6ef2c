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

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.lib.config.constraints import HOSTNAME, MAX_STRING, REPOSITORY, Constraint, parse_address, shown
from tasks.lib.errors import UserError
from tasks.lib.tools.runner import Command, run_many, run_one

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
    problem = address_problem(value)
    if problem and isinstance(value, str) and value.strip() and address_problem(value.strip()) is None:
        return f"{shown(value)} has blanks around it — use {value.strip()}"
    return problem


def address_problem(value: object) -> str | None:
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


class RepositoryAddress(Constraint):
    """``repository_name``: GitHub's ``owner/repo`` or a clone URL Flux accepts."""

    doc = "`owner/repo` (GitHub) or an `https://`, `http://` or `ssh://user@` clone URL"

    def check(self, value: Any) -> str | None:
        return repository_problem(value)


# --------------------------------------------------------------------------- ssh host keys

#: Host keys of the public git hosts, as each publishes them: an ssh URL to one of these
#: needs no ``repository_known_hosts``.
BUNDLED_KNOWN_HOSTS: dict[str, tuple[str, ...]] = {
    "github.com": (
        "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        "github.com ecdsa-sha2-nistp256 "
        "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5"
        "YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=",
        "github.com ssh-rsa "
        "AAAAB3NzaC1yc2EAAAADAQABAAABgQCj7ndNxQowgcQnjshcLrqPEiiphnt+VTTvDP6mHBL9j1aNUkY4Ue1g"
        "vwnGLVlOhGeYrnZaMgRK6+PKCUXaDbC7qtbW8gIkhL7aGCsOr/C56SJMy/BCZfxd1nWzAOxSDPgVsmerOBYf"
        "NqltV9/hWCqBywINIR+5dIg6JTJ72pcEpEjcYgXkE2YEFXV1JHnsKgbLWNlhScqb2UmyRkQyytRLtL+38TGx"
        "kxCflmO+5Z8CSSNY7GidjMIZ7Q4zMjA2n1nGrlTDkzwDCsw+wqFPGQA179cnfGWOWRVruj16z6XyvxvjJwbz"
        "0wQZ75XK5tKSb7FNyeIEs4TT4jk+S4dhPeAUC5y+bDYirYgM4GC7uEnztnZyaVWQ7B381AK4Qdrwt51ZqExK"
        "bQpTUNn+EjqoTwvqNj4kqx5QUCI0ThS/YkOxJCXmPUWZbhjpCg56i+2aB6CmK2JGhn57K5mj0MNdBXA4/Wnw"
        "H6XoPWJzK5Nyu2zB3nAZp+S5hpQs+p1vN1/wsjk=",
    ),
    "gitlab.com": (
        "gitlab.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAfuCHKVTjquxvt6CM6tdG4SLp1Btn/nOeHHE5UOzRdf",
        "gitlab.com ecdsa-sha2-nistp256 "
        "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFSMqzJeV9rUzU4kWitGjeR4PWSa29SP"
        "qJ1fVkhtj3Hw9xjLVXVYrU9QlYWrOLXBpQ6KWjbjTDTdDkoohFzgbEY=",
        "gitlab.com ssh-rsa "
        "AAAAB3NzaC1yc2EAAAADAQABAAABAQCsj2bNKTBSpIYDEGk9KxsGh3mySTRgMtXL583qmBpzeQ+jqCMRgBqB"
        "98u3z++J1sKlXHWfM9dyhSevkMwSbhoR8XIq/U0tCNyokEi/ueaBMCvbcTHhO7FcwzY92WK4Yt0aGROY5qX2"
        "UKSeOvuP4D6TPqKF1onrSzH9bx9XUf2lEdWT/ia1NEKjunUqu1xOB/StKDHMoX4/OKyIzuS0q/T1zOATthva"
        "sJFoPrAjkohTyaDUz2LN5JoH839hViyEG82yB+MjcFV5MU3N1l1QL3cVUCh93xSaua1N85qivl+siMkPGbO5"
        "xR/En4iEY6K2XPASUEMaieWVNTRCtJ4S8H+9",
    ),
    "codeberg.org": (
        "codeberg.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIVIC02vnjFyL+I4RHfvIGNtOgJMe769VTF1VR4EB3ZB",
        "codeberg.org ecdsa-sha2-nistp256 "
        "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBL2pDxWr18SoiDJCGZ5LmxPygTlPu+cC"
        "KSkpqkvCyQzl5xmIMeKNdfdBpfbCGDPoZQghePzFZkKJNR/v9Win3Sc=",
        "codeberg.org ssh-rsa "
        "AAAAB3NzaC1yc2EAAAADAQABAAABAQC8hZi7K1/2E2uBX8gwPRJAHvRAob+3Sn+y2hxiEhN0buv1igjYFTgF"
        "O2qQD8vLfU/HT/P/rqvEeTvaDfY1y/vcvQ8+YuUYyTwE2UaVU5aJv89y6PEZBYycaJCPdGIfZlLMmjilh/Sk"
        "8IWSEK6dQr+g686lu5cSWrFW60ixWpHpEVB26eRWin3lKYWSQGMwwKv4LwmW3ouqqs4Z4vsqRFqXJ/eCi3yh"
        "pT+nOjljXvZKiYTpYajqUC48IHAxTWugrKe1vXWOPxVXXMQEPsaIRc2hpK+v1LmfB7GnEGvF1UAKnEZbUuiD"
        "9PBEeD5a1MZQIzcoPWCrTxipEpuXQ5Tni4mN",
    ),
}

#: Key types Flux's ssh client accepts in known_hosts (ssh-dss is refused by OpenSSH too).
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
MARKERS = ("@cert-authority", "@revoked")
HOST_PATTERN = re.compile(r"(!?)(\[[^\]\s]+\]:[0-9]{1,5}|[A-Za-z0-9.*?_-]+)")
MAX_KNOWN_HOSTS = 32
#: A line carrying an RSA-8192 key is about 1,400 characters.
MAX_KNOWN_HOSTS_LINE = 2048


def known_hosts_lines(value: str | Iterable[str]) -> list[str]:
    """The entries of known_hosts text (or of a list of lines): comments and blanks dropped."""
    text = value if isinstance(value, str) else "\n".join(value)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def known_hosts_line_problem(line: str) -> str | None:
    """Why ``line`` is not a known_hosts entry (``[marker] hosts keytype base64 [comment]``),
    or None. The key's own type, inside its base64, must be the type the line names."""
    if len(line) > MAX_KNOWN_HOSTS_LINE:
        return f"a line of {len(line)} characters — at most {MAX_KNOWN_HOSTS_LINE}"
    if not line.isprintable():
        return "a line holds a control character"
    fields = line.split()
    if fields and fields[0] in MARKERS:
        fields = fields[1:]
    if len(fields) < 3:
        return f"{shown(line)} is not `HOST KEYTYPE KEY` (paste the output of ssh-keyscan)"
    hosts, key_type, key = fields[:3]
    if not hashed(hosts) and not all(HOST_PATTERN.fullmatch(h) for h in hosts.split(",")):
        return f"{shown(hosts)} is not a host name, [host]:port or hashed host"
    if key_type not in KEY_TYPES:
        return f"{shown(key_type)} is not a key type Flux accepts ({', '.join(sorted(KEY_TYPES))})"
    embedded = embedded_key_type(key)
    if embedded is None:
        return f"the {key_type} key is not base64 of an ssh public key"
    if embedded != key_type:
        return f"the key is an {shown(embedded)} key, but the line says {key_type}"
    return None


def hashed(hosts: str) -> bool:
    return hosts.startswith("|1|")


def embedded_key_type(key: str) -> str | None:
    """The key type an ssh public key's wire format starts with, or None."""
    try:
        blob = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(blob) < 4:
        return None
    length = int.from_bytes(blob[:4], "big")
    if not 0 < length <= 64 or len(blob) < 4 + length + 4:
        return None
    try:
        return blob[4 : 4 + length].decode("ascii")
    except UnicodeDecodeError:
        return None


def names_host(line: str, name: str) -> bool:
    """Whether the known_hosts ``line`` is for ``name`` (``host`` or ``[host]:port``): a
    plain pattern equal to it (no wildcards), or a hashed entry of it."""
    fields = line.split()
    hosts = fields[1] if fields[0] in MARKERS else fields[0]
    if hashed(hosts):
        parts = hosts.split("|")
        if len(parts) != 4:
            return False
        try:
            salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
        except (binascii.Error, ValueError):
            return False
        mac = hmac.new(salt, name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mac, digest)
    return name.casefold() in {h.casefold() for h in hosts.split(",")}


class KnownHosts(Constraint):
    """``repository_known_hosts``: the git host's ssh host keys, as ``ssh-keyscan`` prints them."""

    doc = "`ssh-keyscan` output: a block of `HOST KEYTYPE KEY` lines, or a list of them"
    max_length = MAX_STRING * 8  # what a document may hold in one string

    def check(self, value: Any) -> str | None:
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                return "must be known_hosts lines (text)"
        elif not isinstance(value, str):
            return f"{shown(value)} must be the known_hosts lines of the git host (ssh-keyscan HOST)"
        lines = known_hosts_lines(value)
        if not lines and value != []:
            return "holds no known_hosts line — paste the output of `ssh-keyscan HOST`"
        if len(lines) > MAX_KNOWN_HOSTS:
            return f"has {len(lines)} lines — at most {MAX_KNOWN_HOSTS}"
        for index, line in enumerate(lines, 1):
            if (problem := known_hosts_line_problem(line)) is not None:
                return f"line {index}: {problem}"
        return None

    def convert(self, value: Any) -> tuple[str, ...]:
        return tuple(known_hosts_lines(value))


def known_hosts_for(url: GitUrl, own: Iterable[str]) -> tuple[str, ...]:
    """What Flux trusts for ``url``: the host's bundled keys (when it is a public host on
    port 22), then the operator's own lines."""
    bundled = BUNDLED_KNOWN_HOSTS.get(url.host, ()) if url.known_hosts_name == url.host else ()
    return (*bundled, *own)


def known_hosts_problem(url: GitUrl, own: Iterable[str]) -> str | None:
    """Why Flux could not verify the ssh host of ``url`` with these known_hosts, or None."""
    if not url.ssh:
        return None
    name = url.known_hosts_name
    lines = known_hosts_for(url, own)
    if not lines:
        port = f"-p {url.port} " if url.port not in (None, DEFAULT_PORTS["ssh"]) else ""
        return (
            f"an ssh URL to {name} needs its host keys: set repository_known_hosts to the output of "
            f"`ssh-keyscan {port}{url.host}` (keys are bundled only for {', '.join(BUNDLED_KNOWN_HOSTS)})"
        )
    if not any(names_host(line, name) for line in lines):
        return f"no line names {name}, the host of repository_name — paste `ssh-keyscan` output for it"
    return None


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


def upstream_remote(root: Path) -> str | None:
    """The remote the checked-out branch tracks (``branch.NAME.remote``), or None (no
    branch, no upstream, or a local one)."""
    branch = git_query(root, "symbolic-ref", "--short", "-q", "HEAD")
    remote = git_query(root, "config", "--get", f"branch.{branch}.remote") if branch else None
    return remote if remote and remote != "." and remote in remotes(root) else None


def flux_remote(root: Path, repository: GitUrl) -> str | None:
    """The remote to check for what Flux pulls from ``repository``: the one whose URL is
    it, else (its URL goes through an ssh host alias, say) the one the branch tracks."""
    return remote_for(root, repository) or upstream_remote(root)


def unpushed(root: Path, remote: str, branch: str, commit: str = "HEAD") -> str | None:
    """Why ``commit`` is not on ``remote``'s ``branch`` as of the last fetch, or None when
    it is (the remote branch holds it, ahead or not)."""
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


# --------------------------------------------------------------------------- the checkout


def git_query(root: Path, *args: str) -> str | None:
    """A read-only git command in ``root``: what it printed (stripped), None when it failed.
    It changes nothing, so it runs under ``--dry`` too."""
    outcome = run_one(Command(("git", *args), cwd=root))
    return outcome.stdout.strip() if outcome.ok else None


def default_branch(root: Path) -> str:
    """origin/HEAD's branch when the remote told us, else main."""
    ref = git_query(root, "symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD")
    return ref or "main"


def current_branch(root: Path) -> str:
    """The branch checked out, or one line saying HEAD is detached."""
    branch = git_query(root, "symbolic-ref", "--short", "-q", "HEAD")
    if not branch:
        raise UserError("HEAD is detached: check out the branch you want Flux to follow")
    return branch
