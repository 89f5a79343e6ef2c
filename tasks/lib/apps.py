"""``inv app.new``: scaffold an app the way the bundled apps are laid out.

An app in namespace NS is a folder ``kubernetes/apps/NS/NAME`` with

- ``ks.yaml``: its Flux Kustomization (building ``app/`` into NS),
- ``app/helmrelease.yaml``, ``app/ocirepository.yaml`` (the chart, pinned to a version) and
  ``app/kustomization.yaml`` listing them,

listed in ``kubernetes/apps/NS/kustomization.yaml``; a new namespace gets that folder, its
``namespace.yaml`` and ``kustomization.yaml`` too. Every input is checked before anything is
written, nothing existing is overwritten, and the files are written all or nothing (the
journaled swap ``configure`` uses). Without ``--version`` the chart's newest version is asked
of its registry (``helm show chart``, which lists the repository's tags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from tasks.lib import swap
from tasks.lib.config import ownapps
from tasks.lib.errors import UserError
from tasks.lib.files import read_text
from tasks.lib.paths import Paths
from tasks.lib.tools.runner import Command, Outcome, command_line, find_tool, missing_tool_message, run_one

#: A DNS-1123 label: what Kubernetes accepts as a namespace and as these objects' names.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: Helm refuses longer release names; the namespace may use the whole label.
MAX_NAME = 53
MAX_NAMESPACE = 63
#: ``oci://HOST[:PORT]/PATH``: a registry host and a repository path as the OCI distribution
#: spec spells them (lower case components separated by ``.``, ``_``, ``__`` or dashes).
LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
HOST = rf"{LABEL}(?:\.{LABEL})*(?::[0-9]{{1,5}})?"
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
OCI_URL = re.compile(rf"^oci://(?P<host>{HOST})/(?P<path>{COMPONENT}(?:/{COMPONENT})*)$")
MAX_URL = 255
#: An OCI tag (Helm writes a chart version's ``+`` as ``_``).
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
#: How long asking the registry for the chart may take, in seconds.
REGISTRY_TIMEOUT = 60.0


@dataclass(frozen=True)
class App:
    name: str
    namespace: str
    chart: str  # oci://host/path/chart
    version: str  # the OCI tag

    @property
    def folder(self) -> str:
        return f"{ownapps.APPS}/{self.namespace}/{self.name}"

    @property
    def namespace_folder(self) -> str:
        return f"{ownapps.APPS}/{self.namespace}"


# --------------------------------------------------------------------------- checks


def check_label(value: str, option: str, limit: int) -> list[str]:
    if not value:
        return [f"{option}: required"]
    if len(value) > limit:
        return [f"{option} {value[:60]!r}: longer than {limit} characters"]
    if not DNS_LABEL.match(value):
        return [
            f"{option} {value[:60]!r}: not a DNS-1123 label (lower case letters, digits and '-', "
            "starting and ending with a letter or digit)"
        ]
    return []


def check_chart(url: str) -> list[str]:
    if not url:
        return ["--chart: required (the chart's OCI URL, e.g. oci://ghcr.io/OWNER/charts/NAME)"]
    shown = url[:80]
    if len(url) > MAX_URL:
        return [f"--chart {shown!r}: longer than {MAX_URL} characters"]
    if not url.startswith("oci://"):
        return [
            f"--chart {shown!r}: not an OCI URL (oci://HOST/PATH/CHART; https chart repositories "
            "are not supported)"
        ]
    _host, _, path = url.removeprefix("oci://").partition("/")
    if "@" in path or ":" in path:
        return [f"--chart {shown!r}: give the version with --version, not in the URL"]
    if not OCI_URL.match(url):
        return [
            f"--chart {shown!r}: not a valid OCI URL (oci://HOST[:PORT]/PATH, the path in lower case "
            "letters, digits, '.', '_' and '-')"
        ]
    return []


def check_version(version: str) -> list[str]:
    if version and not TAG.match(version.replace("+", "_")):
        return [f"--version {version[:60]!r}: not a chart version (letters, digits, '.', '_', '-', '+')"]
    return []


def check_target(paths: Paths, app: App) -> list[str]:
    """Nothing may be overwritten, and the namespace folder must be one we can list apps in."""
    root = paths.root
    problems = []
    folder = root / app.folder
    if folder.exists() or folder.is_symlink():
        problems.append(f"{app.folder}: already exists; nothing is overwritten (choose another name)")
    base = root / ownapps.APPS
    if base.is_symlink() or (base.exists() and not base.is_dir()):
        problems.append(f"{ownapps.APPS}: not a folder")
    namespace = root / app.namespace_folder
    if namespace.is_symlink() or (namespace.exists() and not namespace.is_dir()):
        problems.append(f"{app.namespace_folder}: not a folder")
    elif namespace.is_dir():
        kustomization = namespace / "kustomization.yaml"
        if kustomization.is_symlink() or not kustomization.is_file():
            problems.append(
                f"{app.namespace_folder}: has no kustomization.yaml to list the app in — add one, "
                "or choose another namespace"
            )
        elif (namespace / "namespace.yaml").is_symlink():
            problems.append(f"{app.namespace_folder}/namespace.yaml: a symbolic link")
    return problems


def check_inputs(paths: Paths, name: str, namespace: str, chart: str, version: str) -> None:
    """Every problem with the arguments, one line each, before anything is asked or written."""
    problems = [
        *check_label(name, "NAME", MAX_NAME),
        *check_label(namespace, "--namespace", MAX_NAMESPACE),
        *check_chart(chart),
        *check_version(version),
    ]
    if not problems:
        problems = check_target(paths, App(name, namespace, chart, version))
    if problems:
        raise UserError(*problems)


# --------------------------------------------------------------------------- the version


def show_chart_argv(chart: str, plain_http: bool) -> list[str]:
    return ["helm", "show", "chart", chart, *(["--plain-http"] if plain_http else [])]


def newest_version(paths: Paths, chart: str, plain_http: bool) -> str:
    """The chart's newest stable version, as its registry lists it (``helm show chart``
    without a version picks the highest semantic-version tag). One line when it cannot."""
    ask = "pass the version with --version VERSION"
    if find_tool("helm") is None:
        raise UserError(f"--version not given and {missing_tool_message('helm')}; or {ask}")
    command = Command(
        tuple(show_chart_argv(chart, plain_http)), deadline=REGISTRY_TIMEOUT, what=f"reading {chart}"
    )
    outcome = run_one(command, paths=paths)
    if not outcome.ok:
        raise UserError(
            f"could not read the versions of {chart} from its registry ({reason(outcome)}): {ask}"
        )
    version = chart_version(outcome.data)
    if version is None or check_version(version):
        raise UserError(f"{chart}: the registry's answer names no chart version: {ask}")
    return version.replace("+", "_")  # the tag Helm pushed it under


def reason(outcome: Outcome) -> str:
    if outcome.limit:
        return outcome.problem
    lines = [line.strip() for line in outcome.stderr.splitlines() if line.strip()]
    text = lines[-1] if lines else f"helm exited {outcome.returncode}"
    return text.removeprefix("Error: ")[:200]


def chart_version(chart_yaml: bytes) -> str | None:
    """``version`` of a Chart.yaml (what ``helm show chart`` prints)."""
    if len(chart_yaml) > 1 << 20:
        return None
    try:
        data = YAML(typ="safe", pure=True).load(chart_yaml.decode(errors="replace"))
    except YAMLError:
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return str(version) if isinstance(version, str) and version else None


# --------------------------------------------------------------------------- the files


def ks_yaml(app: App) -> str:
    return f"""---
