"""The configure pipeline on temporary git repositories, with real makejinja, sops + age and
kustomize: fresh render, no-change re-runs, targeted changes, hand-edit protection, stale
files, --check, and every failure path leaving the tree byte-for-byte as it was."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tasks.lib import swap
from tasks.lib.config import cache
from tasks.lib.config import configure as pipeline
from tasks.lib.errors import UserError
from tasks.lib.paths import repo_paths
from tests.conftest import EXAMPLE_OPERATOR, git, rewrite_secrets
from tests.fakes import FakeTools

TOKEN = "example-cloudflare-api-token-not-real"  # the bundled example's fake secret

SOPS_TEMPLATE = """\
---
creation_rules:
  - path_regex: talos/.*\\.sops\\.ya?ml
    mac_only_encrypted: true
    age: #{ age_public_key }#
  - path_regex: (bootstrap|kubernetes)/.*\\.sops\\.ya?ml
    encrypted_regex: ^(data|stringData)$
    mac_only_encrypted: true
    age: #{ age_public_key }#
  - path_regex: (^|/)cluster\\.sops\\.ya?ml$
    mac_only_encrypted: true
    age: #{ age_public_key }#
stores:
  yaml:
    indent: 2
"""

MINIMAL_TEMPLATES = {
    ".sops.yaml.j2": SOPS_TEMPLATE,
    "talos/talenv.yaml.j2": "---\ntalosVersion: v1.13.8\nkubernetesVersion: v1.36.4\n",
    # The least the real talhelper validates (configure runs it when it is installed).
    "talos/talconfig.yaml.j2": (
        "---\nclusterName: kubernetes\nendpoint: https://#{ cluster_api_addr }#:6443\n"
        'talosVersion: "${talosVersion}"\nkubernetesVersion: "${kubernetesVersion}"\n'
        "nodes:\n  - hostname: k8s-0\n    ipAddress: 192.168.1.10\n    controlPlane: true\n"
        "    installDisk: /dev/sda\n"
    ),
    "kubernetes/apps/default/kustomization.yaml.j2": (
        "---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - ./configmap.yaml\n  - ./secret.sops.yaml\n"
    ),
    "kubernetes/apps/default/configmap.yaml.j2": (
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
        "data:\n  domain: #{ cloudflare_domain }#\n"
    ),
    "kubernetes/apps/default/secret.sops.yaml.j2": (
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: cloudflare\n"
        "stringData:\n  token: #{ cloudflare_token }#\n"
    ),
    "bootstrap/github-deploy-key.sops.yaml.j2": (
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: github-deploy-key\n"
        "stringData:\n  identity: |\n    #{ deploy_key | indent(4) }#\n"
    ),
}


def use_templates(repo: Path, templates: dict[str, str]) -> None:
    config = repo / "templates" / "config"
    shutil.rmtree(config)
    for name, text in templates.items():
        (config / name).parent.mkdir(parents=True, exist_ok=True)
        (config / name).write_text(text)


@pytest.fixture
def repo(example_repo: Path) -> Path:
    """The example repository with a small template set and no rendered tree yet."""
    for name in ("kubernetes", "talos", "bootstrap"):
        shutil.rmtree(example_repo / name, ignore_errors=True)
    (example_repo / ".configure-manifest.json").unlink(missing_ok=True)
    (example_repo / ".sops.yaml").unlink()
    use_templates(example_repo, MINIMAL_TEMPLATES)
    return example_repo


def run(repo: Path, **options: Any) -> pipeline.Summary:
    lines: list[str] = []
    return pipeline.configure(repo_paths(repo), pipeline.Options(say=lines.append, **options))


def snapshot(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts and "__pycache__" not in p.parts
    }


@pytest.fixture(autouse=True)
def staging_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test stages under its own directory, so leftovers are attributable."""
    root = tmp_path / "staging"
    root.mkdir()
    monkeypatch.setattr(pipeline, "staging_parent", lambda: str(root))
    return root


def staging_leftovers(root: Path) -> list[str]:
    return [p.name for p in root.iterdir()]


def assert_no_plaintext(repo: Path) -> None:
    for name, content in snapshot(repo).items():
        if name != "cluster.sops.yaml":
            assert TOKEN.encode() not in content, f"plaintext secret in {name}"


