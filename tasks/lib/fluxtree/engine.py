"""Discover and build a Flux tree the way Flux would, level by level.

The root is a synthetic ``flux-system`` Kustomization whose path is the cluster directory
(``kubernetes/flux/cluster``). Every level's Kustomizations are built together (see
:mod:`.build`), their output substituted (``postBuild``), and the Kustomizations found in it
form the next level. A final pass substitutes every output again with everything the whole
tree creates, so ``substituteFrom`` sees ConfigMaps/Secrets from any level.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import kustfiles, sources, yamlio
from .build import Builder, BuildItem, BuildResult, Doc, kustomize_error, strip_origin
from .entry import FluxFacts, facts
from .model import KS_GROUP, SOURCE_GROUP, SOURCE_KINDS, FluxKustomization, Obj, Problem, Ref, Tree
from .registry import Registry
from .subst import DISABLED_KEY, is_disabled, substitute
from .varlines import VariableFinder

FLUX_FIELDS = (
    "targetNamespace",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "components",
)
REPO_KINDS = ("GitRepository", "OCIRepository", "Bucket")
_ACCUMULATING = re.compile(r"accumulating (?:resources|components) from '([^']+)'")
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
        self.view = kustfiles.SourceView.of(self.root)
        self.cache = kustfiles.KDirCache(self.view)
        self.registry = Registry()
        self.tree = Tree(root=str(self.root), entry=rel(self.root, self.entry))
        self.raw: dict[str, list[Doc]] = {}
        self.vars_used: dict[str, dict[str, str] | None] = {}
        self.user_vars = {str(k): str(v) for k, v in (variables or {}).items()}
        self.progress = progress
        #: The entry's own source (flux-system, made by the bootstrap or the FluxInstance): this
        #: repository, whatever its URL.
        self.entry_sources: set[Ref] = {Ref(kind, "flux-system", "flux-system") for kind in REPO_KINDS}
        #: Sources the bootstrap applies before Flux runs (the tree's own win over them).
        self.bootstrap_objects: dict[Ref, Obj] = {}
        self.flux: FluxFacts = facts(self.root, self.entry)
        #: URLs that are this repository: its git remotes and what the cluster syncs.
        self.remote = sources.repository_urls(self.root) | self.flux.sync_urls
        self.failed: set[str] = set()
        self.incomplete: set[str] = set()
        #: Kustomization id -> (variables it was substituted with, objects, unresolved, problems)
        self.substituted: dict[str, tuple[Any, list[Obj], list[tuple[Doc, str]], list[tuple[Any, ...]]]] = {}
        self.lines = sources.LineFinder(self.root)
        self.variables_at = VariableFinder(self.root)

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
    def known_sources(self) -> set[Ref]:
        """Every source that exists once the tree is applied: the entry's, the bootstrap's, the tree's."""
        return self.entry_sources | set(self.source_objects())

    def source_objects(self) -> dict[Ref, Obj]:
        """Every source the bootstrap and the tree create, ExternalArtifacts of
        ArtifactGenerators included (the tree's object wins over the bootstrap's)."""
        out: dict[Ref, Obj] = dict(self.bootstrap_objects)
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
        if ks.synthetic or ref in self.entry_sources:
            return "repo"
        found = self.source_objects().get(ref)
        if found is None:
            return "unknown"
        url = str(found.spec.get("url", ""))
        if found.kind == "GitRepository" and sources.same_repository(url, self.remote):
            return "repo"
        if found.kind == "GitRepository" and url and self._manages_the_entry(ks):
            self.remote.add(sources.normalize_url(url))  # its source is this checkout
            return "repo"
        if found.kind == "GitRepository" and not self.remote and ks.path and (self.root / ks.path).is_dir():
            # Nothing says which repository this is (no git remote, no sync URL): a Git source
            # whose (non-empty) path exists here is taken to be this repository.
            return "repo"
        return "external"

    def _manages_the_entry(self, ks: FluxKustomization) -> bool:
        """Whether ``ks`` is the root of a cluster bootstrapped by hand: applied by the entry,
        no sync definition anywhere, and its path holds the file it is written in (so it
        applies itself, from the repository this checkout is)."""
        parent = self.tree.kustomizations.get(ks.parent)
        if parent is None or not parent.synthetic or self.flux.syncs:
            return False
        return Path(ks.file).is_relative_to(ks.path) and self.entry.is_relative_to(self.root / ks.path)

    # Planning -----------------------------------------------------------------------------
    def field_line(self, file: str, keys: tuple[str, ...], value: str, **where: str) -> int | None:
        """The line of ``value`` under ``keys`` in a repository file (see :func:`yamlio.value_line`)."""
        try:
            text = yamlio.read_text(self.root / file)
        except (OSError, ValueError):
            return None
        return yamlio.value_line(text, keys, value, **where)

    def ks_problem(
        self,
        kind: str,
        ks: FluxKustomization,
        message: str,
        keys: tuple[str, ...],
        value: str,
        near: str = "",
    ) -> None:
        """A problem at the line of one field of a Flux Kustomization (its first line when the
        field cannot be found)."""
        line = self.field_line(ks.file, ("spec", *keys), value, kind="Kustomization", name=ks.name, near=near)
        self.problem(
            kind, ks.file, message, ks.id, line, subject=None if line else ("Kustomization", ks.name)
        )

    def _flux_kustomization(
        self,
        ks: FluxKustomization,
        kdir: kustfiles.KDir,
        directory: Path,
        generated: kustfiles.Generated | None,
    ) -> dict[str, Any]:
        """The kustomization Flux writes into the path before building it
        (``fluxcd/pkg/kustomize``'s generator)."""
        if kdir.file is not None or generated is None:
            data = dict(kdir.data)
        else:
            data = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
            if generated.resources:
                data["resources"] = generated.resources
            else:
                data["namespace"] = "_placeholder"  # as Flux does, so the build is not "empty"
        if kdir.remote:
            data = kustfiles.without_remote(data)
        spec = ks.spec
        if spec.get("targetNamespace"):
            data["namespace"] = spec["targetNamespace"]
        for key in ("namePrefix", "nameSuffix"):
            if spec.get(key):
                data[key] = spec[key]
        for key in ("patches", "patchesStrategicMerge", "patchesJson6902"):
            if spec.get(key):
                data[key] = [*(data.get(key) or []), *spec[key]]
        components = self._components(ks, directory)
        if components:
            data["components"] = [*(data.get("components") or []), *components]
        for image in spec.get("images") or []:
            if isinstance(image, dict):
                data["images"] = _merge_image(data.get("images") or [], image)
        if spec.get("buildMetadata"):
            data["buildMetadata"] = spec["buildMetadata"]
        return data

    def _components(self, ks: FluxKustomization, directory: Path) -> list[str]:
        """``spec.components`` as Flux adds them: missing ones dropped when
        ``ignoreMissingComponents`` is set."""
        out = []
        for component in ks.spec.get("components") or []:
            if ks.spec.get("ignoreMissingComponents") and not (directory / str(component)).exists():
                continue
            out.append(str(component))
        return out

    def _check_path(self, ks: FluxKustomization) -> Path | None:
        """The directory ``spec.path`` names in the source, or None (with the problem recorded)."""
        raw = str(ks.spec.get("path") or "")
        if ks.path_escapes:
            self.ks_problem(
                "outside-source",
                ks,
                f"spec.path '{raw}' leads outside the source root: Flux keeps it inside, as './{ks.path}'",
                ("path",),
                raw,
            )
        directory = self.root / ks.path
        problem = kustfiles.check_file(self.view, directory)
        if problem is None and not directory.is_dir():
            problem = ("missing-file", "is not a directory")
        if problem is not None:
            kind, reason = problem
            self.ks_problem(kind, ks, f"spec.path './{ks.path}' {reason}", ("path",), raw)
            return None
        return directory

    def _check_components(self, ks: FluxKustomization, directory: Path) -> bool:
        ok = True
        for component in ks.spec.get("components") or []:
            text = str(component)
            target = Path(os.path.normpath(directory / text))
            if kustfiles.is_remote(text) or text.lower().startswith("file://") or os.path.isabs(text):
                problem: tuple[str, str] | None = (
                    "build-failed",
                    "must be local and relative (Flux refuses it)",
                )
            else:
                problem = kustfiles.check_file(self.view, target)
                if problem is None and not target.is_dir():
                    problem = ("missing-file", "is not a directory")
            if problem is not None and not (ks.spec.get("ignoreMissingComponents") and not target.exists()):
                self.ks_problem(
                    problem[0], ks, f"spec.components entry '{text}' {problem[1]}", ("components",), text
                )
                ok = False
        return ok

    def _closure(
        self, ks: FluxKustomization, directory: Path, kdir: kustfiles.KDir
    ) -> tuple[list[kustfiles.KDir], kustfiles.Generated | None] | None:
        """Every kustomization directory the build loads, and the generated kustomization
        when the path has none; None (problems recorded) when the build cannot start."""
        generated = None
        try:
            if kdir.file is not None:
                closure = self.cache.closure(directory)
            else:
                generated = kustfiles.generated_resources(directory, self.view)
                for path, line, message in generated.errors:
                    self.problem("yaml-invalid", rel(self.root, path), message, ks.id, line)
                for path, kind, reason in generated.refused:
                    self.problem(kind, rel(self.root, path), f"{path.name} {reason}", ks.id)
                closure = [kdir]
                for resource in generated.resources:
                    if (directory / resource).is_dir():
                        closure += self.cache.closure(directory / resource)
            for component in self._components(ks, directory):
                target = directory / component
                if target.is_dir():
                    closure += self.cache.closure(target)
        except kustfiles.NestingTooDeep as error:
            kfile = kustfiles.kustomization_file(directory)
            self.problem("file-refused", rel(self.root, kfile) if kfile else ks.file, str(error), ks.id)
            return None
        if generated is not None and (generated.errors or generated.refused):
            return None
        return closure, generated

    def build_item(self, ks: FluxKustomization) -> BuildItem | None:
        """How to build ``ks``, or None (with the reason recorded) when it cannot be built."""
        directory = self._check_path(ks)
        if directory is None or not self._check_components(ks, directory):
            return None
        kdir = self.cache.get(directory)
        found = self._closure(ks, directory, kdir)
        if found is None:
            return None
        closure, generated = found
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
        if kdir.file is not None and not item.renames and not item.alone:
            # Built with a nameSuffix of its own in a shared batch: only what kustomize never
            # renames can still collide with another item's objects.
            item.fixed = frozenset(d.path for d in closure if d.unrenamed or d.file is None)
        if (
            kdir.file is None
            or kdir.remote
            or any(ks.spec.get(k) for k in (*FLUX_FIELDS, "namePrefix", "nameSuffix", "buildMetadata"))
        ):
            item.overrides[directory] = self._flux_kustomization(ks, kdir, directory, generated)
        for d in remote:
            if d.path != directory:
                item.overrides[d.path] = kustfiles.without_remote(d.data)
        if any(path != directory for path in item.overrides):
            # An overridden folder below the path: every folder on the way must be a real
            # folder of the shadow, holding links to its own files.
            item.materialize = {d.path for d in closure}
        return item

    def _closure_ok(self, ks: FluxKustomization, closure: list[kustfiles.KDir]) -> bool:
        """Report what kustomize-controller would refuse to load, at the line that names it."""
        ok = True
        for d in closure:
            file = rel(self.root, d.file or d.path)
            if d.error:
                self.problem(d.error_kind, file, d.error[1], ks.id, d.error[0])
                ok = False
            for refusal in d.refused:
                line = yamlio.value_line(d.text, (refusal.key,), refusal.ref) if d.text else None
                self.problem(
                    refusal.kind, file, f"{refusal.key} entry '{refusal.ref}' {refusal.reason}", ks.id, line
                )
                ok = False
        return ok

    # Building -----------------------------------------------------------------------------
    def _explain_failure(self, ks: FluxKustomization, result: BuildResult, builder: Builder) -> None:
        if result.internal:
            self.internal_error(ks, result.error)
            return
        self.failed.add(ks.id)
        directory = self.root / ks.path
        errors = kustfiles.yaml_errors(self.kdirs(ks))
        for path, line, message in errors:
            self.problem("yaml-invalid", rel(self.root, path), message, ks.id, line)
        if errors:
            return
        file, text = kustomize_error(result.error, self.root, (builder.tmp, builder.real_tmp))
        line = None
        if file is None or Path(file).name in kustfiles.KUSTOMIZATION_FILES:
            # A folder kustomize could not use (a Component listed as a resource, ...): the
            # line to edit is the entry that lists it.
            listed = self._listing_entry(ks, result.error)
            if listed is not None:
                file, line = listed
        if file is None:
            kfile = kustfiles.kustomization_file(directory)
            file = rel(self.root, kfile) if kfile else ks.file
        self.problem("build-failed", file, text, ks.id, line)

    def _listing_entry(self, ks: FluxKustomization, error: str) -> tuple[str, int | None] | None:
        """(kustomization file, line) of the innermost ``resources``/``components`` entry
        kustomize names in ``error``."""
        entries = _ACCUMULATING.findall(error)
        if not entries:
            return None
        wanted = entries[-1]
        for kdir in self.kdirs(ks):
            for key in ("resources", "components", "bases"):
                if kdir.file is not None and wanted in (kdir.data.get(key) or []):
                    return rel(self.root, kdir.file), yamlio.value_line(kdir.text, (key,), wanted)
        return None

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
        """What ``ks`` applies after ``postBuild`` substitution (with ``report``, its
        substitution problems are recorded). Computed once per set of variables: the final
        pass reuses the first one's when nothing the variables come from changed."""
        variables, complete = self.variables(ks)
        key = (tuple(sorted((variables or {}).items())), variables is None, complete)
        done = self.substituted.get(ks.id)
        if done is None or done[0] != key:
            done = (key, *self._substitute(ks, variables, complete))
            self.substituted[ks.id] = done
        _key, out, unresolved, problems = done
        if not complete:
            self.incomplete.add(ks.id)  # values unknown offline: substituted names are guesses
        if report:
            for args in problems:
                self.problem(*args)
            if unresolved:
                self._report_unresolved(ks, unresolved)
        return out

    def _substitute(
        self, ks: FluxKustomization, variables: dict[str, str] | None, complete: bool
    ) -> tuple[list[Obj], list[tuple[Doc, str]], list[tuple[Any, ...]]]:
        """(objects, unresolved (document, variable), problems to report)."""
        out: list[Obj] = []
        unresolved: list[tuple[Doc, str]] = []
        problems: list[tuple[Any, ...]] = []
        for doc in self.raw.get(ks.id, []):
            body = doc.body
            if variables and "${" in doc.text and not is_disabled(body):
                result = substitute(doc.text, variables)
                if result.error:
                    message = (
                        f"Flux's postBuild substitution stops here: {result.error} (escape it as $${{...}} "
                        f"or annotate the object {DISABLED_KEY}: disabled)"
                    )
                    problems.append(("substitution-failed", doc.file, message, ks.id, None, _subject(body)))
                try:
                    parsed = yamlio.load(result.text)
                except yamlio.YAMLError as error:
                    _line, _c, text = yamlio.error_position(error)
                    problems.append(("yaml-invalid", doc.file, f"after substitution: {text}", ks.id))
                    parsed = None
                if isinstance(parsed, dict):
                    strip_origin(parsed)
                    body = parsed
                if complete:
                    unresolved += [(doc, name) for name in dict.fromkeys(result.unresolved)]
            written = _subject(doc.body)[1]
            obj = Obj(body=body, owner=ks.id, file=doc.file)
            obj.written_name = written if written != obj.name else ""
            out.append(obj)
        _common_metadata(ks, out)
        return out, unresolved, problems

    def _report_unresolved(self, ks: FluxKustomization, unresolved: list[tuple[Doc, str]]) -> None:
        """One problem per variable and file, at the line that uses it."""
        if self.flux.strict:
            why = f"Flux fails the whole Kustomization {ks.id} (strict substitution: {self.flux.describe()})"
        else:
            why = f"Flux replaces it with an empty string ({self.flux.describe()})"
        others = [ks.file, *(rel(self.root, d.file) for d in self.kdirs(ks) if d.file is not None)]
        seen: set[tuple[str, str]] = set()
        for doc, name in unresolved:
            object_line = self.lines.find(doc.file, *_subject(doc.body))
            file, line = self.variables_at.locate(name, doc.file, doc.body, object_line, others)
            if (file, name) in seen:
                continue
            seen.add((file, name))
            self.problem(
                "unresolved-variable",
                file,
                f"${{{name}}} has no value and no default: {why}; pass --var {name}=VALUE if it lives in "
                "the cluster",
                ks.id,
                line,
            )

    def kdirs(self, ks: FluxKustomization) -> list[kustfiles.KDir]:
        """The kustomization directories ``ks``'s build loaded (empty when unknown)."""
        try:
            return self.cache.closure(self.root / ks.path)
        except kustfiles.NestingTooDeep:
            return []

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
        self.registry.add_object(body, namespace, file, bootstrap=True)
        kind = str(body.get("kind", ""))
        if kind in SOURCE_KINDS and str(body.get("apiVersion", "")).startswith(SOURCE_GROUP):
            obj = Obj(body=body, owner="", file=file)
            self.bootstrap_objects.setdefault(Ref(kind, namespace, obj.name), obj)

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
        lines = self.lines
        problems = set()
        for problem in self.tree.problems:
            line = problem.line
            if line is None and problem.subject:
                line = lines.find(problem.file, *problem.subject)
            problems.add(replace(problem, line=line, chain=self.chain(problem.kustomization)))
        self.tree.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.kind, p.message))


