"""Hostile input to the config: whole-value patterns, free-form strings, derived addresses,
Unicode digits, oversized and non-regular files, alias bombs, and values that must render
to YAML with the same shape whatever a user types."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tasks.lib.config import constraints, document, network, schema
from tasks.lib.config.checks import load_config
from tasks.lib.config.constraints import GitBranch, git_ref_problem
from tasks.lib.errors import UserError
from tests.lib.config.test_checks import VALID_CLUSTER, errors_of, node, with_cluster, write
from tests.test_pipeline import MINIMAL_TEMPLATES, run, use_templates

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_SCOPED = [HealthCheck.function_scoped_fixture]


def only_error(tmp_path: Path, **kwargs: Any) -> list[str]:
    return errors_of(tmp_path, **kwargs)


# --------------------------------------------------------------------------- whole-value patterns


@pytest.mark.parametrize(
    ("cluster", "nodes", "key", "fix"),
    [
        ({}, {"name": "k8s-1\n"}, "nodes[0].name", "use k8s-1"),
        ({}, {"mac_addr": "00:00:5e:00:53:10\n"}, "nodes[0].mac_addr", "use 00:00:5e:00:53:10"),
        ({}, {"schematic_id": "a" * 64 + "\n"}, "nodes[0].schematic_id", "use " + "a" * 64),
        ({"cloudflare_domain": "example.com\n"}, {}, "cloudflare_domain", "use example.com"),
        ({"cloudflare_domain": "Example.COM"}, {}, "cloudflare_domain", "use example.com"),
        ({"node_ntp_servers": ["time.example.com\n"]}, {}, "node_ntp_servers", "use time.example.com"),
        ({"cluster_api_tls_sans": ["k8s.example.com "]}, {}, "cluster_api_tls_sans", "use k8s.example.com"),
        ({"repository_name": "me/home-ops\n"}, {}, "repository_name", "use me/home-ops"),
        ({"cilium_loadbalancer_mode": "DSR"}, {}, "cilium_loadbalancer_mode", "use dsr"),
    ],
)
def test_patterns_match_the_whole_value_and_suggest_the_fix(
    tmp_path: Path, cluster: dict[str, Any], nodes: dict[str, Any], key: str, fix: str
) -> None:
    lines = errors_of(tmp_path, with_cluster(**cluster), {"nodes": [node(**nodes)]})
    assert any(f": {key}: " in line and fix in line for line in lines), lines


# --------------------------------------------------------------------------- free-form strings


@pytest.mark.parametrize(
    "disk",
    [
        "/dev/sda",
        "/dev/nvme0n1",
        "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T123456X",
        "S4EWNX0R123456",
        "WD-WX12A3456789",
        "/dev/disk/by-path/pci-0000:00:17.0-ata-1",
    ],
)
def test_disks_that_are_accepted(tmp_path: Path, disk: str) -> None:
    config = load_config(*write(tmp_path, nodes={"nodes": [node(disk=disk)]}), root=tmp_path)
    assert config.nodes[0]["disk"] == disk


@pytest.mark.parametrize(
    "disk",
    [
        'ABC"\n    installDisk: /dev/sdb',
        "/dev/sda\n",
        "/dev/../etc/passwd",
        "sda b",
        "/dev/",
        "/dev/sd#a",
        "-rf",
        "ABC'",
        "/dev/sda: x",
        "{a}",
        "*",
    ],
)
def test_disks_that_are_refused(tmp_path: Path, disk: str) -> None:
    lines = errors_of(tmp_path, nodes={"nodes": [node(disk=disk)]})
    assert any(": nodes[0].disk: " in line for line in lines), lines
    assert all("\n" not in line for line in lines)


@pytest.mark.parametrize("module", ["nvidia", "nvidia_uvm", "i915", "zfs", "br-netfilter"])
def test_kernel_modules_accepted(tmp_path: Path, module: str) -> None:
    config = load_config(*write(tmp_path, nodes={"nodes": [node(kernel_modules=[module])]}), root=tmp_path)
    assert config.nodes[0]["kernel_modules"] == [module]


@pytest.mark.parametrize("module", ["", "nvidia\n", "a b", 'x"', "../x", "a" * 56, "mod=1", 5])
def test_kernel_modules_refused(tmp_path: Path, module: Any) -> None:
    lines = errors_of(tmp_path, nodes={"nodes": [node(kernel_modules=["ok", module])]})
    assert any(": nodes[0].kernel_modules: item 2:" in line for line in lines), lines


@pytest.mark.parametrize(
    ("branch", "reason"),
    [
        ("main # x", "may not contain ' '"),
        ("a..b", "'..'"),
        ("-x", "start with '-'"),
        ("HEAD", "HEAD"),
        ("a/.b", "start with '.'"),
        ("a.lock", ".lock"),
        ("a/", "slashes"),
        ("a//b", "slashes"),
        ("a@{b", "'@{'"),
        ("x~1", "'~'"),
        ("x^", "'^'"),
        ("a:b", "':'"),
        ("a?b", "'?'"),
        ("a*", "'*'"),
        ("a[b", "'['"),
        ("a\\b", "'\\\\'"),
        ("main\n", "control"),
        ("main.", "end with '.'"),
        ("a\u2028b", "control"),
    ],
)
def test_repository_branch_is_a_git_branch_name(tmp_path: Path, branch: str, reason: str) -> None:
    lines = errors_of(tmp_path, with_cluster(repository_branch=branch))
    assert any(": repository_branch: " in line and reason in line for line in lines), lines


@pytest.mark.parametrize("branch", ["main", "feature/x", "release-1.2", "a#b", "renovate/flux-2.x", "x/HEAD"])
def test_repository_branch_accepted(tmp_path: Path, branch: str) -> None:
    config = load_config(*write(tmp_path, with_cluster(repository_branch=branch)), root=tmp_path)
    assert config.cluster["repository_branch"] == branch


GIT = shutil.which("git")
REF_ALPHABET = st.sampled_from([*"ab/.-_@{}$~^:?*[\\ #lockHEAD\"'\t", "\x7f", "\x01", "é"])


@pytest.mark.skipif(GIT is None, reason="git is not installed")
@settings(max_examples=300, deadline=None)
@given(name=st.text(REF_ALPHABET, min_size=1, max_size=12))
@example(name="main # x")
@example(name=".lock")
@example(name="@")
def test_branch_rules_agree_with_git(name: str) -> None:
    assume(not name.startswith("@{-"))  # git resolves @{-N} against a repository's history
    assume("${" not in name)  # refused on purpose: Flux's variable substitution would rewrite it
    assert GIT is not None
    git_says = subprocess.run([GIT, "check-ref-format", "--branch", name], capture_output=True, check=False)
    assert (git_ref_problem(name) is None) == (git_says.returncode == 0), (name, git_ref_problem(name))


@pytest.mark.parametrize("name", ["me/.", "me/..", "me/a b", "me/x\n", "-me/x", "me/x/y", "/x"])
def test_repository_name_refused(tmp_path: Path, name: str) -> None:
    lines = errors_of(tmp_path, with_cluster(repository_name=name))
    assert any(": repository_name: " in line for line in lines), lines


def test_cloudflare_token_in_cluster_yaml_is_never_echoed(tmp_path: Path) -> None:
    lines = errors_of(tmp_path, with_cluster(cloudflare_token="secret value\nwith-newline"))
    assert any(": cloudflare_token: " in line for line in lines), lines
    assert not any("secret" in line for line in lines)


ADVERSARIAL = [
    'x"\n    installDisk: /dev/sdb',
    "x'\n  injected: 1",
    "a: b",
    "- x",
    "{a: 1}",
    "[x]",
    "*alias",
    "&anchor x",
    "!!python/object:os.system x",
    "x #comment",
    "| x",
    "> x",
    "%TAG ! x",
    "x\u2028y",
    "x\x85y",
    "x\x00",
    "\ufeffx",
    "${SECRET_DOMAIN}",
    "#{ age_key }#",
    "x\r\ny",
    "x\ty",
    "",
]
FREE_FORM = [
    ("cluster", key)
    for key in (
        "repository_branch",
        "repository_name",
        "cloudflare_domain",
        "node_ntp_servers",
        "cluster_api_tls_sans",
    )
] + [("node", key) for key in ("name", "disk", "kernel_modules", "mac_addr", "schematic_id")]


@pytest.mark.parametrize(("where", "key"), FREE_FORM)
def test_adversarial_strings_are_refused_by_every_free_form_key(tmp_path: Path, where: str, key: str) -> None:
    specs = schema.CLUSTER_SPECS if where == "cluster" else schema.NODE_SPECS
    for text in ADVERSARIAL:
        value = [text] if isinstance(specs[key].constraint, constraints.ListOf) else text
        if not constraints.is_set(value):
            continue  # an empty value means "use the default"
        assert specs[key].constraint.check(value) is not None, (key, text)
        cluster = with_cluster(**{key: value}) if where == "cluster" else None
        nodes = {"nodes": [node(**{key: value})]} if where == "node" else None
        lines = errors_of(tmp_path, cluster, nodes)
        assert lines and all("\n" not in line and "\x00" not in line for line in lines)


# --------------------------------------------------------------------------- integers


@pytest.mark.parametrize("value", ["６４５１４", "6451²", "٦٤٥١٤", "64514 ", "0x10", "1e3", 1.5, True])
def test_integers_are_ascii_digits(tmp_path: Path, value: Any) -> None:
    cluster = with_cluster(
        cilium_bgp_router_addr="192.168.1.1", cilium_bgp_router_asn=64513, cilium_bgp_node_asn=value
    )
    lines = errors_of(tmp_path, cluster)
    assert any(": cilium_bgp_node_asn: " in line and "whole number" in line for line in lines), lines


def test_mtu_with_superscript_digits_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    lines = errors_of(tmp_path, nodes={"nodes": [node(mtu="15⁰⁰")]})
    assert any(": nodes[0].mtu: " in line for line in lines), lines


# --------------------------------------------------------------------------- derived addresses


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"cluster_svc_cidr": "10.43.0.0/29"}, "cluster_svc_cidr", "CoreDNS takes host 10 of it — use a /28"),
        ({"cluster_svc_cidr": "10.43.0.0/30"}, "cluster_svc_cidr", "has 4 addresses"),
        ({"cluster_svc_cidr": "10.43.0.0/32"}, "cluster_svc_cidr", "kubernetes API service"),
        (
            {"cluster_svc_cidr": "10.0.0.0/8", "cluster_pod_cidr": "172.16.0.0/16"},
            "cluster_svc_cidr",
            "larger than Kubernetes allows — use a /12",
        ),
        ({"cluster_pod_cidr": "10.42.0.0/25"}, "cluster_pod_cidr", "each node takes a /24"),
        (
            {"node_cidr": "192.168.1.0/30", "cluster_api_addr": "192.168.1.2"},
            "node_cidr",
            "has 2 host addresses, but 6 are needed",
        ),
    ],
)
def test_networks_too_small_for_what_is_taken_from_them(
    tmp_path: Path, changes: dict[str, Any], key: str, message: str
) -> None:
    lines = errors_of(tmp_path, with_cluster(**changes))
    assert any(f": {key}: " in line and message in line for line in lines), lines


def test_pod_cidr_must_hold_a_range_per_node(tmp_path: Path) -> None:
    nodes = {"nodes": [node(i, controller=i == 0) for i in range(3)]}
    lines = errors_of(tmp_path, with_cluster(cluster_pod_cidr="10.42.0.0/23"), nodes)
    assert any(
        "cluster_pod_cidr: 10.42.0.0/23 is too small" in line and "need a /22" in line for line in lines
    )
    load_config(*write(tmp_path, with_cluster(cluster_pod_cidr="10.42.0.0/22"), nodes), root=tmp_path)


def test_smallest_service_cidr_that_works_renders_coredns(tmp_path: Path) -> None:
    config = load_config(*write(tmp_path, with_cluster(cluster_svc_cidr="10.43.0.0/28")), root=tmp_path)
    assert config.cluster["cluster_svc_cidr"] == "10.43.0.0/28"


def test_every_address_the_templates_derive_is_checked() -> None:
    """Every ``KEY | nthhost(N)`` in the templates is listed in RESERVED_HOSTS, so the
    validator refuses a network too small for it before the render could crash."""
    used = set()
    for template in (ROOT / "templates").rglob("*.j2"):
        for key, index in re.findall(r"(\w+)\s*\|\s*nthhost\(\s*(-?\d+)\s*\)", template.read_text()):
            used.add((key, int(index)))
    assert used, "no nthhost use found: update this test"
    reserved = {(key, index) for key, index, _ in network.RESERVED_HOSTS}
    assert used <= reserved, used - reserved


# --------------------------------------------------------------------------- bounded input


NOT_REGULAR = "not a regular file (a pipe, socket or device)"
OUTSIDE = "outside the repository — refused"


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (os.mkfifo, f"cluster.yaml: {NOT_REGULAR}"),  # would hang a plain open()
        (lambda path: path.symlink_to("/dev/zero"), f"cluster.yaml: a symlink to /dev/zero, {OUTSIDE}"),
        (lambda path: path.symlink_to("/dev/null"), f"cluster.yaml: a symlink to /dev/null, {OUTSIDE}"),
        (lambda path: path.symlink_to(path.parent / "fifo"), f"cluster.yaml: {NOT_REGULAR}"),
        (Path.mkdir, "cluster.yaml: is a directory, not a file"),
        (lambda path: path.symlink_to(path.parent / "missing"), "cluster.yaml not found"),
    ],
)
def test_only_regular_files_are_read(tmp_path: Path, replace: Any, expected: str) -> None:
    cluster, nodes = write(tmp_path)
    os.mkfifo(tmp_path / "fifo")  # a link to it stays inside: refused for what it is
    cluster.unlink()
    replace(cluster)
    with pytest.raises(UserError) as raised:
        load_config(cluster, nodes, root=tmp_path)
    assert len(raised.value.lines) == 1 and raised.value.lines[0].startswith(expected), raised.value.lines


def test_a_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    huge = "# padding\n" * (document.MAX_FILE_BYTES // 10 + 1)
    lines = errors_of(tmp_path, raw_cluster=huge)
    assert lines == ["cluster.yaml: too big (more than 256 KiB) for what it should hold"]


def test_not_utf8_is_one_line(tmp_path: Path) -> None:
    cluster, nodes = write(tmp_path)
    cluster.write_bytes(b"node_cidr: \xff\xfe\n")
    with pytest.raises(UserError) as raised:
        load_config(cluster, nodes, root=tmp_path)
    assert raised.value.lines == ["cluster.yaml:1: not UTF-8 text (byte 11)"]


def alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly_and_briefly(tmp_path: Path) -> None:
    lines = errors_of(tmp_path, raw_cluster=alias_bomb(9))  # 387 million values when expanded
    assert lines == [
        "cluster.yaml: holds more than 10000 values (counting YAML aliases) — a config is far smaller"
    ]


def test_a_self_referencing_document_is_refused(tmp_path: Path) -> None:
    lines = errors_of(tmp_path, raw_cluster="node_cidr: &x [*x]\nnode_dns_servers: &y {a: *y}\n")
    assert lines and all(line.startswith("cluster.yaml") and len(line) < 200 for line in lines), lines


def test_aliases_a_user_might_write_still_work(tmp_path: Path) -> None:
    raw = (
        "".join(f"{k}: {v}\n" for k, v in VALID_CLUSTER.items())
        + "node_dns_servers: &dns [1.1.1.1]\ncluster_api_tls_sans: []\n"
    )
    config = load_config(*write(tmp_path, raw_cluster=raw), root=tmp_path)
    assert config.cluster["node_dns_servers"] == ["1.1.1.1"]


@pytest.mark.parametrize("key", ["repository_branch", "cloudflare_domain", "node_cidr", "bogus" * 100])
def test_messages_never_echo_a_long_value(tmp_path: Path, key: str) -> None:
    value = "x" * 100_000
    lines = errors_of(tmp_path, with_cluster(**{key: value}))
    assert lines and all(len(line) < 400 for line in lines), [line[:500] for line in lines]


def test_long_list_values_are_refused(tmp_path: Path) -> None:
    lines = errors_of(tmp_path, with_cluster(node_dns_servers=["1.1.1.1"] * 100))
    assert any("node_dns_servers: has 100 items — at most 8" in line for line in lines), lines


# --------------------------------------------------------------------------- mapping back to keys


def test_blame_names_the_key_and_line_of_a_value(tmp_path: Path) -> None:
    config = load_config(*write(tmp_path, nodes={"nodes": [node(disk="S4EWNX0R123456")]}), root=tmp_path)
    found = config.blame("      serial: S4EWNX0R123456")
    assert [str(o) for o in found] == ["nodes.yaml:5:9: nodes[0].disk"], found
    assert config.blame("nothing from the config here") == []
    sans = config.blame('  - "192.168.1.145"')
    assert [o.key for o in sans] == ["cluster_api_addr"]


# --------------------------------------------------------------------------- properties


safe_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
)
hostile_values = st.recursive(
    safe_values,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(key=st.sampled_from(sorted(schema.CLUSTER_KEYS)), value=hostile_values)
def test_any_value_for_any_cluster_key_is_valid_or_one_line_per_problem(
    tmp_path: Path, key: str, value: Any
) -> None:
    try:
        load_config(*write(tmp_path, {**VALID_CLUSTER, key: value}), root=tmp_path)
    except UserError as error:
        assert error.lines and all("\n" not in line and len(line) < 400 for line in error.lines)


@settings(max_examples=200, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(key=st.sampled_from(sorted(schema.NODE_KEYS)), value=hostile_values)
def test_any_value_for_any_node_key_is_valid_or_one_line_per_problem(
    tmp_path: Path, key: str, value: Any
) -> None:
    try:
        config = load_config(*write(tmp_path, nodes={"nodes": [node(**{key: value})]}), root=tmp_path)
    except UserError as error:
        assert error.lines and all("\n" not in line and len(line) < 400 for line in error.lines)
    else:
        convert = schema.NODE_SPECS[key].constraint.convert
        expected = (
            schema.to_template(convert(value)) if constraints.is_set(value) else schema.NODE_DEFAULTS[key]
        )
        assert config.nodes[0][key] == expected


#: Branch names are drawn from what git allows, weighted to the characters YAML gives a meaning
#: (so most examples pass the branch check and reach the YAML assertion), and, short, with some
#: that git refuses (so the check's refusals are exercised too).
BRANCH_ALPHABET = "ab9-_./#&!|>'\"%@{},=+;`é$"
REFUSED_IN_BRANCHES = " ~^:?*[\\\x00\u2028"


@settings(max_examples=300, deadline=None)
@given(
    value=st.text(alphabet=BRANCH_ALPHABET, max_size=30)
    | st.text(alphabet=BRANCH_ALPHABET + REFUSED_IN_BRANCHES, max_size=6)
)
def test_accepted_branches_are_plain_yaml_after_refs_heads(value: str) -> None:
    """What the branch check accepts stays one scalar where the template puts it."""
    from ruamel.yaml import YAML

    assume(GitBranch().check(value) is None)
    document = YAML(typ="safe", pure=True).load(f"ref: refs/heads/{value}\n")
    assert document == {"ref": f"refs/heads/{value}"}


def test_a_rendered_file_that_does_not_parse_names_the_config_key(tmp_path: Path) -> None:
    from tasks.lib.config.configure import yaml_problems

    config = load_config(*write(tmp_path, nodes={"nodes": [node(disk="S4EWNX0R123456")]}), root=tmp_path)
    out = tmp_path / "out"
    (out / "talos").mkdir(parents=True)
    (out / "talos" / "talconfig.yaml").write_text("nodes:\n  - serial: [S4EWNX0R123456\n    other: x\n")
    (problem,) = yaml_problems(out, config)
    assert problem.startswith("talos/talconfig.yaml:")
    assert problem.endswith(" — from nodes.yaml:5:9: nodes[0].disk"), problem
    assert yaml_problems(out) == [problem.split(" — from")[0]]  # without the config: as before


# --------------------------------------------------------------------------- rendering property


def template_environment() -> Any:
    """The templates as makejinja loads them (delimiters, strict undefined, the plugin's
    filters), without makejinja's file walking, so one example renders in milliseconds."""
    import importlib.util
    import tomllib

    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    settings_ = tomllib.loads((ROOT / "makejinja.toml").read_text())["makejinja"]
    delimiters = {f"{k}_string": v for k, v in settings_["delimiter"].items()}
    env = Environment(
        loader=FileSystemLoader(ROOT / "templates" / "config"), undefined=StrictUndefined, **delimiters
    )
    spec = importlib.util.spec_from_file_location(
        "home_ops_plugin_for_tests", ROOT / "templates/scripts/plugin.py"
    )
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    for function in plugin.Plugin.filters(None):  # the plugin's filter list (it needs no state)
        env.filters[function.__name__] = function
    return env


