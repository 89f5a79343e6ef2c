"""The secret guard (``inv sops.check``, its hook, CI): sops files by sops's own rules (checked
against files the real sops wrote), Kubernetes Secrets in every shape Kubernetes accepts, key
shapes through the real gitleaks, one scope for task and hook, and every suggested fix run."""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from invoke.exceptions import Exit

from tasks import sops
from tasks.lib.secrets import scan, structure
from tasks.lib.secrets.sopsfile import encryption_state
from tasks.lib.tools.runner import find_tool
from tests.conftest import EXAMPLE_OPERATOR, ROOT, copy_repo, git, rewrite_secrets
from tests.test_sops_tasks import context, write

EXAMPLE_PUBLIC = "age1k44wzccydq23zv58mkx3w5h0pzp4qmhka8dht50cdvyf3zk98pjqtsdvsz"
FAKE_ENC = "ENC[AES256_GCM,data:bm90LXJlYWw=,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAA,type:str]"
PASSWORD = "correct-horse-battery-staple-42"  # a plaintext value that must never be printed


def real_sops(text: str, *options: str, store: str = "yaml") -> str:
    """``text`` encrypted by the real sops to the test-only key, with ``options`` (a rule)."""
    result = subprocess.run(
        [find_tool("sops") or "sops", "--encrypt", "--age", EXAMPLE_PUBLIC, *options,
         "--input-type", store, "--output-type", store, "/dev/stdin"],
        input=text, capture_output=True, text=True, check=True, timeout=60, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    return result.stdout


def edit_back(ciphertext: str) -> str:
    """The password of an encrypted file edited back to plaintext."""
    import re

    edited = re.sub(r"(password: )ENC\[[^\]]*\]", rf"\g<1>{PASSWORD}", ciphertext, count=1)
    assert edited != ciphertext
    return edited


def private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# --------------------------------------------------------------------------- sops's rules


SECRET_DOC = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: demo
stringData:
  password: {PASSWORD}
  # a comment
  user: admin
"""


@pytest.mark.parametrize(
    "options",
    [
        (),
        ("--encrypted-regex", "^(data|stringData)$"),
        ("--unencrypted-regex", "^(apiVersion|kind|metadata)$"),
        ("--encrypted-suffix", "Data"),
        ("--unencrypted-suffix", "_plain"),
        ("--mac-only-encrypted", "--encrypted-regex", "^stringData$"),
    ],
    ids=lambda o: " ".join(o) or "default",
)
def test_files_the_real_sops_wrote_are_encrypted_and_an_edited_value_is_not(options: tuple[str, ...]) -> None:
    ciphertext = real_sops(SECRET_DOC, *options)
    assert structure.sops_problems(ciphertext, "yaml") == []
    assert encryption_state(ciphertext, "x.sops.yaml") == "encrypted"
    edited = edit_back(ciphertext)
    problems = structure.sops_problems(edited, "yaml")
    assert [message for _, message in problems] == [
        "stringData.password: plaintext value in an encrypted file"
    ]
    assert encryption_state(edited, "x.sops.yaml") == "partial"


@pytest.mark.parametrize("store", ["json", "dotenv", "ini"])
def test_the_other_stores_sops_writes(store: str) -> None:
    plain = {
        "json": json.dumps({"token": PASSWORD, "nested": {"list": ["a", 1]}}),
        "dotenv": f"TOKEN={PASSWORD}\n# comment\nOTHER=x\n",
        "ini": f"[section]\ntoken = {PASSWORD}\n",
    }[store]
    ciphertext = real_sops(plain, store=store)
    assert structure.sops_problems(ciphertext, store) == []
    assert PASSWORD not in ciphertext
    edited = ciphertext.replace("ENC[AES256_GCM", "XNC[AES256_GCM", 1)  # the first value
    assert structure.sops_problems(edited, store)


def test_a_plaintext_file_with_a_sops_line_and_an_enc_comment_is_not_encrypted() -> None:
    comment = "# ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:str]"
    text = f"password: {PASSWORD}\n{comment}\nsops:\n  version: 3.11.0\n"
    messages = [message for _, message in structure.sops_problems(text, "yaml")]
    assert "password: plaintext value in an encrypted file" in messages
    assert any("without an encrypted MAC" in m for m in messages)


def test_the_creation_rule_of_sops_yaml_counts_too() -> None:
    narrow = real_sops(SECRET_DOC, "--encrypted-regex", "^user$")
    assert structure.sops_problems(narrow, "yaml") == []  # by its own rule
    rule = structure.Rule.of({"encrypted_regex": "^(data|stringData)$"})
    assert [m for _, m in structure.sops_problems(narrow, "yaml", rule)] == [
        "stringData.password: plaintext value in an encrypted file"
    ]


def test_a_go_regex_with_inline_flags_mid_pattern_is_read_as_sops_reads_it() -> None:
    """RE2 takes ``(?i)`` anywhere (Python only at the start): a file the real sops encrypted
    with such a rule is encrypted, and the rule still means what it says."""
    pattern = "((?i)(pass|key|^stringData))"
    ciphertext = real_sops(SECRET_DOC, "--encrypted-regex", pattern)
    assert structure.sops_problems(ciphertext, "yaml") == []
    assert "kind: Secret" in ciphertext  # left plaintext by the rule: not "everything matches"
    rule = structure.Rule.of({"encrypted_regex": pattern})
    assert rule.encrypts(["stringData", "user"]) and rule.encrypts(["API_KEY"])
    assert not rule.encrypts(["metadata", "name"])


def test_comment_rules_follow_sops() -> None:
    text = "a: 1\n# sops:enc\nb: 2\nc: 3\n"
    ciphertext = real_sops(text, "--encrypted-comment-regex", "sops:enc")
    assert structure.sops_problems(ciphertext, "yaml") == []
    assert "a: 1" in ciphertext and "c: 3" in ciphertext and "b: ENC[" in ciphertext


def holds_nothing(value: object) -> bool:
    """An empty string, or a list of nothing but those (however many)."""
    if isinstance(value, list):
        return all(holds_nothing(item) for item in value)
    return value in ("", None)


@settings(max_examples=15)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
        st.one_of(
            st.text(max_size=20), st.integers(), st.booleans(), st.lists(st.text(max_size=5), max_size=3)
        ),
        min_size=1,
        max_size=6,
    )
)
@example({"a": ["", ""]})  # sops keeps empty strings in a list as they are
def test_whatever_sops_encrypts_passes_and_any_value_put_back_fails(data: dict[str, object]) -> None:
    plain = json.dumps(data)
    ciphertext = real_sops(plain, store="json")
    assert structure.sops_problems(ciphertext, "json") == []
    document = json.loads(ciphertext)
    for key, value in data.items():
        if holds_nothing(value):
            continue  # sops leaves empty strings as they are: nothing was put back
        document[key] = value
        assert structure.sops_problems(json.dumps(document), "json"), key
        break


def test_an_alias_bomb_is_refused_within_the_budget() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = "\n".join(lines) + f"\nsops:\n  mac: {FAKE_ENC}\n  age: [x]\n"
    problems = structure.sops_problems(bomb, "yaml")
    assert problems and "too large to check" in problems[0][1]


# --------------------------------------------------------------------------- Secrets in every shape


SHAPES = {
    "list.yaml": "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Secret\n"
    f"    metadata: {{name: s}}\n    stringData: {{password: {PASSWORD}}}\n",
    "flow.yaml": f"{{apiVersion: v1, kind: Secret, metadata: {{name: s}}, stringData: {{p: {PASSWORD}}}}}\n",
    "quoted.yaml": '"apiVersion": "v1"\n"kind": "Secret"\n"metadata": {"name": "s"}\n'
    f'"stringData":\n  "p": "{PASSWORD}"\n',
    "indented.yaml": "    apiVersion: v1\n    kind: Secret\n    metadata:\n      name: s\n"
    f"    stringData:\n      p: {PASSWORD}\n",
    "secret.json": json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"p": PASSWORD}},
        indent=2,
    ),
    "escaped.yaml": '"\\x6bind": "\\u0053ecret"\napiVersion: v1\n'
    f"metadata: {{name: s}}\ndata: {{p: {PASSWORD}}}\n",
    "multi.yaml": "apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n---\n"
    f"apiVersion: v1\nkind: Secret\nstringData:\n  p: {PASSWORD}\n",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_secret_is_found_in_every_shape_kubernetes_accepts(name: str) -> None:
    (hit,) = structure.secrets_in(SHAPES[name])
    assert hit.keys and hit.line >= 1


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  url: ${SECRET_URL}\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  token: op://vault/item/token\n",
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData:\n  p: {FAKE_ENC}\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/service-account-token\n",
        "apiVersion: v1\nkind: ConfigMap\ndata:\n  password: not-a-secret-object\n",
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nspec:\n  data: [{secretKey: a}]\n",
    ],
    ids=["flux-substitution", "1password-reference", "encrypted", "no-data", "configmap", "external-secret"],
)
def test_what_is_not_a_plaintext_secret(text: str) -> None:
    assert structure.secrets_in(text) == []


# --------------------------------------------------------------------------- the whole guard


@pytest.fixture
def guarded(tmp_path: Path, gitleaks: str) -> Path:
    """A fresh clone of the bundled example: a committed git repository."""
    root = copy_repo(tmp_path / "repo")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def leaky_files() -> dict[str, str]:
    """Every leak of issue 22.5, built at run time (this file stays clean for the guard)."""
    pem = private_key_pem()
    b64 = base64.b64encode(pem.encode()).decode()
    return {
        "kubeconfig-backup.yaml": "apiVersion: v1\nkind: Config\nusers:\n  - name: admin\n    user:\n"
        f"      client-certificate-data: {base64.b64encode(b'cert' * 20).decode()}\n"
        f"      client-key-data: {b64}\n",
        "talos/talosconfig-copy.yaml": "context: home\ncontexts:\n  home:\n    endpoints: [10.0.0.1]\n"
        f"    key: {b64}\n",
        "docs/service-account.json": json.dumps({"type": "service_account", "private_key": pem}, indent=2),
        **{f"kubernetes/apps/default/shapes/{name}": text for name, text in SHAPES.items()},
        "kubernetes/apps/default/x/app/edited.sops.yaml": edit_back(
            real_sops(SECRET_DOC, "--encrypted-regex", "^stringData$")
        ),
        "kubernetes/apps/default/x/app/fake.sops.yaml": f"password: {PASSWORD}\n"
        "# ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:str]\nsops:\n  version: 3.11.0\n",
    }


def test_every_leak_is_caught_by_file_and_line_and_nothing_is_printed(
    guarded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = leaky_files()
    for name, text in files.items():
        write(guarded, name, text)
    with pytest.raises(Exit) as raised:
        sops.check(context(guarded))
    assert raised.value.code == 1
    err = capsys.readouterr().err
    for name in files:
        assert f"{name}:" in err, name
    assert PASSWORD not in err and "PRIVATE KEY" not in err
    assert "kubeconfig-backup.yaml:7: private key" in err
    assert "docs/service-account.json:3: private key" in err


def test_the_bundled_tree_is_clean_and_test_data_is_named(guarded: Path, capsys) -> None:
    sops.check(context(guarded))
    out = capsys.readouterr().out
    assert out.startswith("ok: ") and "test-data file(s) named in .gitleaks.toml" in out
    assert scan.check_repository(guarded) == []


def test_task_and_hook_check_the_same_files(guarded: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    files = leaky_files()
    for name, text in files.items():
        write(guarded, name, text)
    task = [str(f) for f in scan.check_repository(guarded)]
    monkeypatch.chdir(guarded)
    monkeypatch.setattr("tasks.lib.paths.ROOT", guarded)
    capsys.readouterr()
    assert scan.main([*sorted(files), "README.md", "tests/fixtures/example-operator/age.key"]) == 1
    hook = capsys.readouterr().err.splitlines()
    assert hook == task
    # The hook's config applies no exclude of its own: the scope is the guard's.
    from ruamel.yaml import YAML

    config = YAML(typ="safe").load((ROOT / ".pre-commit-config.yaml").read_text())
    assert "exclude" not in config and "files" not in config
    (hook_config,) = [h for r in config["repos"] for h in r["hooks"] if h["id"] == "secret-guard"]
    assert not {"exclude", "files", "types"} & set(hook_config)


def without_gitleaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository and a PATH with git alone (no gitleaks anywhere)."""
    import shutil

    root = copy_repo(tmp_path / "repo")
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(only_git))
    monkeypatch.setattr("tasks.lib.tools.runner.sys.executable", str(tmp_path / "empty" / "python"))
    return root


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_without_gitleaks_the_guard_refuses_to_pass(
    ci: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = without_gitleaks(tmp_path, monkeypatch)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(Exit) as raised:
        sops.check(context(root))
    assert raised.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("gitleaks not found") and "token and key check cannot run" in line


def test_on_a_workstation_without_gitleaks_the_guard_says_what_it_did_not_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = without_gitleaks(tmp_path, monkeypatch)
    monkeypatch.delenv("CI", raising=False)
    sops.check(context(root))
    out, err = capsys.readouterr()
    (warning,) = err.strip().splitlines()
    assert warning.startswith("warning: gitleaks not found") and "NOT checked" in warning
    assert out.startswith("ok: ") and "no token or key check: gitleaks missing" in out
    # The structural checks still run: a plaintext Secret is still refused.
    (root / "kubernetes" / "leak.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  password: hunter2hunter2\n"
    )
    with pytest.raises(Exit) as raised:
        sops.check(context(root))
    assert raised.value.code == 1
    assert "kubernetes/leak.yaml" in capsys.readouterr().err


def test_config_secrets_are_the_schema_keys_that_belong_in_cluster_sops_yaml() -> None:
    import dataclasses

    from tasks.lib.config.schema import ClusterSettings
    from tasks.lib.config.template_context import SECRET_CHECKS

    fields = {f.name for f in dataclasses.fields(ClusterSettings)}
    assert set(scan.CONFIG_SECRETS["cluster.yaml"]) == fields & set(SECRET_CHECKS)


# --------------------------------------------------------------------------- every fix, run


def test_moving_a_token_that_differs_from_cluster_sops_yaml_changes_nothing(
    guarded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    cluster = guarded / "cluster.yaml"
    cluster.write_text(cluster.read_text() + "cloudflare_token: another-value-entirely-0123456789abcd\n")
    before = {p: p.read_bytes() for p in (cluster, guarded / "cluster.sops.yaml")}
    with pytest.raises(Exit):
        sops.encrypt(context(guarded), path=["cluster.yaml"])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "holds a different value" in line and "another-value" not in line
    assert {p: p.read_bytes() for p in before} == before


def test_every_suggested_fix_is_one_command_that_works(
    guarded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME_OPS_OPERATOR_DIR", str(EXAMPLE_OPERATOR))
    app = "kubernetes/apps/default/demo/app"
    write(guarded, f"{app}/kustomization.yaml", "---\nresources:\n  - ./secret.yaml\n  - json-secret.json\n")
    write(guarded, f"{app}/secret.yaml", SHAPES["multi.yaml"])
    write(guarded, f"{app}/json-secret.json", SHAPES["secret.json"].replace('"s"', '"j"'))
    write(guarded, f"{app}/plain.sops.yaml", SECRET_DOC)
    edited = edit_back(real_sops(SECRET_DOC, "--encrypted-regex", "^(data|stringData)$"))
    write(guarded, f"{app}/edited.sops.yaml", edited)
    cluster = guarded / "cluster.yaml"
    token = "Zx81kQ2mW9aPq4Lr7sT1vB6nC3dE5fG0hJ8kLmNo"
    cluster.write_text(cluster.read_text() + f"cloudflare_token: {token}\n")
    rewrite_secrets(
        guarded,
        lambda plain: "".join(
            line for line in plain.splitlines(keepends=True) if not line.startswith("cloudflare_token:")
        ),
    )  # the Taskfile template's habit: the token in cluster.yaml
    with pytest.raises(Exit):
        sops.check(context(guarded))
    err = capsys.readouterr().err
    commands = sorted({line.split("`")[1] for line in err.splitlines() if "`inv sops.encrypt" in line})
    assert len(commands) == 5, err
    for command in commands:
        sops.encrypt(context(guarded), path=[command.split("--path ", 1)[1]])
    capsys.readouterr()
    sops.check(context(guarded))  # every finding fixed
    assert "ok:" in capsys.readouterr().out
    kustomization = (guarded / app / "kustomization.yaml").read_text()
    assert "./secret.sops.yaml" in kustomization and "json-secret.sops.yaml" in kustomization
    assert not (guarded / app / "secret.yaml").exists()
    assert token not in cluster.read_text() and "node_cidr:" in cluster.read_text()
    sops.decrypt(context(guarded), "cluster.sops.yaml")
    assert f"cloudflare_token: {token}" in capsys.readouterr().out
    sops.decrypt(context(guarded), f"{app}/edited.sops.yaml")
    assert f"password: {PASSWORD}" in capsys.readouterr().out  # the edited value, kept and encrypted
    sops.decrypt(context(guarded), f"{app}/secret.sops.yaml")
    assert PASSWORD in capsys.readouterr().out
