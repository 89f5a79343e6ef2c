"""How Helm values files combine."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tasks.lib.fluxtree.values import merge_values

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)
json_maps = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


@given(json_maps, json_maps)
def test_merge_values_later_file_wins_and_nothing_else_is_lost(base: dict, override: dict) -> None:
    merged = merge_values(base, override)
    assert set(merged) == set(base) | set(override)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            assert merged[key] == merge_values(base[key], value)
        else:
            assert merged[key] == value
    assert merge_values(merged, override) == merged  # applying the same file twice changes nothing


def test_maps_merge_lists_and_scalars_are_replaced() -> None:
    base = {"a": {"b": 1, "c": 2}, "l": [1], "s": "x"}
    assert merge_values(base, {"a": {"b": 3}, "l": [2], "s": {"now": "a map"}}) == {
        "a": {"b": 3, "c": 2},
        "l": [2],
        "s": {"now": "a map"},
    }
    assert base == {"a": {"b": 1, "c": 2}, "l": [1], "s": "x"}  # the inputs are left as they were
