"""Cross-object checks over a built tree: dependencies, sources, duplicates, secrets."""

from __future__ import annotations

import contextlib
import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.lib.secrets.sopsfile import SECRET_ROOTS, is_encrypted, is_sops_name
from tasks.lib.tools.runner import Command, find_tool, run_one, started

from .engine import Engine
from .helm import Renderer
from .model import HR_GROUP, SOURCE_GROUP, SOURCE_KINDS, Obj, Ref
from .schemacheck import Invalid, prepare, read
from .walk import walk
from .yamlio import read_text

if TYPE_CHECKING:
    from tasks.lib.tools.runner import Outcome

SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "__pycache__", ".ruff_cache", ".pytest_cache"}


_HINT_CACHE: dict[Path, str] = {}


def _folder_text(directory: Path) -> str:
    """Every YAML file below ``directory``, concatenated (memoised per run's folders)."""
    if directory not in _HINT_CACHE:
        parts = []
        for current, dirs, files in walk(directory):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
            for name in files:
                if name.endswith((".yaml", ".yml")):
                    try:
                        parts.append(read_text(current / name))
                    except OSError:
                        continue
        _HINT_CACHE[directory] = "\n".join(parts)
    return _HINT_CACHE[directory]


def _hint(engine: Engine, kind: str, name: str) -> str:
    """Name the Kustomizations that were not built and whose folder does declare a ``kind``
    named ``name``: only a real link, never a guess."""
    kind_re, name_re = re.escape(kind), re.escape(name)
    pattern = re.compile(
        rf"^kind:\s*['\"]?{kind_re}['\"]?\s*$.*?^\s+name:\s*['\"]?{name_re}['\"]?\s*$"
        rf"|^\s+name:\s*['\"]?{name_re}['\"]?\s*$.*?^kind:\s*['\"]?{kind_re}['\"]?\s*$",
        re.MULTILINE | re.DOTALL,
    )
    broken = []
    for key, ks in sorted(engine.tree.kustomizations.items()):
        if ks.built or ks.synthetic or not (key in engine.failed or ks.skipped):
            continue
        directory = engine.root / ks.path
        if ks.path and directory.is_dir() and not ks.skipped and pattern.search(_folder_text(directory)):
            broken.append(key)
    return f" (it may come from {', '.join(broken)}, which was not built)" if broken else ""


