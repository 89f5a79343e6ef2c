"""Objects checked against the Kubernetes API schemas with kubeconform, offline.

What the API server would refuse on apply (a Pod whose ``image`` is a mapping, a missing
required field) fails Flux's dry-run apply of the whole Kustomization; kubeconform finds it
from the schemas of the ``kubernetes-validate`` wheel (:mod:`.schemas`). Only objects of
kinds with a shipped schema are sent (custom resources have none here); each is renamed to
its index on the way in, so every verdict maps back to its object exactly (kubeconform
checks in parallel and names no file for stdin). Nothing is written to disk.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .model import Obj
from .schemas import Schemas, local_schemas

_DETAIL = re.compile(r"- at '([^']*)': (.+?)(?=\s+- at '|$)")


@dataclass(frozen=True)
class Invalid:
    """An object kubeconform refused, and why (one line)."""

    obj: Obj
    reason: str


def _field(pointer: str) -> str:
    """``/spec/initContainers/0/image`` as ``spec.initContainers[0].image``."""
    out = ""
    for part in pointer.strip("/").split("/"):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "(object)"


def reason(message: str) -> str:
    """kubeconform's message as ``field: what is wrong; ...`` (its "validation failed"
    summaries of nested errors left out)."""
    details = [
        f"{_field(path)}: {text.strip()}"
        for path, text in _DETAIL.findall(message)
        if text.strip() != "validation failed"
    ]
    return "; ".join(details) if details else message.strip()


def _checkable(objects: list[Obj], schemas: Schemas) -> list[Obj]:
    return [o for o in objects if schemas.has(o.kind, o.api_version)]


def check(
    objects: list[Obj], *, schemas: Schemas | None = None, timeout: float = 300
) -> tuple[list[Invalid], list[str]]:
    """(the objects kubeconform refuses, notes on what was and was not checked)."""
    from tasks.lib.tools.runner import Command, find_tool, run_one

    if find_tool("kubeconform") is None:
        return [], ["schemas not checked: kubeconform is not installed (inv doctor --install)"]
    schemas = schemas or local_schemas()
    if schemas is None:
        return [], ["schemas not checked: the kubernetes-validate wheel is not installed"]
    checked = _checkable(objects, schemas)
    if not checked:
        return [], []
    documents = []
    for index, obj in enumerate(checked):
        body: dict[str, Any] = json.loads(json.dumps(obj.body, default=str))
        body.setdefault("metadata", {})["name"] = f"o{index}"
        documents.append(json.dumps(body))
    argv = ["kubeconform", *schemas.argv(), "-strict=false", "-output", "json", "-verbose", "-"]
    stdin = "\n---\n".join(documents).encode()
    outcome = run_one(
        Command(tuple(argv), stdin=stdin, deadline=timeout, what="checking objects against their schemas")
    )
    try:
        resources = json.loads(outcome.data or b"{}").get("resources") or []
    except ValueError:
        why = outcome.problem if outcome.limit else " ".join(outcome.stderr.split())[:200]
        return [], [f"schemas not checked: kubeconform failed ({why})"]
    invalid = []
    statuses: Counter[str] = Counter()
    for resource in resources:
        status = str(resource.get("status", ""))
        statuses[status] += 1
        name = str(resource.get("name", ""))
        if status in {"statusInvalid", "statusError"} and name[1:].isdigit() and int(name[1:]) < len(checked):
            invalid.append(Invalid(checked[int(name[1:])], reason(str(resource.get("msg", "")))[:400]))
    unchecked = len(objects) - len(checked)
    notes = [
        f"{statuses['statusValid'] + len(invalid)} object(s) checked against the Kubernetes "
        f"{schemas.kubernetes_version} schemas ({unchecked} of kinds without a shipped schema)"
    ]
    return invalid, notes
