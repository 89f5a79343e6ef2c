"""Pure logic of the talos/bootstrap collections: no Invoke, no tools."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from tasks.lib.errors import UserError
from tasks.lib.provision import facts

# --------------------------------------------------------------------------- talenv / talconfig


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_talenv_value(tmp_path: Path) -> None:
    talenv = write(tmp_path / "talenv.yaml", "---\ntalosVersion: v1.13.0\nkubernetesVersion: v1.36.0\n")
    assert facts.talenv_value(talenv, "talosVersion") == "v1.13.0"
    assert facts.talenv_value(talenv, "kubernetesVersion") == "v1.36.0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("talosVersion: v1\n", "kubernetesVersion is not set — run `inv configure`"),
        ("kubernetesVersion: ''\n", "kubernetesVersion is not set"),
        ("- a\n", "expected a mapping"),
        ("a: [\n", "invalid YAML"),
    ],
)
def test_talenv_value_problems(tmp_path: Path, text: str, message: str) -> None:
    talenv = write(tmp_path / "talenv.yaml", text)
    with pytest.raises(UserError) as error:
        facts.talenv_value(talenv, "kubernetesVersion", "talos/talenv.yaml")
    assert message in str(error.value)
    assert str(error.value).startswith("talos/talenv.yaml")


def test_missing_talenv_names_the_task(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"talos/talenv.yaml not found — run `inv configure`"):
        facts.talenv_value(tmp_path / "nope.yaml", "talosVersion")


TALCONFIG = """\
clusterName: kubernetes
talosVersion: "${talosVersion}"
nodes:
  - hostname: k8s-0
    ipAddress: 192.168.1.10
    controlPlane: true
    talosImageURL: factory.talos.dev/installer/abc
  - hostname: k8s-1
    ipAddress: "192.168.1.11, 10.0.0.11"
    talosImageURL: factory.talos.dev/installer-secureboot/def:v1.9.0
  - hostname: k8s-2
    ipAddress: 192.168.1.12