def check_depends_on(engine: Engine) -> None:
    tree = engine.tree
    for ks in tree.kustomizations.values():
        for dep in ks.depends_on():
            if dep not in tree.kustomizations:
                name = dep.split("/", 1)[1]
                engine.ks_problem(
                    "depends-on-missing",
                    ks,
                    f"Kustomization {ks.id} depends on Kustomization {dep}, "
                    f"which does not exist{_hint(engine, 'Kustomization', name)}",
                    ("dependsOn",),
                    name,
                    near=name,
                )
    releases = {(o.namespace, o.name) for o in tree.helmreleases()}
    for hr in tree.helmreleases():
        for dep in hr.spec.get("dependsOn") or []:
            if not isinstance(dep, dict) or not dep.get("name"):
                continue
            key = (str(dep.get("namespace") or hr.namespace), str(dep["name"]))
            if key not in releases:
                line = engine.field_line(
                    hr.file, ("spec", "dependsOn"), key[1], kind="HelmRelease", name=hr.name, near=key[1]
                )
                engine.problem(
                    "depends-on-missing",
                    hr.file,
                    f"HelmRelease {hr.namespace}/{hr.name} depends on HelmRelease {key[0]}/{key[1]}, "
                    f"which does not exist{_hint(engine, 'HelmRelease', key[1])}",
                    hr.owner,
                    line,
                    subject=None if line else ("HelmRelease", hr.name),
                )


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every elementary cycle found by depth-first search, each once (rotated to start at
    its smallest member)."""
    cycles: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :]
                start = cycle.index(min(cycle))
                cycles.add(tuple(cycle[start:] + cycle[:start]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return [list(c) for c in sorted(cycles)]


def check_cycles(engine: Engine) -> None:
    tree = engine.tree
    graph = {
        k: [d for d in ks.depends_on() if d in tree.kustomizations] for k, ks in tree.kustomizations.items()
    }
    for cycle in find_cycles(graph):
        first = tree.kustomizations[cycle[0]]
        path = " -> ".join([*cycle, cycle[0]])
        engine.problem(
            "depends-on-cycle",
            first.file,
            f"dependsOn cycle: {path}",
            first.id,
            subject=("Kustomization", first.name),
        )


def _chart_ref(hr: Obj) -> Ref | None:
    spec = hr.spec
    ref = spec.get("chartRef")
    if not isinstance(ref, dict):
        chart = spec.get("chart") or {}
        ref = ((chart.get("spec") or {}) if isinstance(chart, dict) else {}).get("sourceRef")
    if not isinstance(ref, dict) or not ref.get("name"):
        return None
    return Ref(str(ref.get("kind", "")), str(ref.get("namespace") or hr.namespace), str(ref["name"]))


def check_sources(engine: Engine) -> None:
    tree = engine.tree
    known = engine.known_sources()
    for hr in tree.helmreleases():
        ref = _chart_ref(hr)
        subject = hr.subject
        if ref is None:
            engine.problem(
                "chart-source-missing",
                hr.file,
                f"HelmRelease {hr.namespace}/{hr.name} names no chart source",
                hr.owner,
                subject=subject,
            )
        elif ref not in known:
            engine.problem(
                "chart-source-missing",
                hr.file,
                f"HelmRelease {hr.namespace}/{hr.name}: chart source {ref} does not exist"
                f"{_hint(engine, ref.kind, ref.name)}",
                hr.owner,
                subject=subject,
            )
    for ks in tree.kustomizations.values():
        ref = ks.source_ref()
        if not ks.synthetic and ref not in known:
            engine.problem(
                "source-missing",
                ks.file,
                f"Kustomization {ks.id}: source {ref} does not exist{_hint(engine, ref.kind, ref.name)}",
                ks.id,
                subject=("Kustomization", ks.name),
            )


SSA_KEY = "kustomize.toolkit.fluxcd.io/ssa"


def ssa_policy(obj: Obj) -> str:
    """The object's apply policy (``kustomize.toolkit.fluxcd.io/ssa``, label or annotation,
    any case), lower case; "" when not set."""
    metadata = obj.body.get("metadata") or {}
    for key in ("annotations", "labels"):
        values = metadata.get(key) if isinstance(metadata, dict) else None
        if isinstance(values, dict) and values.get(SSA_KEY):
            return str(values[SSA_KEY]).lower()
    return ""


def check_duplicates(engine: Engine) -> None:
    """An object two Kustomizations apply: both own it, and the one that drops it deletes
    it. Copies marked ``ssa: IfNotPresent`` (created only when absent) or ``ssa: Ignore``
    (never applied) are shared on purpose and do not count."""
    owners: dict[tuple[str, str, str, str], list[Obj]] = defaultdict(list)
    for obj in engine.tree.objects():
        if ssa_policy(obj) not in ("ifnotpresent", "ignore"):
            owners[(obj.group, obj.kind, obj.namespace, obj.name)].append(obj)
    for (_group, kind, namespace, name), objs in sorted(owners.items()):
        distinct = sorted({o.owner for o in objs})
        label = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
        for owner in distinct:
            twice = [o for o in objs if o.owner == owner]
            if (
                len(twice) > 1 and owner not in engine.incomplete
            ):  # two manifests that substitution made one object
                files = ", ".join(sorted({o.file for o in twice}))
                engine.problem(
                    "duplicate-object",
                    twice[-1].file,
                    f"{label} is applied {len(twice)} times by {owner} after substitution, the last "
                    f"copy silently wins ({files})",
                    owner,
                    subject=twice[-1].subject,
                )
        if len(distinct) < 2:
            continue
        where = ", ".join(f"{o.owner} ({o.file})" for o in sorted(objs, key=lambda o: o.owner))
        last = sorted(objs, key=lambda o: o.owner)[-1]
        message = f"{label} is applied by {len(distinct)} Kustomizations: {where}"
        engine.problem("duplicate-object", last.file, message, last.owner, subject=last.subject)


def check_substitute_from(engine: Engine) -> None:
    for ks in engine.tree.kustomizations.values():
        post = ks.spec.get("postBuild")
        if not isinstance(post, dict):
            continue
        for ref in post.get("substituteFrom") or []:
            if not isinstance(ref, dict) or ref.get("optional"):
                continue
            kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
            if engine.registry.get(kind, ks.namespace, name) is None:
                engine.problem(
                    "substitute-from-missing",
                    ks.file,
                    f"Kustomization {ks.id}: substituteFrom {kind} {ks.namespace}/{name} "
                    f"is created by nothing in the tree{_hint(engine, kind, name)} "
                    "(mark it optional: true if it may be absent)",
                    ks.id,
                    subject=("Kustomization", ks.name),
                )


def repository_files(root: Path) -> list[Path]:
    """Files under bootstrap/, kubernetes/ and talos/ that git would commit (tracked and
    untracked, not ignored); every file there when ``root`` is not a git repository."""
    roots = [name for name in SECRET_ROOTS if (root / name).is_dir()]
    if not roots:
        return []

    if find_tool("git") is not None and (root / ".git").exists():
        argv = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *roots]
        outcome = run_one(Command(tuple(argv), cwd=root))
        if outcome.ok:
            return [root / name for name in outcome.stdout.split("\0") if name]
    files = []
    for name in roots:
        for current, dirs, names in walk(root / name):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
            files += [current / n for n in names]
    return files


def check_sops(engine: Engine) -> None:
    root = engine.root
    for path in repository_files(root):
        if path.name == ".sops.yaml" or not is_sops_name(path) or not path.is_file():
            continue
        if not is_encrypted(path):
            engine.problem(
                "sops-unencrypted", str(path.relative_to(root)), "named *.sops.* but not encrypted"
            )


def check_rendered(engine: Engine, only: set[str] | None = None) -> None:
    """``--helm``: render every HelmRelease (those of ``only``, ids, when given); its
    failures are problems of the HelmRelease, unreachable chart sources one note each."""
    releases = engine.tree.helmreleases()
    if find_tool("helm") is None:
        engine.tree.notes.append(f"--helm: helm is missing, {len(releases)} HelmRelease(s) not rendered")
        return
    renderer = Renderer(engine, only=only)
    rendered = renderer.render()
    engine.tree.rendered = rendered.objects
    engine.tree.notes += rendered.notes
    for hr, kind, message in renderer.problems:
        engine.problem(kind, hr.file, message, hr.owner, subject=hr.subject)


def check_schemas(engine: Engine, invalid: list[Invalid]) -> None:
    """Every object, and what the charts render (``--helm``), against the Kubernetes API
    schemas (kubeconform, offline, in the background while the other checks run): what the
    API server refuses fails Flux's apply of the whole Kustomization, or helm-controller's
    install of the release."""
    for found in invalid:
        obj = found.obj
        label = f"{obj.kind} {obj.namespace}/{obj.name}" if obj.namespace else f"{obj.kind} {obj.name}"
        if obj.rendered_by:
            owner = f"HelmRelease {obj.rendered_by}'s chart renders {label}"
            effect = "helm-controller's install fails"
        else:
            owner, effect = label, f"Flux's apply of {obj.owner} fails"
        engine.problem(
            "schema-invalid",
            obj.file,
            f"{owner}: {found.reason} (the API server refuses it: {effect})",
            obj.owner,
            subject=("HelmRelease", obj.rendered_by.split("/", 1)[1]) if obj.rendered_by else obj.subject,
        )


@contextlib.contextmanager
def schemas_in_background(engine: Engine) -> Iterator[Callable[[], list[Invalid]]]:
    """Start kubeconform over every object; the block gets a function that waits for it."""
    rendered = [obj for objects in engine.tree.rendered.values() for obj in objects]
    plan = prepare([*engine.tree.objects(), *rendered])

    def finish(outcome: Outcome | None) -> list[Invalid]:
        invalid, notes = read(plan, outcome)
        engine.tree.notes += notes
        return invalid

    if plan.command is None:
        yield lambda: finish(None)
        return
    with started([plan.command]) as batch:
        yield lambda: finish(batch.wait()[0])


def check_not_validated(engine: Engine) -> None:
    """``--strict``: a Kustomization that was skipped (external or missing source) is a
    problem, since nothing about what it applies was checked."""
    for ks in engine.tree.kustomizations.values():
        if ks.skipped and not ks.synthetic:
            engine.problem(
                "not-validated",
                ks.file,
                f"Kustomization {ks.id} was not validated: {ks.skipped} (--strict)",
                ks.id,
                subject=("Kustomization", ks.name),
            )


CHECKS = (
    check_depends_on,
    check_cycles,
    check_sources,
    check_duplicates,
    check_substitute_from,
    check_sops,
)


def run_checks(engine: Engine) -> None:
    """Every check; one that fails unexpectedly is reported as a bug and the others still
    run. kubeconform runs in the background meanwhile."""
    _HINT_CACHE.clear()
    with schemas_in_background(engine) as schemas:
        for check in CHECKS:
            _guarded(engine, check.__name__, functools.partial(check, engine))
        _guarded(engine, "check_schemas", lambda: check_schemas(engine, schemas()))


def _guarded(engine: Engine, name: str, step: Callable[[], None]) -> None:
    try:
        step()
    except Exception as error:
        engine.problem(
            "internal-error",
            engine.tree.entry,
            f"{name} failed ({type(error).__name__}: {error}); this is a bug in the validator, "
            "please report it",
        )


__all__ = ["HR_GROUP", "SOURCE_GROUP", "SOURCE_KINDS", "find_cycles", "run_checks"]
