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
from pathlib import Path
from typing import Any

from . import kustfiles, yamlio
from .build import Builder, BuildItem, BuildResult, Doc
from .model import KS_GROUP, FluxKustomization, Obj, Problem, Ref, Tree
from .registry import Registry
from .subst import is_disabled, substitute

FLUX_FIELDS = (
    "targetNamespace",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "components",
)
REPO_KINDS = ("GitRepository", "OCIRepository", "Bucket")


def rel(root: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) or "."
    except ValueError:
        return str(path)


class Engine:
    def __init__(self, root: Path, entry: Path, *, workers: int | None = None) -> None:
        self.root = root.resolve()
        self.entry = entry.resolve()
        self.workers = workers or os.cpu_count() or 2
        self.cache = kustfiles.KDirCache()
        self.registry = Registry()
        self.tree = Tree(root=str(self.root), entry=rel(self.root, self.entry))
        self.raw: dict[str, list[Doc]] = {}
        self.vars_used: dict[str, dict[str, str] | None] = {}
        self.repo_sources: set[Ref] = {Ref(kind, "flux-system", "flux-system") for kind in REPO_KINDS}
        self.failed: set[str] = set()

    def problem(self, kind: str, file: str, message: str, ks: str = "", line: int | None = None) -> None:
        self.tree.problems.append(Problem(file=file, kind=kind, message=message, kustomization=ks, line=line))

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
        for key in ("resources", "components"):
            if kdir.remote and key in data:
                data[key] = [r for r in data[key] if not (isinstance(r, str) and kustfiles.is_remote(r))]
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

    def plan(self, ks: FluxKustomization) -> BuildItem | None:
        """How to build ``ks``, or None (with the reason recorded) when it cannot be built."""
        if not ks.synthetic and ks.source_ref() not in self.repo_sources:
            ks.skipped = f"its source {ks.source_ref()} is not this repository"
            return None
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
                data = {
                    **d.data,
                    **{
                        k: [r for r in d.data.get(k) or [] if not kustfiles.is_remote(str(r))]
                        for k in ("resources", "components")
                        if k in d.data
                    },
                }
                item.overrides[d.path] = data
        if len(item.overrides) > 1:
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
        self.failed.add(ks.id)
        directory = self.root / ks.path
        errors = kustfiles.yaml_errors(self.cache.closure(directory))
        for path, line, message in errors:
            self.problem("yaml-invalid", rel(self.root, path), message, ks.id, line)
        if errors:
            return
        message = result.error.replace(str(builder.tmp), "<tmp>").replace(str(builder.real_tmp), "<tmp>")
        text = " ".join(line.strip() for line in message.strip().splitlines()[:3])
        text = re.sub(r"^(Error|error): ", "", text)
        if "accumulation err=" in text:  # keep kustomize's innermost reason
            text = text.rsplit("': ", 1)[-1]
        text = text[:400] or "kustomize build failed"
        kfile = kustfiles.kustomization_file(directory)
        self.problem("build-failed", rel(self.root, kfile) if kfile else ks.file, text, ks.id)

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
        values: dict[str, str] = {}
        complete = True
        for ref in post.get("substituteFrom") or []:
            if not isinstance(ref, dict):
                continue
            source = self.registry.get(str(ref.get("kind", "")), ks.namespace, str(ref.get("name", "")))
            if source is None:
                # An optional source nothing in the tree creates is taken as absent, as on a
                # cluster managed from this tree; a required one is reported on its own.
                complete = complete and bool(ref.get("optional"))
                continue
            complete = complete and source.keys_known
            values.update({k: v.replace("\n", "") for k, v in source.values.items()})
        for key, value in (post.get("substitute") or {}).items():
            values[str(key)] = str(value).replace("\n", "")
        return values, complete

    def objects(self, ks: FluxKustomization, *, report: bool) -> list[Obj]:
        variables, complete = self.variables(ks)
        out: list[Obj] = []
        unresolved: dict[str, set[str]] = {}
        for doc in self.raw.get(ks.id, []):
            body = doc.body
            if variables is not None and "${" in doc.text and not is_disabled(body):
                if variables:
                    result = substitute(doc.text, variables)
                    names = result.unresolved
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
                else:
                    names = [n for n in _all_refs(doc.text)]
                if complete and names:
                    unresolved.setdefault(doc.file, set()).update(names)
            out.append(Obj(body=body, owner=ks.id, file=doc.file))
        if report:
            for file, names in sorted(unresolved.items()):
                listed = ", ".join(f"${{{n}}}" for n in sorted(names))
                why = (
                    "no value and no default" if variables else "no variables at all, so Flux leaves it as is"
                )
                self.problem("unresolved-variable", file, f"{listed}: {why} (postBuild of {ks.id})", ks.id)
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
            if ks.synthetic:
                self.repo_sources.add(child.source_ref())
            found.append(child)
        return found

    def run(self) -> Tree:
        started = time.perf_counter()
        self.registry.add_bootstrap(self.root)
        root = FluxKustomization(
            name="flux-system",
            namespace="flux-system",
            spec={"path": rel(self.root, self.entry)},
            file=rel(self.root, self.entry),
            synthetic=True,
        )
        self.tree.kustomizations[root.id] = root
        level = [root]
        with Builder(self.root, workers=self.workers) as builder:
            while level:
                items = [item for ks in level if (item := self.plan(ks)) is not None]
                results = builder.build(items)
                built = []
                for ks in level:
                    result = results.get(ks.id)
                    if result is None:
                        continue
                    if not result.ok:
                        self._explain_failure(ks, result, builder)
                        continue
                    ks.built = True
                    self.raw[ks.id] = result.docs
                    self._register(ks, result.docs)
                    built.append(ks)
                level = []
                for ks in built:
                    self.vars_used[ks.id] = self.variables(ks)[0]
                    ks.objects = self.objects(ks, report=False)
                    level += self._children(ks, ks.objects)
            self.tree.builds = builder.processes
        for ks in self.tree.kustomizations.values():
            if ks.built:
                ks.objects = self.objects(ks, report=True)
        self.tree.seconds = time.perf_counter() - started
        return self.tree


def _all_refs(text: str) -> list[str]:
    return re.findall(r"(?<!\$)\$\{([_A-Za-z][_A-Za-z0-9]*)", text)


def _common_metadata(ks: FluxKustomization, objects: list[Obj]) -> None:
    common = ks.spec.get("commonMetadata")
    if not isinstance(common, dict):
        return
    for obj in objects:
        metadata = obj.body.setdefault("metadata", {})
        for key in ("labels", "annotations"):
            if isinstance(common.get(key), dict):
                metadata[key] = {**(metadata.get(key) or {}), **common[key]}