def test_fresh_configure_renders_encrypts_and_records(repo: Path) -> None:
    summary = run(repo)
    assert "kubernetes/apps/default/configmap.yaml" in summary.written
    assert sorted(summary.encrypted) == [
        "bootstrap/github-deploy-key.sops.yaml",
        "kubernetes/apps/default/secret.sops.yaml",
    ]
    secret = (repo / "kubernetes/apps/default/secret.sops.yaml").read_text()
    assert "ENC[AES256_GCM" in secret and "name: cloudflare" in secret  # only stringData is encrypted
    assert "domain: example.com" in (repo / "kubernetes/apps/default/configmap.yaml").read_text()
    assert (repo / ".configure-manifest.json").is_file()
    assert_no_plaintext(repo)
    decrypted = subprocess.run(
        ["sops", "--decrypt", "kubernetes/apps/default/secret.sops.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "SOPS_AGE_KEY_FILE": str(EXAMPLE_OPERATOR / "age.key")},
    ).stdout
    assert TOKEN in decrypted


def test_no_change_rerun_writes_nothing(repo: Path) -> None:
    run(repo)
    before = snapshot(repo)
    summary = run(repo)
    assert summary.up_to_date
    assert snapshot(repo) == before
    forced = run(repo, force=True)  # full render: still zero writes, ciphertext kept
    assert forced.written == []
    assert sorted(forced.kept) == [
        "bootstrap/github-deploy-key.sops.yaml",
        "kubernetes/apps/default/secret.sops.yaml",
    ]
    assert snapshot(repo) == before


def test_unchanged_secret_is_recognised_by_decrypting_when_the_manifest_cannot_tell(repo: Path) -> None:
    run(repo)
    before = snapshot(repo)
    (repo / ".configure-manifest.json").unlink()  # lost the keyed digests
    summary = run(repo, force=True)  # so the secrets are compared by decrypting them
    assert summary.encrypted == []
    assert {k: v for k, v in snapshot(repo).items() if k.endswith(".sops.yaml")} == {
        k: v for k, v in before.items() if k.endswith(".sops.yaml")
    }


def test_one_value_changed_rewrites_only_affected_files(repo: Path) -> None:
    run(repo)
    before = snapshot(repo)
    cluster = repo / "cluster.yaml"
    cluster.write_text(
        cluster.read_text().replace("cluster_api_addr: 192.168.1.145", "cluster_api_addr: 192.168.1.140")
    )
    summary = run(repo)
    assert sorted(summary.written) == [".configure-manifest.json", "talos/talconfig.yaml"]
    after = snapshot(repo)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {".configure-manifest.json", "talos/talconfig.yaml", "cluster.yaml"}


def test_changed_secret_is_reencrypted_and_nothing_else_changes(repo: Path) -> None:
    run(repo)
    before = snapshot(repo)
    rewrite_secrets(repo, lambda plain: plain.replace(TOKEN, "a-rotated-token"))
    summary = run(repo)
    assert summary.encrypted == ["kubernetes/apps/default/secret.sops.yaml"]
    assert summary.kept == ["bootstrap/github-deploy-key.sops.yaml"]
    after = snapshot(repo)
    assert {n for n in after if after[n] != before[n]} == {
        "cluster.sops.yaml",
        ".configure-manifest.json",
        "kubernetes/apps/default/secret.sops.yaml",
    }
    assert b"a-rotated-token" not in after["kubernetes/apps/default/secret.sops.yaml"]


CONFIGMAP = "kubernetes/apps/default/configmap.yaml"


def set_domain(repo: Path, domain: str) -> None:
    cluster = repo / "cluster.yaml"
    text = cluster.read_text()
    current = text.split("cloudflare_domain: ")[1].split()[0]
    cluster.write_text(text.replace(f"cloudflare_domain: {current}", f"cloudflare_domain: {domain}"))


def test_an_edit_is_merged_into_a_changed_render_before_anything_is_committed(repo: Path) -> None:
    run(repo)
    edited = repo / CONFIGMAP
    edited.write_text(edited.read_text().replace("---\n", "---\n# mine: keep this\n", 1))
    set_domain(repo, "example.org")
    summary = run(repo)
    assert summary.merged == [CONFIGMAP] and CONFIGMAP in summary.written
    text = edited.read_text()
    assert "# mine: keep this" in text and "domain: example.org" in text
    # The base of the next merge is the pure render, in git's object database (nothing is
    # committed since the fixture's first commit, which never held this file).
    entry = json.loads((repo / ".configure-manifest.json").read_text())["files"][CONFIGMAP]
    assert git(repo, "cat-file", "-p", entry["blob"]) == text.replace("# mine: keep this\n", "")
    assert entry["written"] != entry["sha256"]
    assert run(repo).up_to_date  # what configure wrote is recognised: the fast path holds
    set_domain(repo, "example.net")
    summary = run(repo)
    assert summary.merged == [CONFIGMAP]
    assert "# mine: keep this" in edited.read_text() and "domain: example.net" in edited.read_text()
    run(repo, check=True)


def test_an_edit_the_render_does_not_touch_stays_and_check_passes(repo: Path) -> None:
    run(repo)
    edited = repo / CONFIGMAP
    edited.write_text(edited.read_text() + "  extra: value\n")
    before = snapshot(repo)
    run(repo, check=True)  # configure would leave it: no difference
    summary = run(repo)
    assert summary.edits_kept == [CONFIGMAP]
    assert snapshot(repo)[CONFIGMAP] == before[CONFIGMAP]


def test_a_conflicting_edit_writes_nothing_and_shows_the_hunks(repo: Path) -> None:
    run(repo)
    edited = repo / CONFIGMAP
    edited.write_text(edited.read_text().replace("domain: example.com", "domain: mine.example"))
    set_domain(repo, "example.org")
    before = snapshot(repo)
    with pytest.raises(UserError) as raised:
        run(repo)
    lines = raised.value.lines
    assert lines[0] == "1 generated file cannot take the new render; nothing was written:"
    assert f"  {CONFIGMAP}: your edit and the new render change the same lines" in lines
    text = "\n".join(lines)
    assert f"<<<<<<< yours: {CONFIGMAP}\n" in text and "  domain: mine.example" in text
    assert "  domain: example.org" in text and ">>>>>>> new render" in text
    assert f"`inv configure --resolved {CONFIGMAP}`" in text and "`inv configure --force`" in text
    assert snapshot(repo) == before
    # --check says the same, and the commands it advises work.
    with pytest.raises(UserError) as checked:
        run(repo, check=True)
    assert "`inv configure --force`" in "\n".join(checked.value.lines)
    assert snapshot(repo) == before


def test_force_names_each_overwritten_file_and_what_is_lost(repo: Path) -> None:
    run(repo)
    edited = repo / CONFIGMAP
    mine = edited.read_text().replace("domain: example.com", "domain: mine.example")
    edited.write_text(mine)
    set_domain(repo, "example.org")
    summary = run(repo, force=True)
    assert "domain: example.org" in edited.read_text() and "mine.example" not in edited.read_text()
    assert summary.forced[0] == f"overwrote {CONFIGMAP} — lost:"
    assert "  +  domain: mine.example" in summary.forced
    recover = summary.forced[-1]
    blob = recover.split("git cat-file -p ")[1].rstrip("`")
    assert git(repo, "cat-file", "-p", blob) == mine  # what was lost can be had back


def test_a_resolved_conflict_is_kept_and_merges_on_the_new_render_next_time(repo: Path) -> None:
    run(repo)
    edited = repo / CONFIGMAP
    edited.write_text(edited.read_text().replace("domain: example.com", "domain: mine.example"))
    set_domain(repo, "example.org")
    with pytest.raises(UserError):
        run(repo)
    resolution = edited.read_text().replace("domain: mine.example", "domain: mine.example.org")
    edited.write_text(resolution)
    summary = run(repo, resolved=(CONFIGMAP,))
    assert summary.edits_kept == [CONFIGMAP] and edited.read_text() == resolution
    cluster = repo / "cluster.yaml"  # a change elsewhere in the same file now merges cleanly
    templates = repo / "templates/config/kubernetes/apps/default/configmap.yaml.j2"
    templates.write_text(templates.read_text().replace("name: settings", "name: settings-v2"))
    assert run(repo).merged == [CONFIGMAP]
    assert "name: settings-v2" in edited.read_text() and "domain: mine.example.org" in edited.read_text()
    assert cluster.exists()


def test_resolved_names_only_edited_generated_files(repo: Path) -> None:
    run(repo)
    with pytest.raises(UserError) as raised:
        run(repo, resolved=("talos/talenv.yaml",))
    assert raised.value.lines == [
        "--resolved talos/talenv.yaml: not a generated file with edits of yours; nothing to resolve"
    ]


def test_files_configure_never_wrote_are_not_overwritten(repo: Path) -> None:
    mine = repo / CONFIGMAP
    mine.parent.mkdir(parents=True)
    mine.write_text("---\n# my own file\n")
    with pytest.raises(UserError) as raised:
        run(repo)
    assert (
        f"  {CONFIGMAP}: exists, but configure never wrote it, and the render now produces it"
        in raised.value.lines
    )
    assert raised.value.lines[-1].endswith("`inv configure --force`")
    assert mine.read_text() == "---\n# my own file\n"
    summary = run(repo, force=True)
    assert summary.forced[0] == f"overwrote {CONFIGMAP} — lost:"
    assert "  -# my own file" in summary.forced


def test_stale_generated_files_are_removed_and_foreign_files_kept(repo: Path) -> None:
    run(repo)
    own = repo / "talos/notes.md"
    own.write_text("mine\n")
    (repo / "templates/config/talos/talconfig.yaml.j2").unlink()
    summary = run(repo)
    assert summary.removed == ["talos/talconfig.yaml"]
    assert not (repo / "talos/talconfig.yaml").exists()
    assert own.read_text() == "mine\n"
    assert (repo / "talos/talenv.yaml").exists()


def test_stale_file_edited_by_hand_is_protected(repo: Path) -> None:
    run(repo)
    (repo / "talos/talconfig.yaml").write_text("---\n# edited\n")
    (repo / "templates/config/talos/talconfig.yaml.j2").unlink()
    with pytest.raises(UserError) as raised:
        run(repo)
    assert (
        "  talos/talconfig.yaml: configure no longer generates it, and you changed it" in raised.value.lines
    )
    assert (repo / "talos/talconfig.yaml").read_text() == "---\n# edited\n"
    run(repo, resolved=("talos/talconfig.yaml",))  # now yours: kept, no longer in the manifest
    assert (repo / "talos/talconfig.yaml").read_text() == "---\n# edited\n"
    assert "talos/talconfig.yaml" not in (repo / ".configure-manifest.json").read_text()
    run(repo, check=True)


def test_force_removes_a_stale_edited_file_and_says_so(repo: Path) -> None:
    run(repo)
    (repo / "talos/talconfig.yaml").write_text("---\n# edited\n")
    (repo / "templates/config/talos/talconfig.yaml.j2").unlink()
    summary = run(repo, force=True)
    assert not (repo / "talos/talconfig.yaml").exists()
    assert summary.forced[:2] == [
        "removed talos/talconfig.yaml — lost:",
        "  the whole file, as you edited it",
    ]


def test_removing_a_whole_app_prunes_its_directories(repo: Path) -> None:
    run(repo)
    shutil.rmtree(repo / "templates/config/bootstrap")
    run(repo)
    assert not (repo / "bootstrap").exists()


def test_check_passes_on_a_fresh_tree_and_reports_differences(repo: Path) -> None:
    run(repo)
    run(repo, check=True)
    set_domain(repo, "example.org")
    (repo / "kubernetes/apps/default/secret.sops.yaml").unlink()
    before = snapshot(repo)
    with pytest.raises(UserError) as raised:
        run(repo, check=True)
    text = "\n".join(raised.value.lines)
    assert f"{CONFIGMAP}: differs" in text
    assert "+  domain: example.org" in text
    assert "kubernetes/apps/default/secret.sops.yaml: secret content differs (not shown)" in text
    assert raised.value.lines[-1] == "run `inv configure` and commit the result"
    assert TOKEN not in text
    assert snapshot(repo) == before
    run(repo)  # and what it advised works
    run(repo, check=True)


def test_check_shows_a_merged_edit_as_the_difference_configure_would_make(repo: Path) -> None:
    run(repo)
    edited = repo / CONFIGMAP
    edited.write_text(edited.read_text().replace("---\n", "---\n# mine\n", 1))
    set_domain(repo, "example.org")
    with pytest.raises(UserError) as raised:
        run(repo, check=True)
    assert f"  {CONFIGMAP}: differs (your edit merged into the new render)" in raised.value.lines
    assert "    +  domain: example.org" in raised.value.lines
    assert "    -# mine" not in raised.value.lines  # your edit is not part of the difference
    run(repo)
    run(repo, check=True)


def test_check_reports_a_missing_manifest(repo: Path) -> None:
    run(repo)
    (repo / ".configure-manifest.json").unlink()
    with pytest.raises(UserError) as raised:
        run(repo, check=True)
    assert "  .configure-manifest.json: missing" in raised.value.lines


def test_check_ignores_a_stale_inputs_digest(repo: Path) -> None:
    run(repo)
    manifest = repo / ".configure-manifest.json"
    text = manifest.read_text()
    digest = text.split('"inputs": "')[1].split('"')[0]
    manifest.write_text(text.replace(digest, "0" * 64))
    run(repo, check=True)


# --------------------------------------------------------------------------- failure paths


def test_template_error_leaves_the_tree_untouched(repo: Path, staging_root: Path) -> None:
    run(repo)
    before = snapshot(repo)
    bad = repo / "templates/config/kubernetes/apps/default/configmap.yaml.j2"
    bad.write_text(bad.read_text() + "  broken: #{ no_such_variable }#\n")
    with pytest.raises(UserError) as raised:
        run(repo)
    assert "template error" in raised.value.lines[0]
    assert "no_such_variable" in raised.value.lines[0]
    assert snapshot(repo) | {bad.relative_to(repo).as_posix(): b""} == before | {
        bad.relative_to(repo).as_posix(): b""
    }
    assert staging_leftovers(staging_root) == []


def test_kustomize_failure_leaves_the_tree_untouched(repo: Path, staging_root: Path) -> None:
    run(repo)
    kustomization = repo / "templates/config/kubernetes/apps/default/kustomization.yaml.j2"
    kustomization.write_text(kustomization.read_text() + "  - ./missing.yaml\n")
    before = snapshot(repo)
    with pytest.raises(UserError) as raised:
        run(repo)
    assert any(
        line.startswith("kubernetes/apps/default: kustomize build failed") for line in raised.value.lines
    )
    assert snapshot(repo) == before
    assert staging_leftovers(staging_root) == []


def test_invalid_rendered_yaml_is_reported_with_its_position(repo: Path) -> None:
    (repo / "templates/config/talos/talenv.yaml.j2").write_text("---\ntalosVersion: [v1\n")
    before = snapshot(repo)
    with pytest.raises(UserError) as raised:
        run(repo)
    assert any(
        line.startswith("talos/talenv.yaml:3:1: rendered YAML does not parse") for line in raised.value.lines
    )
    assert snapshot(repo) == before


def sops_failing_to_encrypt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_encrypt: str) -> None:
    """A ``sops`` first on PATH that runs the shell ``on_encrypt`` and fails when asked to
    encrypt, and is the real sops otherwise."""
    real_sops = shutil.which("sops")
    fakes = FakeTools(tmp_path / "fakebin").install("sops")
    (tmp_path / "fakebin" / "sops").write_text(
        f'#!/bin/sh\ncase "$*" in *--encrypt*) {on_encrypt}; exit 1;; esac\nexec {real_sops} "$@"\n'
    )
    monkeypatch.setenv("PATH", fakes.path_env())


