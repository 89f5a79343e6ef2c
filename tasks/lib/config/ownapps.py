"""The user's own apps beside the generated ones, listed in the generated kustomizations.

An app is a folder with a ``ks.yaml`` (its Flux Kustomization) in a namespace folder under
``kubernetes/apps``. The bundled apps are generated; a folder whose ``ks.yaml`` configure
never generated is the user's (``inv app.new`` makes one). Every render lists each of the
user's apps in the generated ``kubernetes/apps/NAMESPACE/kustomization.yaml``, after the
generated entries, so Flux deploys it; an app folder that is gone is no longer listed. A
namespace folder of the user's own needs nothing from configure: Flux's root Kustomization
(``kubernetes/apps``, which has no kustomization.yaml) picks up every namespace folder.

The listing is done on the text, so comments and formatting stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from pathlib import Path

APPS = "kubernetes/apps"
#: A generated namespace kustomization: the file the user's apps are listed in.
NAMESPACE_KUSTOMIZATION = re.compile(r"^kubernetes/apps/([^/]+)/kustomization\.yaml$")
#: Folder names listed without quoting (and what Flux, kustomize and git all accept).
APP_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: A ``resources:`` entry naming an app's ks.yaml: ``- ./NAME/ks.yaml`` (``./`` optional).
APP_ENTRY = re.compile(r"^(?P<indent>\s*)-\s+['\"]?(?:\./)?(?P<app>[^/\s'\"]+)/ks\.yaml['\"]?\s*(?:#.*)?$")
TOP_LEVEL_KEY = re.compile(r"^[^\s#-]")


def namespace_of(name: str) -> str | None:
    """The namespace whose kustomization ``name`` is, or None."""
    found = NAMESPACE_KUSTOMIZATION.match(name)
    return found.group(1) if found else None


def app_file(namespace: str, app: str) -> str:
    return f"{APPS}/{namespace}/{app}/ks.yaml"


def own_apps(root: Path, namespace: str, generated: Collection[str]) -> tuple[list[str], list[str]]:
    """(the user's app folders in ``namespace`` to list, folders left out for their name).

    A folder counts when it holds a regular ``ks.yaml`` that is not in ``generated`` (the
    files this render produces and the ones the last one did); symbolic links are never
    followed."""
    folder = root / APPS / namespace
    if folder.is_symlink() or not folder.is_dir():
        return [], []
    apps: list[str] = []
    odd: list[str] = []
    for child in sorted(folder.iterdir()):
        ks = child / "ks.yaml"
        if child.is_symlink() or not child.is_dir() or ks.is_symlink() or not ks.is_file():
            continue
        if app_file(namespace, child.name) in generated:
            continue
        (apps if APP_FOLDER.match(child.name) else odd).append(child.name)
    return apps, odd


def resources_block(lines: list[str]) -> tuple[int, int] | None:
    """(index of the top-level ``resources:`` line, index after its last list item)."""
    start = next((i for i, line in enumerate(lines) if re.match(r"^resources:\s*(#.*)?$", line)), None)
    if start is None:
        return None
    end = start + 1
    for index in range(start + 1, len(lines)):
        if TOP_LEVEL_KEY.match(lines[index]):
            break
        if lines[index].lstrip().startswith("-"):
            end = index + 1
    return start, end


def strip_own(text: str, is_generated: Iterable[str]) -> str:
    """``text`` without the ``resources`` entries of apps that are not generated (the ones
    configure lists itself, wherever the user or an earlier run put them)."""
    generated = set(is_generated)
    lines = text.splitlines(keepends=True)
    block = resources_block(lines)
    if block is None:
        return text
    start, end = block
    kept = [
        line
        for line in lines[start + 1 : end]
        if not ((found := APP_ENTRY.match(line.rstrip("\n"))) and found.group("app") not in generated)
    ]
    return "".join([*lines[: start + 1], *kept, *lines[end:]])


def listed(text: str) -> set[str]:
    """The app folders a kustomization's ``resources`` name by their ks.yaml."""
    lines = text.splitlines()
    block = resources_block(lines)
    if block is None:
        return set()
    return {found.group("app") for line in lines[block[0] + 1 : block[1]] if (found := APP_ENTRY.match(line))}


def add_own(text: str, apps: Iterable[str]) -> str:
    """``text`` with ``- ./APP/ks.yaml`` appended to its ``resources`` for every app in
    ``apps`` it does not list yet (a ``resources:`` key is added when there is none)."""
    missing = [app for app in apps if app not in listed(text)]
    if not missing:
        return text
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    block = resources_block(lines)
    if block is None:
        lines.append("resources:\n")
        block = (len(lines) - 1, len(lines))
    start, end = block
    items = [line for line in lines[start + 1 : end] if line.lstrip().startswith("-")]
    indent = re.match(r"^\s*", items[-1]).group(0) if items else "  "  # type: ignore[union-attr]
    added = [f"{indent}- ./{app}/ks.yaml\n" for app in missing]
    return "".join([*lines[:end], *added, *lines[end:]])


def apps_on_disk(root: Path, generated: Collection[str]) -> list[str]:
    """Every ``NAMESPACE/APP`` of the user's (for the inputs digest: a new or removed app
    folder is a reason to render again)."""
    base = root / APPS
    if base.is_symlink() or not base.is_dir():
        return []
    found = []
    for namespace in sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink()):
        apps, odd = own_apps(root, namespace.name, generated)
        found += [f"{namespace.name}/{app}" for app in [*apps, *odd]]
    return found
