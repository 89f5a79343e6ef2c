"""Property tests for configure's plan: what it may write, remove or must refuse."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.lib.config import manifest as mf
from tasks.lib.config.configure import make_plan

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
    root: Path = tmp_path_factory.mktemp("tree")  # type: ignore[attr-defined]
    for name, content in tree.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    manifest = mf.Manifest({name: mf.Entry(mf.sha256(c)) for name, c in recorded.items()})
    plan = make_plan(root, staged, manifest)

    # Every staged file is either written or already identical.
    assert sorted(plan.write + plan.unchanged) == sorted(staged)
    for name in plan.unchanged:
        assert tree[name] == staged[name]
    # Only files configure recorded are removed, and only when it no longer renders them.
    for name in plan.remove:
        assert name in recorded and name in tree and name not in staged
    # Overwriting or removing a file that differs from what configure wrote is a conflict.
    for name in plan.write + plan.remove:
        if name in tree and (name not in recorded or mf.sha256(tree[name]) != mf.sha256(recorded[name])):
            assert name in plan.conflicts
    # And nothing else is.
    for name in plan.conflicts:
        assert name in tree
        assert name not in recorded or tree[name] != recorded[name]
