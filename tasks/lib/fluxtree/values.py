"""Helm values: how several values files (a HelmRelease's ``valuesFrom`` and ``values``, a
helmfile release's ``values:`` list) combine into the values a chart renders with.

Standard library only; used by the validator's chart rendering and by the bootstrap's
reading of the helmfile releases.
"""

from __future__ import annotations

from typing import Any


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of two values files: maps merge key by key, anything else (lists
    included) is replaced by the later file's value."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged
