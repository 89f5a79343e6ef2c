"""What the ci.* workflow steps compute without git: which changed paths a job cares about."""

from __future__ import annotations

from tasks.lib import ci


def test_touches_matches_directories_and_files_not_prefixes() -> None:
    changed = [
        "kubernetes/apps/a.yaml",
        "kubernetes-notes.md",
        ".github/workflows/validate.yaml",
        "README.md",
    ]
    assert ci.touches(changed, ["kubernetes/"]) == ["kubernetes/apps/a.yaml"]
    assert ci.touches(changed, ["kubernetes"]) == ["kubernetes/apps/a.yaml"]
    assert ci.touches(changed, [".github/workflows/validate.yaml"]) == [".github/workflows/validate.yaml"]
    assert ci.touches(changed, ["talos/", "/"]) == []