ENV: Any = None
TEMPLATES = sorted(
    str(p.relative_to(ROOT / "templates" / "config"))
    for p in (ROOT / "templates" / "config").rglob("*.j2")
    if not p.name.endswith(".partial.yaml.j2")
)


SECRETS = """\
cloudflare_token: tttttttttttttttttttttttttttttttttttttttt
cloudflare_tunnel:
  AccountTag: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
  TunnelID: 12345678-1234-1234-1234-123456789012
  TunnelSecret: ssssssssssssssssssssssssssssssssssssssssssss
onepassword_connect:
  credentials: '{"a":1}'
  token: oooooooooooooooooooo
"""


def template_data(config: schema.ClusterConfig, directory: Path) -> dict[str, Any]:
    """What templates see, built by the real context builder from made-up secrets."""
    from tasks.lib.config.template_context import build_context
    from tasks.lib.paths import repo_paths
    from tasks.lib.secrets.keys import OperatorFiles

    (directory / "cluster.sops.yaml").write_text(SECRETS)  # read for key positions only
    operator = OperatorFiles(
        "AGE-SECRET-KEY-1X", "age1x", "-----BEGIN-----\nx\n-----END-----\n", "ssh-ed25519 x", "p"
    )
    return build_context(repo_paths(directory), lambda _: SECRETS, config, operator).data


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every mapping key of a YAML document as a path, list positions collapsed."""
    if isinstance(value, dict):
        paths = set()
        for key, inner in value.items():
            paths.add(f"{prefix}.{key}")
            paths |= key_paths(inner, f"{prefix}.{key}")
        return paths
    if isinstance(value, list):
        return set().union(*(key_paths(inner, f"{prefix}[]") for inner in value)) if value else set()
    return set()


def render_shape(data: dict[str, Any]) -> dict[str, list[set[str]]]:
    """Each template's rendered documents as key paths; a parse failure fails the test."""
    import yaml

    global ENV
    ENV = ENV or template_environment()
    shapes = {}
    for name in TEMPLATES:
        text = ENV.get_template(name).render(data)
        if name.endswith((".yaml.j2", ".yml.j2")):
            documents = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
            shapes[name] = [key_paths(d) for d in documents]
    return shapes