def _subject(body: dict[str, Any]) -> tuple[str, str]:
    return str(body.get("kind", "")), str((body.get("metadata") or {}).get("name", ""))


def _merge_image(images: list[Any], image: dict[str, Any]) -> list[Any]:
    """Flux's merge of a ``spec.images`` entry into the kustomization's: fields set only in
    the kustomization survive; a new tag or digest replaces both."""
    out = [dict(i) if isinstance(i, dict) else i for i in images]
    for existing in out:
        if isinstance(existing, dict) and existing.get("name") == image.get("name"):
            if image.get("newName"):
                existing["newName"] = image["newName"]
            if image.get("newTag") or image.get("digest"):
                existing.pop("newTag", None)
                existing.pop("digest", None)
                existing.update({k: image[k] for k in ("newTag", "digest") if image.get(k)})
            return out
    return [*out, {k: image[k] for k in ("name", "newName", "newTag", "digest") if image.get(k)}]


def _common_metadata(ks: FluxKustomization, objects: list[Obj]) -> None:
    common = ks.spec.get("commonMetadata")
    if not isinstance(common, dict):
        return
    for obj in objects:
        metadata = obj.body.setdefault("metadata", {})
        for key in ("labels", "annotations"):
            if isinstance(common.get(key), dict):
                metadata[key] = {**(metadata.get(key) or {}), **common[key]}