"""


def test_talconfig_nodes_and_installer_images(tmp_path: Path) -> None:
    nodes = facts.talconfig_nodes(write(tmp_path / "talconfig.yaml", TALCONFIG))
    assert [(n.hostname, n.addresses, n.controller) for n in nodes] == [
        ("k8s-0", ("192.168.1.10",), True),
        ("k8s-1", ("192.168.1.11", "10.0.0.11"), False),
        ("k8s-2", ("192.168.1.12",), False),
    ]
    assert facts.node_by_address(nodes, "10.0.0.11") is nodes[1]
    assert facts.node_by_address(nodes, "10.0.0.99") is None
    assert facts.installer_image(nodes[0], "v1.13.0") == "factory.talos.dev/installer/abc:v1.13.0"
    # a tag already on the URL is replaced, not doubled
    assert facts.installer_image(nodes[1], "v1.13.0") == "factory.talos.dev/installer-secureboot/def:v1.13.0"
    with pytest.raises(UserError, match="node k8s-2 has no talosImageURL"):
        facts.installer_image(nodes[2], "v1.13.0")


def test_installer_image_keeps_a_registry_port() -> None:
    node = facts.TalosNode("n", ("1.2.3.4",), True, "registry.lan:5000/installer/abc")
    assert facts.installer_image(node, "v1.13.0") == "registry.lan:5000/installer/abc:v1.13.0"


@pytest.mark.parametrize(
    ("text", "message"),
    [("clusterName: x\n", "no nodes defined"), ("nodes:\n  - hostname: a\n", "needs hostname and ipAddress")],
)
def test_talconfig_problems(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        facts.talconfig_nodes(write(tmp_path / "talconfig.yaml", text))


# --------------------------------------------------------------------------- gencommand


def test_extra_flags() -> None:
    assert facts.extra_flags("--insecure") == "--extra-flags=--insecure"
    assert facts.extra_flags("..", "--force") == "--extra-flags=..,--force"
    for bad in ("a,b", "has space", "quo'te", ""):
        with pytest.raises(ValueError, match="cannot pass"):
            facts.extra_flags(bad)


def test_parse_talhelper_output() -> None:
    text = (
        "talosctl apply-config --talosconfig=./clusterconfig/talosconfig --nodes=192.168.1.10 "
        "--file=./clusterconfig/kubernetes-k8s-0.yaml --insecure;\n"
        "talosctl apply-config --talosconfig=./clusterconfig/talosconfig --nodes=192.168.1.11 "
        "--file='./clusterconfig/kubernetes k8s-1.yaml' --insecure;\n"
    )
    commands = facts.parse_gencommand(text)
    assert [c.node for c in commands] == ["192.168.1.10", "192.168.1.11"]
    assert commands[1].argv[-2] == "--file=./clusterconfig/kubernetes k8s-1.yaml"
    assert commands[0].line.startswith("talosctl apply-config --talosconfig=./clusterconfig/talosconfig")


def test_command_node_forms() -> None:
    assert facts.command_node(["talosctl", "-n", "1.2.3.4", "reset"]) == "1.2.3.4"
    assert facts.command_node(["talosctl", "--nodes", "1.2.3.4"]) == "1.2.3.4"
    assert facts.command_node(["talosctl", "bootstrap", "--nodes=1.2.3.4"]) == "1.2.3.4"
    assert facts.command_node(["talosctl", "upgrade-k8s"]) is None


@pytest.mark.parametrize(
    "text",
    [
        "talosctl apply-config --nodes=1.2.3.4 | sh",
        "talosctl bootstrap && rm -rf /",
        "talosctl bootstrap > /etc/passwd",
        "talosctl bootstrap $(whoami)",
        "talosctl bootstrap `id`",
        "talosctl bootstrap 'unterminated",
    ],
)
def test_parse_refuses_shell_syntax(text: str) -> None:
    with pytest.raises(UserError):
        facts.parse_gencommand(text)


def test_parse_refuses_other_programs() -> None:
    with pytest.raises(UserError, match="something other than a talosctl command"):
        facts.parse_gencommand("rm -rf /;\n")


def test_parse_keeps_operators_inside_quotes() -> None:
    (command,) = facts.parse_gencommand("talosctl x '--a=b|c;d' \"e && f\";")
    assert command.argv == ("talosctl", "x", "--a=b|c;d", "e && f")


ARG = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)
ARGV = st.lists(ARG, max_size=6).map(lambda rest: ["talosctl", *rest])


@given(st.lists(ARGV, min_size=1, max_size=4), st.sampled_from([";\n", "\n", ";", "; "]))
def test_parse_round_trips_shell_quoted_commands(commands: list[list[str]], separator: str) -> None:
    text = separator.join(shlex.join(argv) for argv in commands) + separator
    assert [list(c.argv) for c in facts.parse_gencommand(text)] == commands


@given(st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=4))
def test_parse_reports_each_node(addresses: list[str]) -> None:
    text = "".join(f"talosctl reset --talosconfig=./t --nodes={a} --reboot;\n" for a in addresses)
    assert [c.node for c in facts.parse_gencommand(text)] == addresses


# --------------------------------------------------------------------------- CRD filtering

RENDER = """\
---
# Source: gateway-helm/crds/gatewayapi-crds.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gateways.gateway.networking.k8s.io
spec:
  description: |
    kind: Deployment
    ---
    not a separator inside a block scalar
---
# Source: gateway-helm/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: envoy-gateway
---
# an empty document (only a comment)
---
apiVersion: apiextensions.k8s.io/v1
kind: "CustomResourceDefinition"  # quoted, with a comment
metadata:
  name: dnsendpoints.externaldns.k8s.io
...
---
{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "json.x.io"}}
---
apiVersion: v1
kind: ConfigMap
data:
  kind: CustomResourceDefinition
