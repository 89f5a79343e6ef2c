"""Discover and build a Flux tree the way Flux would, level by level.

The root is a synthetic ``flux-system`` Kustomization whose path is the cluster directory
(``kubernetes/flux/cluster``). Every level's Kustomizations are built together (see
:mod:`.build`), their output substituted (``postBuild``), and the Kustomizations found in it
form the next level. A final pass substitutes every output again with everything the whole
tree creates, so ``substituteFrom`` sees ConfigMaps/Secrets from any level.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import kustfiles, sources, yamlio
from .build import Builder, BuildItem, BuildResult, Doc, kustomize_error
from .model import KS_GROUP, SOURCE_GROUP, SOURCE_KINDS, FluxKustomization, Obj, Problem, Ref, Tree
from .registry import Registry
from .subst import DISABLED_KEY, is_disabled, substitute

FLUX_FIELDS = (
    "targetNamespace",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "components",
)
REPO_KINDS = ("GitRepository", "OCIRepository", "Bucket")
BOOTSTRAP_KEY = "bootstrap:"  # build keys of bootstrap folders (Kustomization ids have no colon)


def rel(root: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) or "."
    except ValueError:
        return str(path)


class Engine:
    def __init__(
        self,
        root: Path,
        entry: Path,
        *,
        workers: int | None = None,
        variables: Mapping[str, str] | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.entry = entry.resolve()
        self.workers = workers or os.cpu_count() or 2
        self.cache = kustfiles.KDirCache()
        self.registry = Registry()
        self.tree = Tree(root=str(self.root), entry=rel(self.root, self.entry))
        self.raw: dict[str, list[Doc]] = {}
        self.vars_used: dict[str, dict[str, str] | None] = {}
        self.user_vars = {str(k): str(v) for k, v in (variables or {}).items()}
        self.progress = progress
        #: Sources known to exist without being in the tree: the entry's own (flux-system, made
        #: by the bootstrap / FluxInstance), and sources the bootstrap applies.
        self.bootstrap_sources: set[Ref] = {Ref(kind, "flux-system", "flux-system") for kind in REPO_KINDS}
        self.remote = sources.repository_urls(self.root)
        self.failed: set[str] = set()

    def problem(
        self,
        kind: str,
        file: str,
        message: str,
        ks: str = "",
        line: int | None = None,
        subject: tuple[str, str] | None = None,
    ) -> None:
        self.tree.problems.append(
            Problem(file=file, kind=kind, message=message, kustomization=ks, line=line, subject=subject)
        )

    def internal_error(self, ks: FluxKustomization, error: BaseException | str) -> None:
        """An unexpected failure while handling ``ks``: reported on it, and the run goes on."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.failed.add(ks.id)
        self.problem(
            "internal-error",
            ks.file,
            f"could not validate Kustomization {ks.id} ({text}); this is a bug in the validator, "
            "please report it",
            ks.id,
        )

    # Sources ------------------------------------------------------------------------------
    def source_objects(self) -> dict[Ref, Obj]:
        """Every source the tree creates, ExternalArtifacts of ArtifactGenerators included."""
        out: dict[Ref, Obj] = {}
        for o in self.tree.objects():
            if o.kind in SOURCE_KINDS and o.group == SOURCE_GROUP:
                out[o.ref] = o
            elif o.kind == "ArtifactGenerator":
                for artifact in o.spec.get("artifacts") or []:
                    if isinstance(artifact, dict) and artifact.get("name"):
                        out[Ref("ExternalArtifact", o.namespace, str(artifact["name"]))] = o
        return out

    def source_state(self, ks: FluxKustomization) -> str:
        """ "repo" when ``ks`` is built from this repository, "external" when its source is
        another repository or artifact, "unknown" when no such source exists (yet)."""
        ref = ks.source_ref()
        if ks.synthetic or ref in self.bootstrap_sources:
            return "repo"
        found = self.source_objects().get(ref)
        if found is None:
            return "unknown"
        url = str(found.spec.get("url", ""))
        if found.kind == "GitRepository" and sources.same_repository(url, self.remote):
            return "repo"
        if found.kind == "GitRepository" and not self.remote and (self.root / ks.path).is_dir():
            # No git remote to compare with (an extracted archive): a Git source whose path
            # exists here is taken to be this repository.
            return "repo"
        return "external"

    # Planning -----------------------------------------------------------------------------
    def _flux_kustomization(
        self, ks: FluxKustomization, kdir: kustfiles.KDir, directory: Path
    ) -> dict[str, Any]:
        """The kustomization Flux writes into the path before building it."""
        if kdir.file is not None:
            data = dict(kdir.data)
        else:
            resources, errors = kustfiles.generated_resources(directory)
            for path, line, message in errors:
                self.problem("yaml-invalid", rel(self.root, path), message, ks.id, line)
            data = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": resources,
            }
        if kdir.remote:
            data = kustfiles.without_remote(data)
        spec = ks.spec
        if spec.get("targetNamespace"):
            data["namespace"] = spec["targetNamespace"]
        for key in ("patches", "patchesStrategicMerge", "patchesJson6902", "components"):
            if spec.get(key):
                data[key] = [*(data.get(key) or []), *spec[key]]
        for image in spec.get("images") or []:
            images = [i for i in data.get("images") or [] if i.get("name") != image.get("name")]
            data["images"] = [*images, image]
        for key in ("namePrefix", "nameSuffix"):
            if spec.get(key):
                data[key] = spec[key]
        return data

    def build_item(self, ks: FluxKustomization) -> BuildItem | None:
        """How to build ``ks``, or None (with the reason recorded) when it cannot be built."""
        directory = self.root / ks.path
        if not directory.is_dir():
            self.problem("missing-file", ks.file, f"spec.path './{ks.path}' does not exist", ks.id)
            return None
        kdir = self.cache.get(directory)
        closure = (
            self.cache.closure(directory)
            if kdir.file
            else [
                kdir,
                *[
                    d
                    for r in kustfiles.generated_resources(directory)[0]
                    if (directory / r).is_dir()
                    for d in self.cache.closure(directory / r)
                ],
            ]
        )
        for component in ks.spec.get("components") or []:
            target = directory / str(component)
            if not target.is_dir():
                self.problem(
                    "missing-file", ks.file, f"spec.components entry '{component}' does not exist", ks.id
                )
                return None
            closure += self.cache.closure(target)
        if not self._closure_ok(ks, closure):
            return None
        remote = [d for d in closure if d.remote]
        for d in remote:
            where = rel(self.root, d.file or d.path)
            self.tree.notes.append(f"{where}: skipped remote reference(s) {', '.join(d.remote)} (offline)")
        item = BuildItem(
            key=ks.id,
            directory=directory,
            alone=any(d.data.get("vars") for d in closure),
            renames=any(d.renames for d in closure)
            or bool(ks.spec.get("namePrefix") or ks.spec.get("nameSuffix")),
            namespace=str(ks.spec.get("targetNamespace") or ""),
            dirs=frozenset(d.path for d in closure),
        )
        if (
            kdir.file is None
            or kdir.remote
            or any(ks.spec.get(k) for k in (*FLUX_FIELDS, "namePrefix", "nameSuffix"))
        ):
            item.overrides[directory] = self._flux_kustomization(ks, kdir, directory)
        for d in remote:
            if d.path != directory:
                item.overrides[d.path] = kustfiles.without_remote(d.data)
        if any(path != directory for path in item.overrides):
            # An overridden folder below the path: every folder on the way must be a real
            # folder of the shadow, holding links to its own files.
            item.materialize = {d.path for d in closure}
        return item

    def _closure_ok(self, ks: FluxKustomization, closure: list[kustfiles.KDir]) -> bool:
        ok = True
        for d in closure:
            file = rel(self.root, d.file or d.path)
            if d.error:
                self.problem("yaml-invalid", file, d.error[1], ks.id, d.error[0])
                ok = False
            for key, ref in d.missing:
                self.problem("missing-file", file, f"{key} entry '{ref}' does not exist", ks.id)
                ok = False
        return ok

    # Building -----------------------------------------------------------------------------
    def _explain_failure(self, ks: FluxKustomization, result: BuildResult, builder: Builder) -> None:
        if result.internal:
            self.internal_error(ks, result.error)
            return
        self.failed.add(ks.id)
        directory = self.root / ks.path
        errors = kustfiles.yaml_errors(self.cache.closure(directory))
        for path, line, message in errors:
            self.problem("yaml-invalid", rel(self.root, path), message, ks.id, line)
        if errors:
            return
        file, text = kustomize_error(result.error, self.root, (builder.tmp, builder.real_tmp))
        if file is None:
            kfile = kustfiles.kustomization_file(directory)
            file = rel(self.root, kfile) if kfile else ks.file
        self.problem("build-failed", file, text, ks.id)

    def _register(self, ks: FluxKustomization, docs: list[Doc]) -> None:
        for doc in docs:
            namespace = str((doc.body.get("metadata") or {}).get("namespace") or "")
            self.registry.add_object(doc.body, namespace, doc.file)

    # Substitution -------------------------------------------------------------------------
    def variables(self, ks: FluxKustomization) -> tuple[dict[str, str] | None, bool]:
        """(variables, complete): None when the Kustomization has no postBuild; complete is
        False when some values cannot be known offline."""
        post = ks.spec.get("postBuild")
        if not isinstance(post, dict):
            return None, True
        # --var values stand for what lives only in the cluster: the lowest precedence.
        values: dict[str, str] = dict(self.user_vars) if post.get("substituteFrom") else {}
        complete = True
        for ref in post.get("substituteFrom") or []:
            if not isinstance(ref, dict):
                continue
            source = self.registry.get(str(ref.get("kind", "")), ks.namespace, str(ref.get("name", "")))
            if source is None:
                # An optional source nothing in the tree creates is taken as absent, as on a
                # cluster managed from this tree; a required one is reported on its own.
                complete = complete and (bool(ref.get("optional")) or bool(self.user_vars))
                continue
            complete = complete and (source.keys_known or bool(self.user_vars))
            values.update({k: v.replace("\n", "") for k, v in source.values.items()})
        substitute_map = post.get("substitute")
        for key, value in (substitute_map if isinstance(substitute_map, dict) else {}).items():
            values[str(key)] = str(value).replace("\n", "")
        if not values and complete:
            return None, True  # Flux substitutes only when there is at least one variable
        return values, complete

    def objects(self, ks: FluxKustomization, *, report: bool) -> list[Obj]:
        variables, complete = self.variables(ks)
        out: list[Obj] = []
        unresolved: dict[str, set[str]] = {}
        subjects: dict[str, tuple[str, str]] = {}  # file -> its first object with one
        for doc in self.raw.get(ks.id, []):
            body = doc.body
            if variables and "${" in doc.text and not is_disabled(body):
                result = substitute(doc.text, variables)
                names = result.unresolved
                if result.error and report:
                    self.problem(
                        "substitution-failed",
                        doc.file,
                        f"Flux's postBuild substitution stops here: {result.error} (escape it as $${{...}} "
                        f"or annotate the object {DISABLED_KEY}: disabled)",
                        ks.id,
                        subject=(
                            str(body.get("kind", "")),
                            str((body.get("metadata") or {}).get("name", "")),
                        ),
                    )
                try:
                    parsed = yamlio.load(result.text)
                except yamlio.YAMLError as error:
                    if report:
                        _line, _c, message = yamlio.error_position(error)
                        self.problem("yaml-invalid", doc.file, f"after substitution: {message}", ks.id)
                    parsed = None
                if isinstance(parsed, dict):
                    from .build import strip_origin

                    strip_origin(parsed)
                    body = parsed
                if complete and names:
                    unresolved.setdefault(doc.file, set()).update(names)
                    meta = doc.body.get("metadata") or {}
                    subjects.setdefault(doc.file, (str(doc.body.get("kind", "")), str(meta.get("name", ""))))
            out.append(Obj(body=body, owner=ks.id, file=doc.file))
        if report:
            for file, missing in sorted(unresolved.items()):
                listed = ", ".join(f"${{{n}}}" for n in sorted(missing))
                why = "no value and no default: Flux replaces it with an empty string"
                self.problem(
                    "unresolved-variable",
                    file,
                    f"{listed}: {why} (postBuild of {ks.id}; "
                    "pass --var NAME=VALUE if it lives in the cluster)",
                    ks.id,
                    subject=subjects.get(file),
                )
        _common_metadata(ks, out)
        return out

    # Discovery ----------------------------------------------------------------------------
    def _children(self, ks: FluxKustomization, objects: list[Obj]) -> list[FluxKustomization]:
        found = []
        for obj in objects:
            if obj.kind != "Kustomization" or obj.group != KS_GROUP:
                continue
            child = FluxKustomization(
                name=obj.name,
                namespace=obj.namespace or "default",
                spec=obj.spec,
                file=obj.file,
                parent=ks.id,
            )
            if child.id in self.tree.kustomizations:
                continue
            self.tree.kustomizations[child.id] = child
            found.append(child)
        return found

    def _ready(self, pending: list[FluxKustomization], final: bool) -> list[FluxKustomization]:
        """The pending Kustomizations to build now; decides those from other sources. A
        source not seen yet may still come from a later level, unless ``final``."""
        ready: list[FluxKustomization] = []
        for ks in list(pending):
            state = self.source_state(ks)
            if state == "unknown" and not final:
                continue
            pending.remove(ks)
            if state == "repo":
                ready.append(ks)
            elif state == "external":
                ks.skipped = f"source {ks.source_ref()} is external, not built"
            else:
                ks.skipped = f"source {ks.source_ref()} does not exist"
        return ready

    def _level(
        self,
        builder: Builder,
        level: list[FluxKustomization],
        done: int,
        total: int,
        bootstrap: list[BuildItem] | None = None,
    ) -> list[FluxKustomization]:
        """Build one level (with the first, the bootstrap folders, in the same processes);
        return the Kustomizations found in what it applies."""
        items: list[BuildItem] = []
        for ks in level:
            try:
                if (item := self.build_item(ks)) is not None:
                    items.append(item)
            except Exception as error:
                self.internal_error(ks, error)
        counter = [done]

        def advance(count: int) -> None:
            counter[0] += count
            if self.progress is not None:
                self.progress(counter[0], total, level[0].path if len(level) == 1 else f"{len(items)} paths")

        results = builder.build([*items, *(bootstrap or [])], advance)
        if bootstrap is not None:
            self._bootstrap(bootstrap, results)
        found: list[FluxKustomization] = []
        for ks in level:
            result = results.get(ks.id)
            if result is None:
                continue
            try:
                if not result.ok:
                    self._explain_failure(ks, result, builder)
                    continue
                self.raw[ks.id] = result.docs
                self._register(ks, result.docs)
                ks.built = True
            except Exception as error:
                self.internal_error(ks, error)
        for ks in level:
            if not ks.built:
                continue
            try:
                self.vars_used[ks.id] = self.variables(ks)[0]
                ks.objects = self.objects(ks, report=False)
                found += self._children(ks, ks.objects)
            except Exception as error:
                ks.built = False
                self.internal_error(ks, error)
        return found

    def run(self) -> Tree:
        started = time.perf_counter()
        root = FluxKustomization(
            name="flux-system",
            namespace="flux-system",
            spec={"path": rel(self.root, self.entry)},
            file=rel(self.root, self.entry),
            synthetic=True,
        )
        self.tree.kustomizations[root.id] = root
        pending = [root]
        done = 0
        with Builder(self.root, workers=self.workers) as builder:
            bootstrap: list[BuildItem] | None = self._bootstrap_items()
            final = False
            while pending:
                level = self._ready(pending, final)
                if not level:
                    if final:
                        break
                    final = True  # nothing left that a later level could unlock
                    continue
                final = False
                total = done + len(level) + len(pending)
                pending += self._level(builder, level, done, total, bootstrap)
                bootstrap = None
                done += len(level)
            self.tree.builds = builder.processes
        for ks in self.tree.kustomizations.values():
            if ks.built:
                try:
                    ks.objects = self.objects(ks, report=True)
                except Exception as error:
                    self.internal_error(ks, error)
        self._hand_over(root)
        self.tree.seconds = time.perf_counter() - started
        return self.tree

    def _hand_over(self, root: FluxKustomization) -> None:
        """The entry folder is applied by the bootstrap; when a real Kustomization applies an
        object of it too (a root managing its own folder), that Kustomization owns it."""
        real = {
            (o.group, o.kind, o.namespace, o.name)
            for ks in self.tree.kustomizations.values()
            if not ks.synthetic
            for o in ks.objects
        }
        root.objects = [o for o in root.objects if (o.group, o.kind, o.namespace, o.name) not in real]

    def _bootstrap_items(self) -> list[BuildItem]:
        """What the bootstrap step applies before Flux runs, to build with the first level:
        each bootstrap folder with a kustomization (namespace and generators as kustomize
        makes them)."""
        return [
            BuildItem(key=f"{BOOTSTRAP_KEY}{d}", directory=d)
            for d in self.registry.bootstrap_dirs(self.root)
            if not any(k.remote or k.error or k.missing for k in self.cache.closure(d))
        ]

    def _bootstrap(self, items: list[BuildItem], results: dict[str, BuildResult]) -> None:
        """Register what the bootstrap applies: the built folders' objects; loose manifests
        and those a bootstrap script names as they are."""
        built = [item.directory for item in items]
        covered: list[Path] = []
        for directory in built:
            result = results.get(f"{BOOTSTRAP_KEY}{directory}")
            if result is None or not result.ok:
                continue  # a bootstrap folder kustomize cannot build is read file by file
            covered.append(directory)
            for doc in result.docs:
                self._register_bootstrap(doc.body, doc.file)
        for path, body in self.registry.bootstrap_manifests(self.root, covered):
            self._register_bootstrap(body, rel(self.root, path))

    def _register_bootstrap(self, body: dict[str, Any], file: str) -> None:
        namespace = str((body.get("metadata") or {}).get("namespace") or "flux-system")
        self.registry.add_object(body, namespace, file)
        kind = str(body.get("kind", ""))
        if kind in SOURCE_KINDS and str(body.get("apiVersion", "")).startswith(SOURCE_GROUP):
            self.bootstrap_sources.add(
                Ref(kind, namespace, str((body.get("metadata") or {}).get("name", "")))
            )

    # Results ------------------------------------------------------------------------------
    def chain(self, ks_id: str) -> tuple[str, ...]:
        """The Kustomizations that apply ``ks_id``, outermost first (the synthetic root left out)."""
        out: list[str] = []
        current = self.tree.kustomizations.get(ks_id)
        while current is not None and not current.synthetic and current.id not in out:
            out.append(current.id)
            current = self.tree.kustomizations.get(current.parent)
        return tuple(reversed(out))

    def finish(self) -> None:
        """Give every problem the line of its object and its Kustomization chain; sort."""
        from dataclasses import replace

        lines = sources.LineFinder(self.root)
        problems = set()
        for problem in self.tree.problems:
            line = problem.line
            if line is None and problem.subject:
                line = lines.find(problem.file, *problem.subject)
            problems.add(replace(problem, line=line, chain=self.chain(problem.kustomization)))
        self.tree.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.kind, p.message))


def _common_metadata(ks: FluxKustomization, objects: list[Obj]) -> None:
    common = ks.spec.get("commonMetadata")
    if not isinstance(common, dict):
        return
    for obj in objects:
        metadata = obj.body.setdefault("metadata", {})
        for key in ("labels", "annotations"):
            if isinstance(common.get(key), dict):
                metadata[key] = {**(metadata.get(key) or {}), **common[key]}
