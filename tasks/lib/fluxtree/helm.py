"""``--helm``: every HelmRelease rendered with ``helm template`` as helm-controller would.

For each HelmRelease: the chart from its source (``chartRef`` to an OCIRepository or a
HelmChart; ``chart.spec.sourceRef`` to a HelmRepository, HTTP or OCI, or to this repository's
GitRepository: a chart folder rendered in place), its values as helm-controller merges them
(``valuesFrom`` ConfigMaps and Secrets the tree creates, in order, then ``spec.values``), the
release name and namespace helm-controller uses. Charts fetched from a registry are kept in a
cache by content digest (``~/.cache/home-ops/charts``), so a chart is downloaded once per
version; a source that cannot be reached is one note (not rendered, offline), not a problem.
What renders goes through the same schema check as the tree's own objects.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.lib.tools.runner import Command, run_many

from . import yamlio
from .kustfiles import check_file
from .model import SOURCE_GROUP, Obj, Ref
from .sources import same_repository
from .values import merge_values

if TYPE_CHECKING:
    from tasks.lib.tools.runner import Outcome

    from .engine import Engine

#: Words of a helm error that mean the chart's host could not be reached.
_OFFLINE = re.compile(
    r"dial tcp|no such host|connection refused|i/o timeout|TLS handshake timeout|network is unreachable"
    r"|Temporary failure in name resolution|context deadline exceeded|failed to do request|EOF",
    re.IGNORECASE,
)
_EXACT = re.compile(r"^v?\d+\.\d+\.\d+([-+][\w.+-]*)?$")
TIMEOUT = 300
MAX_RENDERED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Chart:
    """Where a HelmRelease's chart comes from, in ``helm`` terms."""

    name: str  # the chart reference helm gets: oci://..., a chart name (with repo), a folder
    repo: str = ""  # --repo URL for an HTTP Helm repository
    version: str = ""
    plain_http: bool = False
    source: str = ""  # the Flux source, for notes: "HelmRepository flux-system/bjw-s"
    local: bool = False

    @property
    def cacheable(self) -> bool:
        return not self.local and bool(_EXACT.match(self.version) or "@sha256:" in self.name)


@dataclass
class Rendered:
    """The outcome of rendering every HelmRelease."""

    objects: dict[str, list[Obj]] = field(default_factory=dict)  # HelmRelease id -> what it renders
    offline: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # source -> releases
    notes: list[str] = field(default_factory=list)


def release_name(hr: Obj) -> str:
    """helm-controller's release name: spec.releaseName, else targetNamespace-name, else name."""
    spec = hr.spec
    if spec.get("releaseName"):
        return str(spec["releaseName"])
    return f"{spec['targetNamespace']}-{hr.name}" if spec.get("targetNamespace") else hr.name


def set_path(values: dict[str, Any], path: str, raw: str) -> None:
    """``targetPath`` (``a.b.c``, as ``helm --set``): the value at the path replaced."""
    quoted = len(raw) > 1 and raw[0] == raw[-1] and raw[0] in "'\""
    value: Any = raw[1:-1] if quoted else raw
    if not quoted:
        try:
            value = yamlio.load(raw) if raw and "\n" not in raw else raw
        except yamlio.YAMLError:
            value = raw
        if isinstance(value, (dict, list)):
            value = raw
    node = values
    keys = [k for k in path.split(".") if k]
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    if keys:
        node[keys[-1]] = value