# yaml-language-server: $schema=https://kubernetes-schemas.pages.dev/kustomize.toolkit.fluxcd.io/kustomization_v1.json
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {app.name}
spec:
  commonMetadata:
    labels:
      app.kubernetes.io/name: {app.name}
  interval: 1h
  path: ./{app.folder}/app
  prune: true
  retryInterval: 2m
  sourceRef:
    kind: GitRepository
    name: flux-system
    namespace: flux-system
  targetNamespace: {app.namespace}
  timeout: 5m
  wait: false
"""


def helmrelease_yaml(app: App) -> str:
    return f"""---
# yaml-language-server: $schema=https://kubernetes-schemas.pages.dev/helm.toolkit.fluxcd.io/helmrelease_v2.json
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: {app.name}
spec:
  chartRef:
    kind: OCIRepository
    name: {app.name}
  interval: 1h
  # The chart's settings: `helm show values {app.chart} --version {app.version}` lists them.
  values: {{}}
"""


def ocirepository_yaml(app: App) -> str:
    return f"""---
# yaml-language-server: $schema=https://kubernetes-schemas.pages.dev/source.toolkit.fluxcd.io/ocirepository_v1.json
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: {app.name}
spec:
  interval: 15m
  layerSelector:
    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip
    operation: copy
  ref:
    tag: "{app.version}"
  url: {app.chart}