def test_sops_failure_leaves_no_plaintext_and_the_tree_untouched(
    repo: Path, staging_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(repo)
    cluster = repo / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("example/home-ops", "example/other"))
    (repo / "templates/config/kubernetes/apps/default/secret.sops.yaml.j2").write_text(
        MINIMAL_TEMPLATES["kubernetes/apps/default/secret.sops.yaml.j2"] + "  repo: #{ repository_name }#\n"
    )
    before = snapshot(repo)
    # Decrypt through the real sops, fail every encryption.
    sops_failing_to_encrypt(tmp_path, monkeypatch, "echo 'sops: failed to encrypt: boom' >&2")
    with pytest.raises(UserError) as raised:
        run(repo)
    assert raised.value.lines == [
        "kubernetes/apps/default/secret.sops.yaml: sops could not encrypt it: sops: failed to encrypt: boom"
    ]
    assert snapshot(repo) == before
    assert_no_plaintext(repo)
    assert staging_leftovers(staging_root) == []


def test_interrupt_during_the_pipeline_leaves_the_tree_untouched(
    repo: Path, staging_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(repo)
    cluster = repo / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("example.com", "example.net"))
    before = snapshot(repo)

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "validate_staged", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(repo)
    assert snapshot(repo) == before
    assert staging_leftovers(staging_root) == []


