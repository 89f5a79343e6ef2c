"""Property tests for configure's plan: what it may write, remove, merge or must refuse."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.lib.config import manifest as mf
from tasks.lib.config.plan import Inputs, make_plan

NAMES = st.sampled_from([f"kubernetes/apps/f{i}.yaml" for i in range(6)] + ["talos/talenv.yaml"])
CONTENT = st.sampled_from([b"a\n", b"b\n", b"c\n"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tree=st.dictionaries(NAMES, CONTENT, max_size=7),
    recorded=st.dictionaries(NAMES, CONTENT, max_size=7),
    staged=st.dictionaries(NAMES, CONTENT, max_size=7),
)
def test_plan_never_touches_what_is_not_configures_without_saying_so(
    tmp_path_factory: object, tree: dict[str, bytes], recorded: dict[str, bytes], staged: dict[str, bytes]
) -> None:
    """Without git there is no merge base: an edit survives only while the render leaves
    its file alone, and is otherwise a conflict."""
    root: Path = tmp_path_factory.mktemp("tree")  # type: ignore[attr-defined]
    for name, content in tree.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    manifest = mf.Manifest({name: mf.Entry(mf.sha256(c)) for name, c in recorded.items()})
    plan, unused = make_plan(Inputs(root, staged, {}, manifest), root.parent / f"{root.name}-scratch")
    assert unused == []
    conflicts = {c.name for c in plan.conflicts}

    # Every staged file is written, already as it should be, or a conflict.
    assert sorted(plan.write + plan.unchanged + sorted(conflicts & set(staged))) == sorted(staged)
    for name in plan.write:  # only ever the render, and never over an edit
        assert plan.files[name] == staged[name]
        assert name not in tree or tree[name] == recorded.get(name)
    for name in plan.unchanged:  # left as it is: the render, or an edit the render did not touch
        assert plan.files[name] == tree[name]
        assert tree[name] == staged[name] or staged[name] == recorded[name]
    # Only files configure recorded are removed, and only when it no longer renders them.
    for name in plan.remove:
        assert name in recorded and name in tree and name not in staged and tree[name] == recorded[name]
    # A conflict is always a file in the tree that differs from what configure wrote.
    for name in conflicts:
        assert name in tree
        assert name not in recorded or tree[name] != recorded[name]
    assert plan.merged == []  # nothing to merge on without git