"""


APP_KUSTOMIZATION = """---
# yaml-language-server: $schema=https://json.schemastore.org/kustomization
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ./helmrelease.yaml
  - ./ocirepository.yaml
"""


def namespace_yaml(namespace: str) -> str:
    return f"""---
# yaml-language-server: $schema=https://raw.githubusercontent.com/yannh/kubernetes-json-schema/master/master-standalone-strict/namespace-v1.json
apiVersion: v1
kind: Namespace
metadata:
  name: {namespace}
  annotations:
    # Never delete the namespace (and all in it) when this file goes away.
    kustomize.toolkit.fluxcd.io/prune: disabled
"""


def namespace_kustomization(namespace: str) -> str:
    return f"""---
# yaml-language-server: $schema=https://json.schemastore.org/kustomization
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {namespace}
components:
  - ../../components/sops
resources:
  - ./namespace.yaml
"""


def files_for(paths: Paths, app: App) -> dict[str, bytes]:
    """Every file to write: the app's, and its namespace's kustomization (new or updated)."""
    files = {
        f"{app.folder}/ks.yaml": ks_yaml(app),
        f"{app.folder}/app/kustomization.yaml": APP_KUSTOMIZATION,
        f"{app.folder}/app/helmrelease.yaml": helmrelease_yaml(app),
        f"{app.folder}/app/ocirepository.yaml": ocirepository_yaml(app),
    }
    namespace = paths.root / app.namespace_folder
    kustomization = f"{app.namespace_folder}/kustomization.yaml"
    if namespace.is_dir():
        current = read_text(paths.root / kustomization, kustomization)
        files[kustomization] = ownapps.add_own(current, [app.name])
    else:
        files[f"{app.namespace_folder}/namespace.yaml"] = namespace_yaml(app.namespace)
        files[kustomization] = ownapps.add_own(namespace_kustomization(app.namespace), [app.name])
    return {name: text.encode() for name, text in files.items()}


def create(paths: Paths, app: App, dry: bool) -> list[str]:
    """Write the app's files all or nothing (under the configure lock, through its journaled
    swap); the names written, namespace files first."""
    files = files_for(paths, app)
    order = sorted(files, key=lambda name: (name.startswith(app.folder + "/"), name))
    if dry:
        return order
    with swap.locked(paths.root, "app.new"):
        swap.require_settled(paths.root)
        problems = check_target(paths, app)  # again, under the lock
        if problems:
            raise UserError(*problems)
        swap.swap_in(paths.root, [swap.Change(paths.root / name, files[name]) for name in order], "app.new")
    return order


def scaffold(
    paths: Paths, name: str, namespace: str, chart: str, version: str, plain_http: bool, dry: bool
) -> tuple[App, list[str]]:
    """Check everything, find the version when not given, write the files."""
    check_inputs(paths, name, namespace, chart, version)
    if not version and dry:
        line = command_line(show_chart_argv(chart, plain_http))
        print(f"would ask the registry for the newest version: {line}")
        version = "NEWEST"
    elif not version:
        version = newest_version(paths, chart, plain_http)
    app = App(name, namespace, chart, version.replace("+", "_"))
    return app, create(paths, app, dry)