SHAPE_CLUSTER = {
    **VALID_CLUSTER,
    "node_vlan_tag": 20,
    "cluster_api_tls_sans": ["k8s.example.com"],
    "node_ntp_servers": ["time.example.com"],
    "repository_branch": "main",
}
SHAPE_NODES = [
    node(0, disk="/dev/sda", kernel_modules=["nvidia"]),
    node(1, controller=False, disk="S4EWNX0R123456", kernel_modules=["zfs"]),
]


LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
HOSTS = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
DOMAINS = st.tuples(
    st.lists(LABEL, min_size=1, max_size=3), st.from_regex(r"[a-z]{2,6}", fullmatch=True)
).map(lambda parts: ".".join([*parts[0], parts[1]]))
PART = r"[A-Za-z0-9._:+@-]{1,12}"
DEVICES = st.from_regex(rf"/dev/{PART}(/{PART}){{0,3}}", fullmatch=True)
SERIALS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,20}", fullmatch=True)
REPOSITORIES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,10}/[A-Za-z0-9._-]{1,20}", fullmatch=True)
BRANCHES = st.from_regex(r"[A-Za-z0-9._/#\"'!&*%@{},|>\[\]=+$`é-]{1,24}", fullmatch=True)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[*FUNCTION_SCOPED, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    name=LABEL,
    module=st.from_regex(constraints.KERNEL_MODULE, fullmatch=True),
    device=DEVICES,
    serial=SERIALS,
    branch=BRANCHES,
    repository=REPOSITORIES,
    domain=DOMAINS,
    host=HOSTS,
)
@example(
    name="true",
    module="null",
    device="/dev/disk/by-id/x@y:1",
    serial="1e5",
    branch='a"b#c',
    repository="a/b",
    domain="no.yes",
    host="null",
)
def test_any_accepted_value_renders_to_yaml_with_the_same_keys(
    tmp_path: Path,
    name: str,
    module: str,
    device: str,
    serial: str,
    branch: str,
    repository: str,
    domain: str,
    host: str,
) -> None:
    cluster = {
        **SHAPE_CLUSTER,
        "repository_branch": branch,
        "repository_name": repository,
        "cloudflare_domain": domain,
        "node_ntp_servers": [host],
        "cluster_api_tls_sans": [host],
    }
    nodes = [
        {**SHAPE_NODES[0], "name": name, "disk": device, "kernel_modules": [module]},
        {**SHAPE_NODES[1], "disk": serial},
    ]
    try:
        config = load_config(*write(tmp_path, cluster, {"nodes": nodes}), root=tmp_path)
    except UserError:
        assume(False)  # what validation refuses never reaches a template
        return
    (tmp_path / "base").mkdir(exist_ok=True)
    baseline = load_config(
        *write(tmp_path / "base", SHAPE_CLUSTER, {"nodes": SHAPE_NODES}), root=tmp_path / "base"
    )
    assert render_shape(template_data(config, tmp_path)) == render_shape(
        template_data(baseline, tmp_path / "base")
    )