"""


def load_all(text: str) -> list[object]:
    return [doc for doc in YAML(typ="safe", pure=True).load_all(text) if doc is not None]


def test_select_crds_from_a_helm_render() -> None:
    crds = facts.select_kind(RENDER)
    names = [load_all(doc)[0]["metadata"]["name"] for doc in crds]
    assert names == ["gateways.gateway.networking.k8s.io", "dnsendpoints.externaldns.k8s.io", "json.x.io"]
    # original text kept (comments included), and the joined stream parses back
    assert crds[0].startswith("# Source: gateway-helm/crds/gatewayapi-crds.yaml")
    assert [d["metadata"]["name"] for d in load_all(facts.join_documents(crds))] == names


def test_select_nothing() -> None:
    assert facts.select_kind("") == []
    assert facts.select_kind("---\n# just a comment\n---\n") == []


KINDS = st.sampled_from(["CustomResourceDefinition", "Deployment", "Service", "ConfigMap", "Secret"])
PIECES = st.sampled_from(
    ["\n", "---", "...", "kind: ", "CustomResourceDefinition", " ", "#", "'", '"', ": ", "- "]
)
TEXT = st.lists(
    st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=5) | PIECES, max_size=6
).map("".join)
SCALAR = st.one_of(TEXT, st.integers(), st.booleans(), st.none())
VALUES = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3)
)


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, object]:
    extra = draw(
        st.dictionaries(st.sampled_from(["spec", "data", "description", "x-kind"]), VALUES, max_size=3)
    )
    return {
        "apiVersion": "v1",
        "kind": draw(KINDS),
        "metadata": {"name": draw(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))},
        **extra,
    }


@settings(max_examples=100, deadline=None)
@given(st.lists(manifests(), max_size=6), st.booleans())
def test_select_kind_matches_a_real_parser(documents: list[dict[str, object]], explicit_start: bool) -> None:
    """Whatever a YAML emitter produces, the text-level filter keeps exactly the CRDs."""
    yaml = YAML(typ="safe", pure=True)
    yaml.explicit_start = explicit_start
    buffer = io.StringIO()
    yaml.dump_all(documents, buffer)
    try:  # the emitter occasionally writes YAML it cannot read back (e.g. {:0: null})
        assume(load_all(buffer.getvalue()) == documents)
    except YAMLError:
        assume(False)
    selected = facts.select_kind(buffer.getvalue())
    expected = [doc for doc in documents if doc["kind"] == facts.CRD_KIND]
    assert [load_all(doc)[0] for doc in selected] == expected
    assert load_all(facts.join_documents(selected)) == expected


# --------------------------------------------------------------------------- nodes


def nodes_json(*conditions: tuple[str, str | None]) -> str:
    items = []
    for name, ready in conditions:
        status = {"conditions": [{"type": "MemoryPressure", "status": "False"}]}
        if ready is not None:
            status["conditions"].append({"type": "Ready", "status": ready})
        items.append({"metadata": {"name": name}, "status": status})
    return json.dumps({"kind": "List", "items": items})


def test_node_statuses() -> None:
    statuses = facts.node_statuses(nodes_json(("a", "True"), ("b", "False"), ("c", "Unknown"), ("d", None)))
    assert [(s.name, s.ready) for s in statuses] == [("a", True), ("b", False), ("c", None), ("d", None)]


@pytest.mark.parametrize(
    ("text", "registered", "ready"),
    [
        (nodes_json(("a", "True"), ("b", "True")), True, True),
        (nodes_json(("a", "True"), ("b", "False")), True, False),
        (nodes_json(("a", "False")), True, False),
        (nodes_json(("a", "Unknown")), False, False),
        (nodes_json(), False, False),
        ("", False, False),
        ("not json", False, False),
        ("[1, 2]", False, False),
    ],
)
def test_node_readiness(text: str, registered: bool, ready: bool) -> None:
    statuses = facts.node_statuses(text)
    assert facts.nodes_registered(statuses) is registered
    assert facts.nodes_ready(statuses) is ready


@given(st.lists(st.sampled_from(["True", "False", "Unknown", None]), max_size=5))
def test_readiness_properties(readiness: list[str | None]) -> None:
    statuses = facts.node_statuses(nodes_json(*((f"n{i}", r) for i, r in enumerate(readiness))))
    assert len(statuses) == len(readiness)
    assert facts.nodes_ready(statuses) == (bool(readiness) and all(r == "True" for r in readiness))
    assert facts.nodes_registered(statuses) == (
        bool(readiness) and all(r in ("True", "False") for r in readiness)
    )
    if facts.nodes_ready(statuses):
        assert facts.nodes_registered(statuses)


# --------------------------------------------------------------------------- files


def test_app_namespaces_and_secret_files(tmp_path: Path) -> None:
    for name in ("kube-system", "default", ".hidden", "Not_A_Label"):
        (tmp_path / "kubernetes" / "apps" / name).mkdir(parents=True)
    (tmp_path / "kubernetes" / "apps" / "kustomization.yaml").write_text("")
    assert facts.app_namespaces(tmp_path / "kubernetes" / "apps") == ["default", "kube-system"]
    assert facts.app_namespaces(tmp_path / "missing") == []
    (tmp_path / "bootstrap").mkdir()
    for name in ("sops-age.sops.yaml", "cluster-secrets.sops.yaml", "notes.yaml"):
        (tmp_path / "bootstrap" / name).write_text("")
    assert [p.name for p in facts.bootstrap_secret_files(tmp_path)] == [
        "cluster-secrets.sops.yaml",
        "sops-age.sops.yaml",
    ]


# --------------------------------------------------------------------------- helm releases


def test_helmfile_releases_and_what_is_not_deployed(tmp_path: Path) -> None:
    from tests.fakes import APPS_DEPLOYED, APPS_HELMFILE

    helmfile = tmp_path / "01-apps.yaml"
    helmfile.write_text(APPS_HELMFILE)
    releases = facts.helmfile_releases(helmfile, "01-apps.yaml")
    assert [str(r) for r in releases] == ["kube-system/cilium", "flux-system/flux-operator"]
    assert facts.undeployed_releases(releases, APPS_DEPLOYED) == []
    assert facts.undeployed_releases(releases, "") == releases
    assert facts.undeployed_releases(releases, "not json") == releases
    older = APPS_DEPLOYED.replace("cilium-1.19.3", "cilium-1.18.0")
    assert [r.name for r in facts.undeployed_releases(releases, older)] == ["cilium"]
    failed = APPS_DEPLOYED.replace('"deployed", "chart": "flux-operator', '"failed", "chart": "flux-operator')
    assert [r.name for r in facts.undeployed_releases(releases, failed)] == ["flux-operator"]


def write_helmfile(tmp_path: Path, release: str, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    helmfile = tmp_path / "helmfile.d" / "01-apps.yaml"
    helmfile.parent.mkdir(parents=True, exist_ok=True)
    helmfile.write_text(f"releases:\n  - name: app\n    namespace: apps\n    version: 1.0.0\n{release}")
    return helmfile


def test_release_values_merge_files_and_inline_maps_as_helm_does(tmp_path: Path) -> None:
    helmfile = write_helmfile(
        tmp_path,
        "    values:\n      - ../values/base.yaml\n      - ../values/empty.yaml\n"
        "      - {image: {tag: v2}, args: [--b], gone: null}\n",
        {
            "values/base.yaml": "image: {repository: r, tag: v1}\nargs: [--a, --c]\n1: one\ngone: here\n",
            "values/empty.yaml": "# nothing set here\n",
        },
    )
    (release,) = facts.helmfile_releases(helmfile, "01-apps.yaml")
    # maps merge key by key; a list is replaced whole; null is kept (helm keeps it in the
    # release's user values); keys become strings as in helm's JSON
    assert release.values == {
        "image": {"repository": "r", "tag": "v2"},
        "args": ["--b"],
        "1": "one",
        "gone": None,
    }
    assert facts.values_current(release, json.dumps(release.values))
    assert not facts.values_current(release, json.dumps({**release.values, "args": ["--a"]}))


@pytest.mark.parametrize(
    "release",
    [
        "    values: [../values/missing.yaml]\n",
        "    values: [../values/list.yaml]\n",
        "    values: [../values/app.yaml.gotmpl]\n",
        "    values: ['{{ .Environment.Name }}.yaml']\n",
        "    values: [../values/app.yaml]\n    set: [{name: a, value: b}]\n",
        "    values: [../values/app.yaml]\n    valuesTemplate: [{a: '{{ .Release.Name }}'}]\n",
        "    secrets: [../values/secret.sops.yaml]\n",
    ],
)
def test_release_values_unknown_offline_means_sync(tmp_path: Path, release: str) -> None:
    helmfile = write_helmfile(
        tmp_path, release, {"values/app.yaml": "a: 1\n", "values/list.yaml": "- a\n", "values/bad.yaml": ":"}
    )
    (parsed,) = facts.helmfile_releases(helmfile, "01-apps.yaml")
    assert parsed.values is None
    assert not facts.values_current(parsed, "null")


def test_values_current_reads_what_helm_get_values_prints(tmp_path: Path) -> None:
    helmfile = write_helmfile(tmp_path, "", {})
    (release,) = facts.helmfile_releases(helmfile, "01-apps.yaml")
    assert release.values == {}
    assert facts.values_current(release, "null\n")  # helm's answer for a release without values
    assert facts.values_current(release, "{}")
    assert not facts.values_current(release, "")
    assert not facts.values_current(release, "Error: release: not found")
    assert not facts.values_current(release, '{"a": 1}')
