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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tasks.lib.tools.runner import Command, find_tool, run_one

from .model import Obj
from .schemas import Schemas, local_schemas

if TYPE_CHECKING:
    from tasks.lib.tools.runner import Command, Outcome

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


@dataclass
class Plan:
    """One kubeconform run over the objects that have a schema (no command: nothing to run,
    the notes say why)."""

    objects: list[Obj]
    checked: list[Obj] = field(default_factory=list)
    command: Command | None = None
    notes: list[str] = field(default_factory=list)
    kubernetes_version: str = ""


def prepare(objects: list[Obj], *, schemas: Schemas | None = None, timeout: float = 300) -> Plan:
    """The kubeconform command for ``objects`` (see :func:`check`)."""
    plan = Plan(objects)
    if find_tool("kubeconform") is None:
        plan.notes.append("schemas not checked: kubeconform is missing (inv doctor --install)")
        return plan
    schemas = schemas or local_schemas()
    if schemas is None:
        plan.notes.append("schemas not checked: the kubernetes-validate wheel is missing")
        return plan
    plan.kubernetes_version = schemas.kubernetes_version
    plan.checked = [o for o in objects if schemas.has(o.kind, o.api_version)]
    if not plan.checked:
        return plan
    documents = []
    for index, obj in enumerate(plan.checked):
        body: dict[str, Any] = json.loads(json.dumps(obj.body, default=str))
        body.setdefault("metadata", {})["name"] = f"o{index}"
        documents.append(json.dumps(body))
    argv = ["kubeconform", *schemas.argv(), "-strict=false", "-output", "json", "-verbose", "-"]
    stdin = "\n---\n".join(documents).encode()
    plan.command = Command(
        tuple(argv), stdin=stdin, deadline=timeout, what="checking objects against their schemas"
    )
    return plan


def read(plan: Plan, outcome: Outcome | None) -> tuple[list[Invalid], list[str]]:
    """(the objects kubeconform refused, notes on what was and was not checked)."""
    if plan.command is None or outcome is None:
        return [], plan.notes
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
        index = int(name[1:]) if name[1:].isdigit() else len(plan.checked)
        if status in {"statusInvalid", "statusError"} and index < len(plan.checked):
            invalid.append(Invalid(plan.checked[index], reason(str(resource.get("msg", "")))[:400]))
    unchecked = len(plan.objects) - len(plan.checked)
    notes = [
        f"{statuses['statusValid'] + len(invalid)} object(s) checked against the Kubernetes "
        f"{plan.kubernetes_version} schemas ({unchecked} of kinds without a shipped schema)"
    ]
    return invalid, notes


def check(
    objects: list[Obj], *, schemas: Schemas | None = None, timeout: float = 300
) -> tuple[list[Invalid], list[str]]:
    """(the objects kubeconform refuses, notes on what was and was not checked)."""
    plan = prepare(objects, schemas=schemas, timeout=timeout)
    return read(plan, run_one(plan.command) if plan.command is not None else None)
