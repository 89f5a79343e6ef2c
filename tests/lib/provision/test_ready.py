"""Before a cluster is built: the example's values are refused (what counts as one:
tests/lib/config/test_examples.py), and `bootstrap.apps` stops unless the commit is on the remote
Flux deploys. Real git (a bare repository stands in for GitHub), real sops; fake cluster tools."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoke import Config, Context

from tasks import bootstrap
from tasks.lib.errors import UserError
from tasks.lib.gitremote import parse_repository
from tasks.lib.paths import repo_paths
from tasks.lib.provision import ready
from tasks.lib.provision.bootstrap import load_cluster
from tests.conftest import EXAMPLE_OPERATOR, ROOT, exit_code, git, replace_in, with_config
from tests.fakes import FakeTools, publish, write_cluster_tree
from tests.test_bootstrap import script_talhelper

REPOSITORY = parse_repository("octo/home-ops")
CONFIGS = ROOT / "tests" / "fixtures" / "configs"


def context(root: Path, dry: bool = False) -> Context:
    return Context(config=Config(overrides={"home_ops": {"root": str(root)}, "run": {"dry": dry}}))


# --------------------------------------------------------------------------- refusing the example


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_tools: FakeTools) -> Path:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    root = write_cluster_tree(tmp_path / "repo")
    publish(root)
    return root


def use_example_values(root: Path) -> None:
    replace_in(
        root / "cluster.yaml",
        ("repository_name: octo/home-ops", "repository_name: example/home-ops"),
        ("cloudflare_domain: homelab.test", "cloudflare_domain: example.com"),
    )


@pytest.mark.parametrize("task", [bootstrap.talos, bootstrap.apps])
def test_bootstrap_refuses_the_example_without_yes(
    tree: Path, fake_tools: FakeTools, capsys: pytest.CaptureFixture[str], task: object
) -> None:
    use_example_values(tree)
    assert exit_code(lambda: task(context(tree))) == 1  # type: ignore[operator]
    assert fake_tools.calls() == []  # refused before anything ran
    assert capsys.readouterr().err.splitlines() == [
        "the example's values are still in place; a cluster bootstrapped from them would not be yours:",
        "  cluster.yaml: cloudflare_domain: example.com is a domain reserved for examples",
        "  cluster.yaml: repository_name: example/home-ops is the example repository",
        "replace them (cluster.yaml), then run `inv configure`; or pass --yes to bootstrap with them anyway",
    ]


def test_bootstrap_dry_run_notes_the_example_and_goes_on(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_example_values(tree)
    bootstrap.talos(context(tree, dry=True))
    captured = capsys.readouterr()
    assert "note: without --dry this stops here:" in captured.err
    assert "talhelper genconfig" in captured.out


def test_yes_bootstraps_the_example_anyway(tree: Path, fake_tools: FakeTools) -> None:
    use_example_values(tree)
    script_talhelper(fake_tools)
    bootstrap.talos(context(tree), yes=True, deadline=5, interval=0.01)
    assert "talhelper genconfig" in fake_tools.lines("talhelper")
    assert any(line.startswith("talosctl bootstrap") for line in fake_tools.lines("talosctl"))


def test_the_example_secrets_are_named_never_shown(example_repo: Path) -> None:
    paths = repo_paths(example_repo)
    lines = [value.line() for value in ready.example_values(paths, load_cluster(paths))]
    assert "cluster.sops.yaml: cloudflare_token: still the bundled example's fake value" in lines
    assert "example-cloudflare-api-token" not in "\n".join(lines)


def test_the_secrets_are_checked_against_what_the_config_needs(example_repo: Path) -> None:
    """Without Cloudflare, cluster.sops.yaml holds no Cloudflare secrets, as configure wants."""
    paths = repo_paths(with_config(example_repo, CONFIGS / "no-cloudflare"))
    found = ready.example_values(paths, load_cluster(paths))
    assert [value.key for value in found] == [
        "repository_name",
        "onepassword_connect.credentials",
        "onepassword_connect.token",
    ]


# --------------------------------------------------------------------------- the commit on the remote


def check(root: Path, dry: bool = False) -> str:
    return ready.check_pushed(root, REPOSITORY, "main", dry)


def refusal(root: Path, branch: str = "main") -> list[str]:
    """The lines ``check_pushed`` stops with (it must stop)."""
    with pytest.raises(UserError) as raised:
        ready.check_pushed(root, REPOSITORY, branch)
    return raised.value.lines


def test_a_pushed_commit_passes(tree: Path) -> None:
    assert check(tree) == "origin/main"


def test_an_unpushed_commit_stops(tree: Path) -> None:
    (tree / "talos" / "notes.md").write_text("mine\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "not pushed")
    assert refusal(tree) == [
        "Flux deploys origin/main, and origin/main does not have your latest commit: "
        "run `git push origin main` first"
    ]


def test_a_commit_pushed_by_someone_else_meanwhile_is_seen(tree: Path, tmp_path: Path) -> None:
    """The check fetches: a push from another clone (or the web UI) counts, and a commit
    only the remote has is no reason to stop."""
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(tmp_path / "repo-remote.git"), str(other))
    (other / "README").write_text("x\n")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "elsewhere")
    git(other, "push", "-q", "origin", "HEAD:main")
    assert check(tree) == "origin/main"
    assert git(tree, "rev-parse", "origin/main") == git(other, "rev-parse", "HEAD")


def test_uncommitted_changes_under_kubernetes_stop(tree: Path) -> None:
    (tree / "kubernetes" / "apps" / "default" / "extra.yaml").write_text("---\n")
    assert refusal(tree)[0].startswith("kubernetes/ has changes that are not committed")


def test_a_branch_not_on_the_remote_stops(tree: Path) -> None:
    assert refusal(tree, "staging") == [
        "branch 'staging' is not on origin yet, and Flux deploys it — push it first "
        "(`git push -u origin HEAD:staging`), then run this again"
    ]


def test_any_spelling_of_the_remote_is_found(tree: Path, tmp_path: Path) -> None:
    git(tree, "remote", "remove", "origin")
    scp = "git@github.com:Octo/home-ops"
    git(tree, "remote", "add", "upstream", scp)
    git(tree, "config", f"url.{tmp_path / 'repo-remote.git'}.insteadOf", scp)
    assert check(tree) == "upstream/main"


def test_a_remote_through_an_ssh_host_alias_is_the_one_the_branch_tracks(tree: Path, tmp_path: Path) -> None:
    alias = "git@github-personal:octo/home-ops.git"  # a Host of ~/.ssh/config: not github.com
    git(tree, "remote", "set-url", "origin", alias)
    git(tree, "config", f"url.{tmp_path / 'repo-remote.git'}.insteadOf", alias)
    assert refusal(tree)[0].startswith("no git remote of this checkout is")  # no upstream yet
    git(tree, "fetch", "-q", "origin")
    git(tree, "branch", "-q", "--set-upstream-to=origin/main")
    assert check(tree) == "origin/main"
    (tree / "talos" / "notes.md").write_text("mine\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "not pushed")
    assert refusal(tree)[0].endswith("does not have your latest commit: run `git push origin main` first")


def test_no_remote_of_the_repository_stops(tree: Path) -> None:
    git(tree, "remote", "set-url", "origin", "https://github.com/someone/else.git")
    assert refusal(tree) == [
        "no git remote of this checkout is https://github.com/octo/home-ops.git (repository_name in "
        "cluster.yaml), which Flux deploys from, and the branch tracks none — add it (`git remote add "
        "origin https://github.com/octo/home-ops.git`) and push"
    ]


def test_an_unreachable_remote_is_one_line(tree: Path, tmp_path: Path) -> None:
    url = "https://github.com/octo/home-ops.git"
    git(tree, "config", f"url.{tmp_path / 'gone.git'}.insteadOf", url)
    git(tree, "config", "--unset", f"url.{tmp_path / 'repo-remote.git'}.insteadOf")
    (line,) = refusal(tree)
    assert line.startswith("could not fetch main from origin to check that your commit is there (")
    assert line.endswith("check the network and your access to the repository, then run this again")


def test_outside_git_stops(tmp_path: Path) -> None:
    assert refusal(write_cluster_tree(tmp_path / "plain"))[0].startswith(
        "not a git repository: Flux deploys from https://github.com/"
    )


def test_dry_run_shows_the_check_and_fetches_nothing(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = git(tree, "rev-parse", "origin/main")
    (tree / "kubernetes" / "apps" / "default" / "extra.yaml").write_text("---\n")  # would stop
    assert check(tree, dry=True) == "origin/main"
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "# check that HEAD is on origin/main, which Flux deploys:",
        "git status --porcelain -- kubernetes",
        "git fetch --quiet --no-tags --end-of-options origin +refs/heads/main:refs/remotes/origin/main",
    ]
    assert git(tree, "rev-parse", "origin/main") == before


def test_bootstrap_apps_stops_on_an_unpushed_commit_before_touching_the_cluster(
    tree: Path, fake_tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    (tree / "talos" / "notes.md").write_text("mine\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "not pushed")
    assert exit_code(lambda: bootstrap.apps(context(tree), deadline=5, interval=0.01)) == 1
    assert fake_tools.calls() == []
    assert "does not have your latest commit" in capsys.readouterr().err


def test_dry_run_outside_git_only_notes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check(write_cluster_tree(tmp_path / "plain"), dry=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "note: without --dry this stops here:"
    assert err[1].startswith("not a git repository")


# --------------------------------------------------------------------------- configure warns


def test_configure_warns_while_the_example_values_are_in_place(
    example_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tasks.lib.config import configure as pipeline
    from tasks.lib.paths import repo_paths

    pipeline.configure(repo_paths(example_repo), pipeline.Options(force=True, say=lambda line: None))
    err = capsys.readouterr().err.splitlines()
    assert "warning: cluster.yaml: cloudflare_domain: example.com is a domain reserved for examples" in err
    credentials = "onepassword_connect.credentials: still the bundled example's fake credentials"
    assert f"warning: cluster.sops.yaml: {credentials}" in err
    assert err[-1] == (
        "warning: `inv bootstrap.*` refuses the example's values: replace them (cluster.yaml, "
        "`inv sops.edit cluster.sops.yaml`), then run `inv configure`"
    )