def test_the_render_digest_never_reads_a_fifo_or_a_device(tmp_path: Path) -> None:
    """configure digests its inputs before validating them: that must not hang or eat memory."""
    from tasks.lib.config.manifest import inputs_digest

    fifo, zero, regular = tmp_path / "fifo", tmp_path / "zero", tmp_path / "regular"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    regular.write_text("a: 1\n")
    first = inputs_digest(b"k", {p.name: p for p in (fifo, zero, regular, tmp_path / "missing")})
    regular.write_text("a: 2\n")
    assert inputs_digest(b"k", {p.name: p for p in (fifo, zero, regular, tmp_path / "missing")}) != first


def test_sops_never_reads_a_secrets_file_that_is_not_a_regular_file(tmp_path: Path) -> None:
    from tasks.lib.config.template_context import build_context
    from tasks.lib.paths import repo_paths
    from tasks.lib.secrets.keys import OperatorFiles

    config = load_config(*write(tmp_path), root=tmp_path)
    os.mkfifo(tmp_path / "cluster.sops.yaml")

    def decrypt(path: Path) -> str:
        raise AssertionError(f"sops would block on {path}")

    operator = OperatorFiles("AGE-SECRET-KEY-1X", "age1x", "k", "ssh-ed25519 x", "p")
    with pytest.raises(UserError) as raised:
        build_context(repo_paths(tmp_path), decrypt, config, operator)
    assert raised.value.lines == [f"cluster.sops.yaml: {NOT_REGULAR}"]


