"""What the validator finds: Flux Kustomizations, built objects, problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.lib import problems

KS_GROUP = "kustomize.toolkit.fluxcd.io"
HR_GROUP = "helm.toolkit.fluxcd.io"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
SOURCE_KINDS = frozenset(
    {"GitRepository", "OCIRepository", "HelmRepository", "Bucket", "HelmChart", "ExternalArtifact"}
)

#: Problem kinds, in the order the summary lists them.
PROBLEM_KINDS = (
    "yaml-invalid",
    "missing-file",
    "outside-source",
    "file-refused",
    "build-failed",
    "depends-on-missing",
    "depends-on-cycle",
    "source-missing",
    "chart-source-missing",
    "duplicate-object",
    "sops-unencrypted",
    "substitute-from-missing",
    "unresolved-variable",
    "substitution-failed",
    "values-from-missing",
    "helm-template-failed",
    "schema-invalid",
    "not-validated",
    "internal-error",
)


def secure_join(raw: str) -> tuple[str, bool]:
    """(the path below the root that ``raw`` names, whether a ``..`` tried to climb above
    it): what ``securejoin.SecureJoin(root, raw)`` gives kustomize-controller."""
    parts: list[str] = []
    escaped = False
    for part in raw.strip().replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            escaped = escaped or not parts
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts), escaped


def group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


@dataclass(frozen=True, order=True)
class Ref:
    """A namespaced reference to an object of some kind."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True, order=True)
class Problem(problems.Problem):
    """One thing that would break on the cluster, located by Flux Kustomization and file."""

    file: str
    kind: str
    message: str
    kustomization: str = ""
    line: int | None = None
    #: The Kustomizations that apply it, outermost first (filled in at the end of a run).
    chain: tuple[str, ...] = ()
    #: (kind, name) of the object the problem is about, to find its line in ``file``.
    subject: tuple[str, str] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        where = self.where
        via = " > ".join(self.chain) or self.kustomization
        owner = f" [{via}]" if via else ""
        return f"{where}: {self.kind}: {self.message}{owner}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "line": self.line,
            "kustomization": self.kustomization,
            "chain": list(self.chain),
            "message": self.message,
        }


@dataclass
class Obj:
    """One object a Flux Kustomization applies (after build and substitution)."""

    body: dict[str, Any]
    owner: str  # id of the Flux Kustomization that applies it
    file: str  # repository-relative file it comes from (best knowledge)
    written_name: str = ""  # metadata.name before substitution, when it differs
    rendered_by: str = ""  # the HelmRelease (namespace/name) whose chart renders it

    @property
    def subject(self) -> tuple[str, str]:
        """(kind, name as written in its file), to find its line."""
        return self.kind, self.written_name or self.name

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return group_of(self.api_version)

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str((self.body.get("metadata") or {}).get("namespace") or "")

    @property
    def ref(self) -> Ref:
        return Ref(self.kind, self.namespace, self.name)

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}


@dataclass
class FluxKustomization:
    """A Flux ``Kustomization`` found in the tree (or the synthetic root)."""

    name: str
    namespace: str
    spec: dict[str, Any]
    file: str
    parent: str = ""
    synthetic: bool = False
    built: bool = False
    skipped: str = ""  # why it was not built (external source, ...)
    objects: list[Obj] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def path(self) -> str:
        """``spec.path`` as kustomize-controller resolves it (``securejoin`` into the source):
        a repository-relative directory ("" for the root); ``..`` never climbs above the root."""
        return secure_join(str(self.spec.get("path") or ""))[0]

    @property
    def path_escapes(self) -> bool:
        """Whether ``spec.path`` tries to lead outside the source (Flux keeps it inside)."""
        return secure_join(str(self.spec.get("path") or ""))[1]

    def source_ref(self) -> Ref:
        ref = self.spec.get("sourceRef") or {}
        return Ref(
            str(ref.get("kind", "GitRepository")),
            str(ref.get("namespace") or self.namespace),
            str(ref.get("name", "")),
        )

    def depends_on(self) -> list[str]:
        out = []
        for dep in self.spec.get("dependsOn") or []:
            if isinstance(dep, dict) and dep.get("name"):
                out.append(f"{dep.get('namespace') or self.namespace}/{dep['name']}")
        return out

    def has_postbuild(self) -> bool:
        post = self.spec.get("postBuild")
        return isinstance(post, dict) and bool(post.get("substitute") or post.get("substituteFrom"))


@dataclass
class Tree:
    """Everything one validation run found."""

    root: str
    entry: str
    kustomizations: dict[str, FluxKustomization] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    builds: int = 0
    #: HelmRelease id -> the objects its chart renders (``--helm``)
    rendered: dict[str, list[Obj]] = field(default_factory=dict)

    def objects(self) -> list[Obj]:
        return [obj for ks in self.kustomizations.values() for obj in ks.objects]

    def helmreleases(self) -> list[Obj]:
        return [o for o in self.objects() if o.kind == "HelmRelease" and o.group == HR_GROUP]

    def sources(self) -> list[Obj]:
        return [o for o in self.objects() if o.kind in SOURCE_KINDS and o.group == SOURCE_GROUP]
