"""docs/configuration.md's tables, generated from the model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks.lib.config import reference, schema
from tests.conftest import ROOT as CHECKOUT  # read-only: the documentation under test


def test_configuration_reference_is_generated_from_the_model() -> None:
    assert not reference.stale(CHECKOUT), "run `python scripts/update_catalog.py`"
    text = (CHECKOUT / reference.DOC).read_text()
    for key in (*schema.CLUSTER_SPECS, *schema.NODE_SPECS):
        assert f"| `{key}` " in text, key


def test_reference_goes_stale_when_the_model_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / reference.DOC).write_text((CHECKOUT / reference.DOC).read_text())
    assert not reference.stale(tmp_path)
    spec = schema.CLUSTER_SPECS["node_cidr"]
    monkeypatch.setitem(reference.CLUSTER_SPECS, "node_cidr", schema.Spec(spec.constraint, "changed", None))
    assert reference.stale(tmp_path)
    assert reference.update(tmp_path)
    assert re.search(
        r"\| `node_cidr` +\| required +\|[^|]+\| changed +\|", (tmp_path / reference.DOC).read_text()
    )
    assert not reference.stale(tmp_path)