class Renderer:
    """Renders the HelmReleases of one validated tree (see :func:`render`)."""

    def __init__(self, engine: Engine, cache: Path | None = None, only: set[str] | None = None) -> None:
        self.engine = engine
        self.only = only
        self.tree = engine.tree
        self.cache = cache or chart_cache()
        self.problems: list[tuple[Obj, str, str]] = []  # (HelmRelease, kind, message)

    # Charts ---------------------------------------------------------------------------------
    def _source(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.engine.source_objects().get(Ref(kind, namespace, name))

    def chart(self, hr: Obj) -> Chart | str:
        """The chart of ``hr``, or why it cannot be rendered offline-style."""
        spec = hr.spec
        ref = spec.get("chartRef")
        if isinstance(ref, dict):
            kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
            namespace = str(ref.get("namespace") or hr.namespace)
            source = self._source(kind, namespace, name)
            if source is None:
                return f"its chartRef {kind} {namespace}/{name} does not exist"
            if kind == "OCIRepository":
                return self._oci_repository(source)
            if kind == "HelmChart":
                return self._chart_spec(source.spec, source.namespace or namespace)
            return f"chartRef kind {kind} is not a chart source"
        chart = _mapping(spec.get("chart"))
        return self._chart_spec(_mapping(chart.get("spec")), hr.namespace)

    def _chart_spec(self, spec: dict[str, Any], namespace: str) -> Chart | str:
        """A HelmChart's spec, or a HelmRelease's ``chart.spec``: chart, version, sourceRef."""
        sub = _mapping(spec.get("sourceRef"))
        return self._from_source(
            str(sub.get("kind", "")), str(sub.get("namespace") or namespace), str(sub.get("name", "")),
            str(spec.get("chart", "")), str(spec.get("version") or ""),
        )  # fmt: skip

    def _oci_repository(self, source: Obj) -> Chart | str:
        spec, ref = source.spec, source.spec.get("ref") or {}
        url = str(spec.get("url", ""))
        label = f"OCIRepository {source.namespace}/{source.name}"
        if ref.get("digest"):
            return Chart(f"{url}@{ref['digest']}", plain_http=bool(spec.get("insecure")), source=label)
        version = str(ref.get("tag") or ref.get("semver") or "")
        return Chart(url, version=version, plain_http=bool(spec.get("insecure")), source=label)

    def _from_source(self, kind: str, namespace: str, name: str, chart: str, version: str) -> Chart | str:
        source = self._source(kind, namespace, name)
        label = f"{kind} {namespace}/{name}"
        if source is None and Ref(kind, namespace, name) in self.engine.entry_sources:
            source = Obj({"kind": kind, "metadata": {"name": name, "namespace": namespace}}, "", "")
        if source is None:
            return f"its chart source {label} does not exist"
        spec = source.spec
        if kind == "HelmRepository":
            url = str(spec.get("url", "")).rstrip("/")
            insecure = bool(spec.get("insecure"))
            if url.startswith("oci://") or spec.get("type") == "oci":
                return Chart(f"{url}/{chart}", version=version, plain_http=insecure, source=label)
            return Chart(chart, repo=url, version=version, source=label)
        if kind == "GitRepository" and self._is_this_repository(source):
            folder = Path(os.path.normpath(self.engine.root / chart))
            problem = _local_chart_problem(self.engine, folder)
            return problem or Chart(str(folder), source=label, local=True)
        return f"its chart comes from {label}, which is not this repository"

    def _is_this_repository(self, source: Obj) -> bool:
        ref = Ref(source.kind, source.namespace, source.name)
        return ref in self.engine.entry_sources or same_repository(
            str(source.spec.get("url", "")), self.engine.remote
        )

    # Values ---------------------------------------------------------------------------------
    def values(self, hr: Obj) -> tuple[dict[str, Any], list[str]]:
        """helm-controller's values for ``hr`` and notes on what is not known offline (its
        merge is Helm's merge of values files)."""
        result: dict[str, Any] = {}
        notes = []
        inline: dict[str, Any] = hr.spec["values"] if isinstance(hr.spec.get("values"), dict) else {}
        for ref in hr.spec.get("valuesFrom") or []:
            if not isinstance(ref, dict):
                continue
            kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
            key = str(ref.get("valuesKey") or "values.yaml")
            source = self.engine.registry.get(kind, hr.namespace, name)
            where = f"valuesFrom {kind} {hr.namespace}/{name}"
            if source is None:
                if not ref.get("optional"):
                    self.problems.append(
                        (
                            hr,
                            "values-from-missing",
                            f"{where} is created by nothing in the tree (mark it optional)",
                        )
                    )
                continue
            if (
                not source.keys_known
                or key not in source.values
                or source.values[key].startswith("PLACEHOLDER_")
            ):
                notes.append(f"{where} (key {key}) is known only in the cluster: rendered without it")
                continue
            data = source.values[key]
            if ref.get("targetPath"):
                result = merge_values(result, inline)
                set_path(result, str(ref["targetPath"]), data)
                continue
            try:
                loaded = yamlio.load(data) or {}
            except yamlio.YAMLError as error:
                self.problems.append(
                    (hr, "yaml-invalid", f"{where} key {key}: {yamlio.error_position(error)[2]}")
                )
                continue
            if isinstance(loaded, dict):
                result = merge_values(result, loaded)
        return merge_values(result, inline), notes

    # Rendering ------------------------------------------------------------------------------
    def argv(self, hr: Obj, chart: Chart, path: str) -> list[str]:
        spec = hr.spec
        namespace = str(spec.get("targetNamespace") or hr.namespace)
        argv = ["helm", "template", release_name(hr), path, "--namespace", namespace, "--skip-tests"]
        if not chart.local and path == chart.name:
            argv += ["--repo", chart.repo] if chart.repo else []
            argv += ["--version", chart.version] if chart.version else []
            argv += ["--plain-http"] if chart.plain_http else []
        crds = (
            (spec.get("install") or {}).get("crds") if isinstance(spec.get("install"), dict) else None
        ) or "Create"
        if crds != "Skip":
            argv.append("--include-crds")
        return [*argv, "--values", "-"]

    def fetch(self, charts: list[Chart]) -> dict[Chart, Path | str]:
        """Each chart's archive in the cache (fetched when missing), or the helm error."""
        out: dict[Chart, Path | str] = {}
        missing = []
        for chart in charts:
            if chart.local or not chart.cacheable:
                continue
            cached = self.cache_lookup(chart)
            if cached is not None:
                out[chart] = cached
            else:
                missing.append(chart)
        if not missing:
            return out
        with tempfile.TemporaryDirectory(prefix="home-ops-charts-") as scratch:
            jobs = []
            for index, chart in enumerate(missing):
                Path(scratch, str(index)).mkdir()
                argv = ["helm", "pull", chart.name, "--destination", f"{scratch}/{index}"]
                argv += ["--repo", chart.repo] if chart.repo else []
                argv += ["--version", chart.version] if chart.version and "@sha256:" not in chart.name else []
                argv += ["--plain-http"] if chart.plain_http else []
                jobs.append(Command(tuple(argv), deadline=TIMEOUT, what=f"fetching chart {chart.name}"))
            for index, (chart, outcome) in enumerate(zip(missing, run_many(jobs), strict=True)):
                archives = list(Path(scratch, str(index)).glob("*.tgz"))
                if outcome.ok and len(archives) == 1:
                    out[chart] = self.cache_store(chart, archives[0])
                else:
                    out[chart] = _reason(outcome)
        return out

    def _key(self, chart: Chart) -> str:
        return hashlib.sha256(f"{chart.name}\n{chart.repo}\n{chart.version}".encode()).hexdigest()

    def cache_lookup(self, chart: Chart) -> Path | None:
        ref = self.cache / "refs" / self._key(chart)
        try:
            digest = ref.read_text().strip()
        except OSError:
            return None
        blob = self.cache / "blobs" / f"{digest}.tgz"
        return blob if re.fullmatch(r"[0-9a-f]{64}", digest) and blob.is_file() else None

    def cache_store(self, chart: Chart, archive: Path) -> Path:
        """Keep ``archive`` under its content digest; point the chart's reference at it."""
        data = archive.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        blob = self.cache / "blobs" / f"{digest}.tgz"
        for folder in (blob.parent, self.cache / "refs"):
            folder.mkdir(parents=True, exist_ok=True)
        if not blob.is_file():
            staged = blob.with_name(f".{digest}.{os.getpid()}")
            staged.write_bytes(data)
            staged.replace(blob)
        ref = self.cache / "refs" / self._key(chart)
        staged_ref = ref.with_name(f".{ref.name}.{os.getpid()}")
        staged_ref.write_text(digest)
        staged_ref.replace(ref)
        return blob

    def render(self) -> Rendered:
        out = Rendered()
        plans: list[tuple[Obj, Chart, dict[str, Any]]] = []
        for hr in self.tree.helmreleases():
            if self.only is not None and f"{hr.namespace}/{hr.name}" not in self.only:
                continue
            chart = self.chart(hr)
            if isinstance(chart, str):
                out.notes.append(f"--helm: {hr.namespace}/{hr.name} not rendered: {chart}")
                continue
            values, notes = self.values(hr)
            out.notes += [f"--helm: {hr.namespace}/{hr.name}: {note}" for note in notes]
            if hr.spec.get("postRenderers"):
                out.notes.append(f"--helm: {hr.namespace}/{hr.name}: postRenderers not applied")
            plans.append((hr, chart, values))
        archives = self.fetch(list(dict.fromkeys(chart for _hr, chart, _v in plans)))
        jobs, planned = [], []
        for hr, chart, values in plans:
            archive = archives.get(chart)
            if isinstance(archive, str):
                self._failed(out, hr, chart, archive)
                continue
            path = str(archive) if archive is not None else chart.name
            what = f"rendering HelmRelease {hr.namespace}/{hr.name}"
            jobs.append(
                Command(
                    tuple(self.argv(hr, chart, path)),
                    stdin=yamlio.dump(values).encode(),
                    deadline=TIMEOUT,
                    what=what,
                )
            )
            planned.append((hr, chart))
        for (hr, chart), outcome in zip(planned, run_many(jobs), strict=True):
            if not outcome.ok:
                self._failed(out, hr, chart, _reason(outcome))
                continue
            out.objects[f"{hr.namespace}/{hr.name}"] = self._objects(hr, outcome.data)
        for source, releases in sorted(out.offline.items()):
            out.notes.append(f"--helm: not rendered (offline): {source} ({len(releases)} HelmRelease(s))")
        return out

    def _failed(self, out: Rendered, hr: Obj, chart: Chart, error: str) -> None:
        if _OFFLINE.search(error):
            label = chart.source + (f" ({chart.repo or chart.name})" if not chart.local else "")
            out.offline[label].append(f"{hr.namespace}/{hr.name}")
        else:
            self.problems.append(
                (hr, "helm-template-failed", f"HelmRelease {hr.namespace}/{hr.name}: {error}")
            )

    def _objects(self, hr: Obj, stdout: bytes) -> list[Obj]:
        if len(stdout) > MAX_RENDERED_BYTES:
            self.problems.append(
                (hr, "helm-template-failed", f"renders more than {MAX_RENDERED_BYTES} bytes")
            )
            return []
        objects = []
        for text in yamlio.split_documents(stdout.decode("utf-8", "replace")):
            try:
                body = yamlio.load(text)
            except yamlio.YAMLError as error:
                self.problems.append((hr, "helm-template-failed", f"renders invalid YAML: {error}"[:300]))
                continue
            if isinstance(body, dict) and body.get("kind"):
                obj = Obj(body=body, owner=hr.owner, file=hr.file)
                obj.rendered_by = f"{hr.namespace}/{hr.name}"
                objects.append(obj)
        return objects


def _reason(outcome: Outcome) -> str:
    """One line of why helm failed: the limit it hit, else its message."""
    if outcome.limit:
        return outcome.problem
    return " ".join(outcome.stderr.split())[:300] or f"helm exited {outcome.returncode}"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _local_chart_problem(engine: Engine, folder: Path) -> str | None:
    problem = check_file(engine.view, folder)
    if problem is not None:
        return f"its chart folder {os.path.relpath(folder, engine.root)} {problem[1]}"
    if not (folder / "Chart.yaml").is_file():
        return f"its chart folder {os.path.relpath(folder, engine.root)} has no Chart.yaml"
    return None


def chart_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "home-ops" / "charts"


def clear_cache(cache: Path | None = None) -> None:
    shutil.rmtree(cache or chart_cache(), ignore_errors=True)


__all__ = ["SOURCE_GROUP", "Chart", "Rendered", "Renderer", "release_name", "set_path"]