def test_a_failing_swap_restores_every_original(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run(repo)
    cluster = repo / "cluster.yaml"
    cluster.write_text(
        cluster.read_text().replace("example.com", "example.net").replace("192.168.1.145", "192.168.1.140")
    )
    before = snapshot(repo)
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src: str, dst: str) -> None:
        if "/swap/new/" in str(src):
            calls["n"] += 1
            if calls["n"] == 2:
                raise PermissionError(errno.EACCES, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(swap.os, "replace", flaky_replace)
    with pytest.raises(UserError) as raised:
        run(repo)
    (line,) = raised.value.lines
    assert line.startswith("could not write the new files, so nothing was changed: ")
    assert line.endswith(": Permission denied") and swap.SCRATCH not in line
    assert snapshot(repo) == before
    assert not swap.pending(repo)
    assert sorted(p.name for p in swap.scratch(repo).iterdir()) == []


def test_config_problems_stop_before_anything_is_rendered(repo: Path) -> None:
    (repo / "nodes.yaml").write_text("nodes:\n  - name: BAD\n")
    before = snapshot(repo)
    with pytest.raises(UserError) as raised:
        run(repo)
    assert any(
        line.startswith("nodes.yaml:2:11: nodes[0].name: 'BAD' must be a DNS label")
        for line in raised.value.lines
    )
    assert snapshot(repo) == before


def test_wrong_age_key_is_one_clear_line(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = tmp_path / "other-operator"
    shutil.copytree(EXAMPLE_OPERATOR, operator)
    from tasks.lib.secrets import keys

    (operator / "age.key").unlink()
    (operator / "age.key").write_text(keys.age_key_file()[0])
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(operator))
    with pytest.raises(UserError) as raised:
        run(repo)
    assert len(raised.value.lines) == 1
    assert raised.value.lines[0].startswith(
        "cluster.sops.yaml: sops could not decrypt it: no key in the age key file"
    )


def test_plaintext_token_in_a_committed_cluster_yaml_is_refused(repo: Path) -> None:
    cluster = repo / "cluster.yaml"
    cluster.write_text(cluster.read_text() + "cloudflare_token: plaintext-token\n")
    with pytest.raises(UserError) as raised:
        run(repo)
    assert "cluster.yaml: cloudflare_token: a plaintext secret" in raised.value.lines[0]
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/cluster.yaml\n")
    git(repo, "rm", "-q", "--cached", "cluster.yaml")
    run(repo)  # the Taskfile template's layout (cluster.yaml git-ignored) still works
    assert_no_plaintext(repo)


# --------------------------------------------------------------------------- through `inv`


def inv(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tasks", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
    )


def test_inv_configure_reports_config_errors_without_traceback(repo: Path) -> None:
    (repo / "cluster.yaml").write_text("node_cidr: 10.0.0.1/8\nnode_cidrs: x\n")
    result = inv(repo, "configure")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cluster.yaml:1:12: node_cidr: '10.0.0.1/8' has host bits set — use 10.0.0.0/8" in result.stderr
    assert "cluster.yaml:2:1: node_cidrs: unknown key — did you mean node_cidr?" in result.stderr


def test_init_then_configure_never_stages_a_plaintext_secret(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOME_OPS_OPERATOR_DIR")
    env = {k: v for k, v in os.environ.items() if k != "HOME_OPS_OPERATOR_DIR"}
    result = inv(repo, "init", "configure", env=env)
    assert result.returncode == 0, result.stderr
    git(repo, "add", "-A")
    staged = git(repo, "diff", "--cached", "--name-only").split()
    assert (
        "age.key" not in staged
        and "github-deploy.key" not in staged
        and "github-push-token.txt" not in staged
    )
    secrets = [
        (repo / "age.key").read_text().splitlines()[-1],
        "".join((repo / "github-deploy.key").read_text().splitlines()[1:-1]),
        (repo / "github-push-token.txt").read_text().strip(),
        TOKEN,
    ]
    for name in git(repo, "ls-files").split():
        content = (repo / name).read_text(errors="replace")
        flat = content.replace("\n", "").replace(" ", "")
        for secret in secrets:
            assert secret not in content and secret.replace(" ", "") not in flat, (
                f"{name} holds a plaintext secret"
            )


def test_dry_run_renders_and_validates_but_writes_nothing(repo: Path) -> None:
    before = snapshot(repo)
    result = inv(repo, "--dry", "configure")
    assert result.returncode == 0, result.stderr
    assert "configure: would write kubernetes/apps/default/configmap.yaml" in result.stdout
    assert snapshot(repo) == before


def test_talhelper_validates_the_staged_talconfig_when_installed(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = FakeTools(tmp_path / "fakebin").install("talhelper")
    # What the real talhelper prints: the problems on stdout, a bare log timestamp on stderr.
    issues = (
        'There are issues with your talhelper config file:\nfield: "kubernetesVersion"\n'
        '  * compatibility with version 1.99.0 is not supported\nfield: "talosVersion"\n'
        '  * "v1.99.0" is not a supported Talos version\n'
    )
    fakes.script("talhelper", ("validate", {"exit": 1, "stdout": issues, "stderr": "2026/12/03 12:26:02 \n"}))
    monkeypatch.setenv("PATH", fakes.path_env())
    before = snapshot(repo)
    with pytest.raises(UserError) as raised:
        run(repo)
    lines = raised.value.lines
    start = lines.index(
        "talos/talconfig.yaml (from templates/config/talos/talconfig.yaml.j2): talhelper validate failed:"
    )
    assert lines[start + 1 : start + 7] == [
        "  There are issues with your talhelper config file:",
        '  field: "kubernetesVersion"',
        "    * compatibility with version 1.99.0 is not supported",
        '  field: "talosVersion"',
        '    * "v1.99.0" is not a supported Talos version',
        "fix: the installed talhelper is older than talenv.yaml's talosVersion: install the talhelper "
        "version .mise.toml pins (`mise install`, or `inv doctor` to see what is installed)",
    ]
    assert not any("12:26:02" in line for line in lines)
    assert snapshot(repo) == before
    (call,) = fakes.calls("talhelper")
    assert call.argv == ["validate", "talconfig", "talconfig.yaml", "--env-file", "talenv.yaml"]
    assert Path(call.cwd).name == "talos" and not Path(call.cwd).is_relative_to(repo)
    fakes.script("talhelper", ("validate", {"exit": 0, "stdout": "ok", "stderr": ""}))
    said: list[str] = []
    pipeline.configure(repo_paths(repo), pipeline.Options(say=said.append))
    assert any(line.startswith("validated") and "talhelper" not in line for line in said)


def tool_of(argv: tuple[str, ...]) -> str:
    for flag, tool in (("--encrypt", "encrypt"), ("--decrypt", "decrypt"), ("kustomize", "kustomize")):
        if flag in argv[:2]:
            return tool
    return argv[0]


class ToolEvents:
    """What the pipeline's tool batches did, in order: ("start", tool) when a batch starts,
    ("done", tool) when its outcomes are first collected, ("plan", "") when the plan is
    made; and the talconfig.yaml each talhelper run was given. A tool is "encrypt",
    "decrypt" (sops), "kustomize" (or kubectl's), or the program's name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        self.talconfigs: list[str] = []
        real_started, real_plan = pipeline.started, pipeline.plan.make_plan

        @contextlib.contextmanager
        def started(commands: Any, **kwargs: Any) -> Any:
            tools = sorted({tool_of(command.argv) for command in commands})
            for command in commands:
                if command.argv[0] == "talhelper":
                    self.talconfigs.append((Path(command.cwd) / "talconfig.yaml").read_text())
            self.events += [("start", tool) for tool in tools]
            with real_started(commands, **kwargs) as batch:
                real_wait = batch.wait

                def wait() -> Any:
                    outcomes = real_wait()
                    done = [("done", tool) for tool in tools]
                    if done and done[0] not in self.events:
                        self.events += done
                    return outcomes

                batch.wait = wait  # type: ignore[method-assign]
                yield batch

        def make_plan(*args: Any) -> Any:
            self.events.append(("plan", ""))
            return real_plan(*args)

        monkeypatch.setattr(pipeline, "started", started)
        monkeypatch.setattr(pipeline.plan, "make_plan", make_plan)

    def at(self, event: tuple[str, str]) -> int:
        return self.events.index(event)


def test_talhelper_and_kustomize_start_while_the_earlier_stages_still_run(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """talhelper starts once the render stands, while sops still encrypts; kustomize once
    the ciphertext is in, before the plan is made; neither runs twice when nothing they
    read changed."""
    fakes = FakeTools(tmp_path / "fakebin").install("talhelper")
    fakes.script("talhelper", ("validate", {"exit": 0, "stdout": "", "stderr": ""}))
    monkeypatch.setenv("PATH", fakes.path_env())
    tools = ToolEvents(monkeypatch)
    run(repo)
    assert tools.at(("start", "encrypt")) < tools.at(("start", "talhelper")) < tools.at(("done", "encrypt"))
    assert tools.at(("done", "encrypt")) < tools.at(("start", "kustomize")) < tools.at(("plan", ""))
    assert tools.events.count(("start", "talhelper")) == 1 == len(fakes.calls("talhelper"))
    assert tools.events.count(("start", "kustomize")) == 1


def test_an_early_check_is_run_again_when_a_merged_edit_changed_what_it_read(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = FakeTools(tmp_path / "fakebin").install("talhelper")
    fakes.script("talhelper", ("validate", {"exit": 0, "stdout": "", "stderr": ""}))
    monkeypatch.setenv("PATH", fakes.path_env())
    run(repo)
    talconfig = repo / "talos/talconfig.yaml"
    talconfig.write_text(talconfig.read_text().replace("---\n", "---\n# mine: keep this\n", 1))
    set_domain(repo, "example.org")
    tools = ToolEvents(monkeypatch)
    summary = run(repo)
    assert "talos/talconfig.yaml" in summary.edits_kept + summary.merged
    assert tools.events.count(("start", "talhelper")) == 2
    assert ["# mine" in text for text in tools.talconfigs] == [False, True]
    # Any changed file builds again: a kustomization may name files anywhere.
    assert tools.events.count(("start", "kustomize")) == 2


def test_a_talhelper_warning_is_in_the_summary(repo: Path, tmp_path: Path, monkeypatch) -> None:
    fakes = FakeTools(tmp_path / "fakebin").install("talhelper")
    warning = '  * WARNING: "v1.13.8" might not be compatible with this Talhelper version you\'re using\n'
    fakes.script(
        "talhelper", ("validate", {"exit": 0, "stdout": f"There are issues:\n{warning}", "stderr": ""})
    )
    monkeypatch.setenv("PATH", fakes.path_env())
    said: list[str] = []
    pipeline.configure(repo_paths(repo), pipeline.Options(say=said.append))
    (validated,) = [line for line in said if line.startswith("validated")]
    assert validated.endswith(
        '; talos/talconfig.yaml: talhelper WARNING: "v1.13.8" might not be compatible with this '
        "Talhelper version you're using"
    )


def test_a_failing_tool_that_echoes_its_input_prints_no_secret(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(repo)
    (repo / "templates/config/kubernetes/apps/default/secret.sops.yaml.j2").write_text(
        MINIMAL_TEMPLATES["kubernetes/apps/default/secret.sops.yaml.j2"] + "  more: x\n"
    )
    # Decrypt through the real sops; on encrypt, echo the plaintext it was fed and fail.
    sops_failing_to_encrypt(tmp_path, monkeypatch, 'printf "bad input: " >&2; tr "\\n" " " >&2')
    with pytest.raises(UserError) as raised:
        run(repo)
    text = "\n".join(raised.value.lines)
    assert "sops could not encrypt it: bad input: " in text and "***" in text  # the echo, masked
    assert TOKEN not in text
    deploy_key = (EXAMPLE_OPERATOR / "github-deploy.key").read_text().splitlines()[1]
    assert deploy_key not in text


def test_registered_secrets_are_masked_in_every_tool_error() -> None:
    from tasks.lib.tools.runner import Command, register_secrets, run_one

    secret = "s3cr3t-value-for-redaction-test"
    register_secrets([f"multi\n{secret}\nline"])
    outcome = run_one(Command(("sh", "-c", f"echo 'leaked {secret}' >&2; exit 3")))
    assert secret not in outcome.stderr and secret not in outcome.problem
    assert "leaked ***" in outcome.stderr


def test_configure_says_when_talconfig_was_not_validated(repo: Path, monkeypatch) -> None:
    import shutil

    from tasks.lib.tools.runner import find_tool

    # A machine may have talhelper installed: take its directory off PATH for this test.
    path = os.environ.get("PATH", "").split(os.pathsep)
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in path if not shutil.which("talhelper", path=d)))
    assert find_tool("talhelper") is None
    lines: list[str] = []
    pipeline.configure(repo_paths(repo), pipeline.Options(say=lines.append))
    (validated,) = [line for line in lines if line.startswith("validated")]
    assert "talos/talconfig.yaml NOT validated: talhelper is not installed" in validated
    assert "install it with `" in validated and "talhelper" in validated


#: Modules of tasks.lib.config a configure run loads whose code does not decide what is
#: rendered (the pipeline around the render, the manifest, the swap, error messages).
NOT_RENDER_CODE = {"configure", "cache", "manifest", "swap", "blame", "config"}


def test_the_render_cache_names_every_module_a_render_loads(example_repo: Path) -> None:
    """The inputs digest covers the code of :data:`RENDER_CODE` by module name: a module
    added to the render (or split out of one) must be listed, or a change to it would leave
    an old render looking up to date."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tasks", "configure", "--dry", "--force"],
        cwd=example_repo,
        env={**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and ("tasks.lib.config" in line or "tasks.lib.gitremote" in line)
    }
    # the config package, and the git address parsing the model derives the clone URL with
    names = {
        name.removeprefix("tasks.lib.config.")
        for name in loaded
        if name.startswith("tasks.lib.config") or name == "tasks.lib.gitremote"
    }
    listed = {name.removeprefix("tasks.lib.config.") for name in cache.RENDER_CODE}
    assert names - NOT_RENDER_CODE - {"tasks.lib.config"} <= listed
    assert listed <= names  # and every listed module is really part of a render
    assert all(cache.module_file(name).is_file() for name in cache.RENDER_CODE)