# --------------------------------------------------------------------------- through the pipeline


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(text))


def test_configure_names_the_config_key_behind_a_rendered_file_that_does_not_parse(
    example_repo: Path,
) -> None:
    use_templates(
        example_repo,
        {**MINIMAL_TEMPLATES, "talos/talenv.yaml.j2": "---\nrepository: [#{ repository_name }#\n"},
    )
    with pytest.raises(UserError) as raised:
        run(example_repo)
    (line,) = [line for line in raised.value.lines if "rendered YAML does not parse" in line]
    assert line.startswith("talos/talenv.yaml:3:1:"), line
    where = line_of(example_repo / "cluster.yaml", "repository_name:")
    assert line.endswith(f" — from cluster.yaml:{where}:18: repository_name"), line


def test_configure_refuses_a_service_network_too_small_for_coredns(example_repo: Path) -> None:
    """The bundled templates take the 10th host of the service network (CoreDNS): a /29
    used to crash the render with IndexError; now it is one line before anything renders."""
    cluster = example_repo / "cluster.yaml"
    text = re.sub(r"(?m)^#? ?cluster_svc_cidr:.*\n", "", cluster.read_text())
    cluster.write_text(text + "cluster_svc_cidr: 10.43.0.0/29\n")
    with pytest.raises(UserError) as raised:
        run(example_repo)
    where = line_of(cluster, "cluster_svc_cidr:")
    assert raised.value.lines == [
        f"cluster.yaml:{where}:19: cluster_svc_cidr: 10.43.0.0/29 has 8 addresses, but CoreDNS takes host 10 "
        "of it — use a /28 or larger"
    ]
