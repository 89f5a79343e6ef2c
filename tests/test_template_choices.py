"""The choices the upstream template offers (no Cloudflare, any git host, the webhook, the
ingress mode, derived addresses), through the test configurations of tests/fixtures/configs:
every valid one loads with its secrets, every invalid one is refused by `inv configure` with
one line and nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.lib import selftest, swap
from tasks.lib.config import configure as pipeline
from tasks.lib.config.checks import load_config
from tasks.lib.config.configure import sops_decrypt
from tasks.lib.config.template_context import build_context
from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths
from tests.conftest import EXAMPLE_OPERATOR, ROOT, copy_repo, with_config

CONFIGS = ROOT / selftest.CONFIGS_DIR
INVALID = CONFIGS / "invalid"
INVALID_CONFIGS = sorted(d for d in INVALID.iterdir() if d.is_dir())


def snapshot(repo: Path) -> dict[str, bytes]:
    """Every file but the write lock (in the git-ignored scratch; it stays, as flock locks do)."""
    lock = swap.lock_path(repo)
    files = sorted(p for p in repo.rglob("*") if p.is_file() and p != lock)
    return {str(p.relative_to(repo)): p.read_bytes() for p in files}


@pytest.fixture
def example_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))


def test_the_upstream_suite_is_translated_whole() -> None:
    """One configuration per case of the upstream template's own suite (valid/ and invalid/)."""
    valid = {
        "direct",
        "internal",
        "multi-controller",
        "no-webhook",
        "private",
        "public",
        "selfhosted",
        "single-node",
    }
    assert {f"upstream-{name}" for name in valid} <= {c.name for c in selftest.available(ROOT)}
    invalid = {
        "bad-bgp-asn", "bad-mac-address", "bad-repo-url", "bad-vlan-tag", "duplicate-gateway-addrs",
        "duplicate-node-names", "gateway-node-collision", "missing-dns-token", "missing-external-gateway",
        "missing-known-hosts", "missing-schematic", "nested-cidr-overlap", "node-addr-outside-cidr",
        "node-uses-gateway-addr", "non-canonical-cidr", "overlapping-cidrs", "partial-bgp",
        "reserved-node-name", "tiny-svc-cidr", "tunnel-without-dns",
    }  # fmt: skip
    assert invalid <= {d.name for d in INVALID_CONFIGS}


def test_invalid_configurations_are_not_run_by_dev_e2e() -> None:
    assert "invalid" not in {c.name for c in selftest.available(ROOT)}
    for directory in INVALID_CONFIGS:
        assert (directory / "expected-error.txt").is_file(), directory.name


@pytest.mark.parametrize("config", selftest.available(ROOT), ids=lambda c: c.name)
def test_every_valid_configuration_loads_with_its_secrets(
    config: selftest.TestConfig, tmp_path: Path, example_keys: None
) -> None:
    """The config and the secrets its choices need (its own cluster.sops.yaml, else the
    example's) pass every check a render starts with."""
    repo = with_config(copy_repo(tmp_path / "repo"), config.directory)
    paths = repo_paths(repo)
    context = build_context(paths, sops_decrypt(paths))
    assert context.data["repository_url"]


@pytest.mark.parametrize("directory", INVALID_CONFIGS, ids=lambda d: d.name)
def test_every_invalid_configuration_is_refused_with_one_line_and_nothing_written(
    directory: Path, tmp_path: Path, example_keys: None
) -> None:
    repo = with_config(copy_repo(tmp_path / "repo"), directory)
    before = snapshot(repo)
    expected = (directory / "expected-error.txt").read_text().strip()
    with pytest.raises(UserError) as refused:
        pipeline.configure(repo_paths(repo), pipeline.Options(say=lambda line: None))
    assert len(refused.value.lines) == 1, refused.value.lines
    assert expected in refused.value.lines[0]
    assert snapshot(repo) == before


def test_the_derived_default_gateway_is_named_as_derived_and_a_written_one_is_not(tmp_path: Path) -> None:
    directory = INVALID / "node-uses-gateway-addr"
    with pytest.raises(UserError) as derived:
        load_config(directory / "cluster.yaml", directory / "nodes.yaml", ROOT)
    assert "the first host of node_cidr" in derived.value.lines[0]
    (tmp_path / "cluster.yaml").write_text(
        (directory / "cluster.yaml").read_text() + "node_default_gateway: 10.10.10.1\n"
    )
    shutil.copy(directory / "nodes.yaml", tmp_path / "nodes.yaml")  # the config files of one repository
    with pytest.raises(UserError) as written:
        load_config(tmp_path / "cluster.yaml", tmp_path / "nodes.yaml", tmp_path)
    assert written.value.lines[0].endswith("10.10.10.1 is already used by node_default_gateway")
    (tmp_path / "cluster.yaml").write_text(
        (directory / "cluster.yaml").read_text() + "node_default_gateway: 10.10.10.254\n"
    )
    with pytest.raises(UserError) as moved:  # the router elsewhere: .1 is free, .254 is the VIP
        load_config(tmp_path / "cluster.yaml", tmp_path / "nodes.yaml", tmp_path)
    assert len(moved.value.lines) == 1
    assert moved.value.lines[0].endswith(
        "node_default_gateway: 10.10.10.254 is already used by cluster_api_addr"
    )
