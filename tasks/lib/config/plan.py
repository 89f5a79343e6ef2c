"""What ``configure`` does with each file: the new render, merged with what is in the tree.

For every file the render produces, against the tree and the manifest:

- not in the tree, or untouched since the last render: the new render is written;
- edited by you: your edit is merged into the new render, three-way, on the last pure
  render (:mod:`tasks.lib.config.merge`); when the render did not change, your file stays
  as it is; a conflict is reported with its hunks and nothing is written;
- in the tree but never written by configure: a conflict (there is no base to merge on);
- a generated secret you changed: kept while the render leaves it alone, else a conflict
  (ciphertext cannot be merged).

Your own apps are listed in the generated namespace kustomizations
(:mod:`tasks.lib.config.ownapps`). A file the render no longer produces is removed, unless
you edited it (a conflict). ``--force`` takes the new render for every conflict and says
what is lost; ``--resolved FILE`` keeps FILE as it is (your resolution of a conflict) with
the new render as the base of the next merge.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tasks.lib.config import manifest as mf
from tasks.lib.config import merge, ownapps
from tasks.lib.secrets.sopsfile import is_sops_name

FIX_MERGE = (
    "to keep both: make {name} hold what you want from both sides, then `inv configure --resolved {name}`"
)
FIX_FORCE = "to take the new render instead (your edit is lost; configure shows it): `inv configure --force`"
FIX_FOREIGN = "move your file aside (rename it or its folder), or replace it: `inv configure --force`"
FIX_ENCRYPTED = (
    "put the value where configure reads it (cluster.sops.yaml: `cluster_secrets:` for the "
    "cluster-secrets Secret, or a template), then `inv configure --force`"
)
FIX_REMOVED = (
    "delete it (`git rm {name}`), keep it as your own file (`inv configure --resolved {name}`), "
    "or `inv configure --force` (deletes it)"
)


@dataclass
class Conflict:
    name: str
    reason: str
    detail: list[str] = field(default_factory=list)  # conflict hunks or a diff
    fixes: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # what --force loses (a diff, or a note)
    ours: bytes | None = None  # your version (stored in git's object database under --force)


@dataclass
class Plan:
    files: dict[str, bytes] = field(default_factory=dict)  # name -> content the tree will hold
    write: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # your edit merged into a changed render
    kept: list[str] = field(default_factory=list)  # your edit kept: the render did not change
    resolved: list[str] = field(default_factory=list)  # kept as it is: your resolution
    listed: dict[str, list[str]] = field(default_factory=dict)  # namespace kustomization -> your apps
    skipped_apps: list[str] = field(default_factory=list)  # folders not listed (their names)
    conflicts: list[Conflict] = field(default_factory=list)
    forced: list[Conflict] = field(default_factory=list)  # conflicts --force overwrote
    entries: dict[str, mf.Entry] = field(default_factory=dict)  # the new manifest's, blobs still missing
    disowned: list[str] = field(default_factory=list)  # no longer generated, kept as yours

    @property
    def changes(self) -> list[str]:
        return sorted(self.write + self.remove)


@dataclass
class Inputs:
    """What a plan is made from."""

    root: Path
    render: Mapping[str, bytes]  # the pure render (secrets as ciphertext)
    digests: Mapping[str, str]  # secret -> keyed digest of its rendered plaintext
    manifest: mf.Manifest
    owned: str = ""  # the manifest's own name: always configure's to write
    resolved: Collection[str] = ()
    force: bool = False


def read_tree_file(root: Path, name: str) -> bytes | None:
    path = root / name
    return path.read_bytes() if path.exists() else None


class Planner:
    def __init__(self, inputs: Inputs, scratch: Path) -> None:
        self.inputs = inputs
        self.scratch = scratch
        self.plan = Plan()
        self.generated = set(inputs.render) | set(inputs.manifest.files)
        self.resolved = set(inputs.resolved)
        self.used_resolved: set[str] = set()
        self.waiting: dict[str, tuple[bytes, bytes]] = {}  # name -> (yours without app entries, render)

    # ----------------------------------------------------------------- per file

    def own_apps(self, name: str) -> list[str]:
        namespace = ownapps.namespace_of(name)
        if namespace is None:
            return []
        apps, odd = ownapps.own_apps(self.inputs.root, namespace, self.generated)
        self.plan.skipped_apps += [f"{ownapps.APPS}/{namespace}/{app}" for app in odd]
        if apps:
            self.plan.listed[name] = apps
        return apps

    def with_apps(self, name: str, text: bytes) -> bytes:
        apps = self.plan.listed.get(name)
        return ownapps.add_own(text.decode(), apps).encode() if apps else text

    def without_apps(self, name: str, text: bytes) -> bytes:
        namespace = ownapps.namespace_of(name)
        if namespace is None:
            return text
        mine = {
            app.split("/")[-2]
            for app in self.generated
            if app.startswith(f"{ownapps.APPS}/{namespace}/") and app.endswith("/ks.yaml")
        }
        return ownapps.strip_own(text.decode(errors="replace"), mine).encode()

    def entry(self, name: str, render: bytes, tree: bytes) -> None:
        written = mf.sha256(tree) if tree != render else None
        self.plan.entries[name] = mf.Entry(mf.sha256(render), self.inputs.digests.get(name), None, written)

    def place(self, name: str, content: bytes, current: bytes | None) -> None:
        self.plan.files[name] = content
        (self.plan.unchanged if content == current else self.plan.write).append(name)

    def file(self, name: str, render: bytes) -> None:
        self.own_apps(name)
        current = read_tree_file(self.inputs.root, name)
        last = self.inputs.manifest.files.get(name)
        new = self.with_apps(name, render)
        if current is None or name == self.inputs.owned:
            self.settle(name, render, new, current)
        elif last is None:
            self.foreign(name, render, new, current)
        elif is_sops_name(name):
            self.secret(name, render, current, last)
        else:
            self.edited(name, render, current, last)

    def settle(self, name: str, render: bytes, content: bytes, current: bytes | None) -> None:
        self.entry(name, render, content)
        self.place(name, content, current)

    def foreign(self, name: str, render: bytes, new: bytes, current: bytes) -> None:
        if current == new:
            self.settle(name, render, new, current)
            return
        self.conflict(
            Conflict(
                name,
                "exists, but configure never wrote it, and the render now produces it",
                merge.diff_lines(name, current, new, ("yours", "render")),
                [FIX_FOREIGN],
                merge.diff_lines(name, current, new, ("yours", "render")),
                current,
            ),
            render,
            new,
            current,
        )

    def secret(self, name: str, render: bytes, current: bytes, last: mf.Entry) -> None:
        if mf.sha256(current) == last.sha256 or current == render:
            self.settle(name, render, render, current)
        elif name in self.resolved:
            self.used_resolved.add(name)
            self.plan.resolved.append(name)
            self.entry(name, render, current)
            self.place(name, current, current)
        elif last.plaintext is not None and last.plaintext == self.inputs.digests.get(name):
            # The render did not change this secret: yours stays, and so does its record.
            self.plan.kept.append(name)
            self.plan.entries[name] = mf.Entry(last.sha256, last.plaintext, last.blob, mf.sha256(current))
            self.place(name, current, current)
        else:
            note = ["your changes to this secret (not shown: it is encrypted)"]
            self.conflict(
                Conflict(
                    name,
                    "a generated secret you changed, which the new render changes too "
                    "(configure cannot merge encrypted files)",
                    [],
                    [FIX_ENCRYPTED],
                    note,
                    current,
                ),
                render,
                render,
                current,
            )

    def edited(self, name: str, render: bytes, current: bytes, last: mf.Entry) -> None:
        yours = self.without_apps(name, current)
        if mf.sha256(yours) == last.sha256:  # nothing of yours besides app entries
            self.settle(name, render, self.with_apps(name, render), current)
        elif name in self.resolved:
            self.used_resolved.add(name)
            self.plan.resolved.append(name)
            self.entry(name, render, current)
            self.place(name, current, current)
        elif mf.sha256(render) == last.sha256:  # the render did not change: your file stays
            self.plan.kept.append(name)
            content = self.with_apps(name, yours)
            self.entry(name, render, content)
            self.place(name, content, current)
        else:
            self.waiting[name] = (yours, render)

    # ----------------------------------------------------------------- merges

    def merge_waiting(self) -> None:
        if not self.waiting:
            return
        entries = {name: self.inputs.manifest.files[name] for name in self.waiting}
        found = merge.bases(self.inputs.root, entries)
        for index, (name, (yours, render)) in enumerate(sorted(self.waiting.items())):
            current = read_tree_file(self.inputs.root, name) or b""
            new = self.with_apps(name, render)
            base = found.get(name)
            if base is None:
                self.no_base(name, render, new, current)
                continue
            result = merge.merge(self.scratch / f"m{index:04d}", name, yours, base, render)
            if result is None:
                self.conflict(
                    Conflict(name, "git merge-file failed", [], [FIX_FORCE], [], current),
                    render,
                    new,
                    current,
                )
            elif result.clean:
                content = self.with_apps(name, result.text)
                self.plan.merged.append(name)
                self.entry(name, render, content)
                self.place(name, content, current)
            else:
                self.conflict(
                    Conflict(
                        name,
                        "your edit and the new render change the same lines",
                        hunk_lines(result.text),
                        [FIX_MERGE.format(name=name), FIX_FORCE],
                        merge.diff_lines(name, base, yours, ("render", "yours")),
                        current,
                    ),
                    render,
                    new,
                    current,
                )

    def no_base(self, name: str, render: bytes, new: bytes, current: bytes) -> None:
        self.conflict(
            Conflict(
                name,
                "you edited it, and the last render it was made from is not in git to merge on "
                "(commit after configure to keep it there)",
                merge.diff_lines(name, current, new, ("yours", "render")),
                [FIX_MERGE.format(name=name), FIX_FORCE],
                merge.diff_lines(name, current, new, ("yours", "render")),
                current,
            ),
            render,
            new,
            current,
        )

    def conflict(self, conflict: Conflict, render: bytes, new: bytes, current: bytes) -> None:
        """A conflict: reported (nothing written), or under ``--force`` the new render wins."""
        if self.inputs.force:
            self.plan.forced.append(conflict)
            self.settle(conflict.name, render, new, current)
        else:
            self.plan.conflicts.append(conflict)
            self.plan.files[conflict.name] = new

    # ----------------------------------------------------------------- stale files

    def stale(self) -> None:
        root = self.inputs.root
        for name, last in sorted(self.inputs.manifest.files.items()):
            if name in self.inputs.render:
                continue
            current = read_tree_file(root, name)
            if current is None:
                continue
            yours = current if is_sops_name(name) else self.without_apps(name, current)
            if mf.sha256(yours) == last.sha256:
                self.plan.remove.append(name)
            elif name in self.resolved:
                self.used_resolved.add(name)
                self.plan.disowned.append(name)
            elif self.inputs.force:
                self.plan.remove.append(name)
                lost = ["the whole file, as you edited it"]
                self.plan.forced.append(Conflict(name, "no longer generated", [], [], lost, current))
            else:
                self.plan.conflicts.append(
                    Conflict(
                        name,
                        "configure no longer generates it, and you changed it",
                        [],
                        [FIX_REMOVED.format(name=name)],
                    )
                )

    def make(self) -> Plan:
        for name, content in sorted(self.inputs.render.items()):
            self.file(name, content)
        self.merge_waiting()
        self.stale()
        self.plan.write.sort()
        self.plan.unchanged.sort()
        self.plan.conflicts.sort(key=lambda c: c.name)
        return self.plan

    def unused_resolved(self) -> list[str]:
        return sorted(self.resolved - self.used_resolved)


def hunk_lines(merged_text: bytes) -> list[str]:
    lines = []
    for line_number, hunk in merge.conflict_hunks(merged_text):
        lines.append(f"near line {line_number}:")
        lines += [f"  {row}" for row in hunk]
    return lines


def make_plan(inputs: Inputs, scratch: Path) -> tuple[Plan, list[str]]:
    """The plan, and the ``--resolved`` names that matched no edited file."""
    planner = Planner(inputs, scratch)
    plan = planner.make()
    return plan, planner.unused_resolved()


def conflict_report(conflicts: list[Conflict], verb: str = "nothing was written") -> list[str]:
    """The lines of a conflict error: each file with its reason and hunks, then the fixes."""
    count = len(conflicts)
    lines = [f"{count} generated file{'s' * (count != 1)} cannot take the new render; {verb}:"]
    fixes: list[str] = []
    for conflict in conflicts:
        lines.append(f"  {conflict.name}: {conflict.reason}")
        lines += [f"    {row}" for row in conflict.detail]
        fixes += [fix for fix in conflict.fixes if fix not in fixes]
    return lines + fixes


def forced_report(forced: list[Conflict], stored: Mapping[str, str]) -> list[str]:
    """What ``--force`` overwrote, file by file, and what was lost (and where it still is)."""
    lines = []
    for conflict in forced:
        verb = "removed" if conflict.reason == "no longer generated" else "overwrote"
        lines.append(f"{verb} {conflict.name} — lost:")
        lines += [f"  {row}" for row in conflict.lost] or ["  your edit"]
        if conflict.name in stored:
            lines.append(f"  your version is in git: `git cat-file -p {stored[conflict.name]}`")
    return lines
