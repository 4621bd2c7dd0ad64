"""status_patch / merge_diff: the merge patch of every status write (stale nested keys are nulled)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from onnxops.local.apiserver.patch import merge_patch  # an independent RFC 7386 implementation
from onnxops.reconcile.status import merge_diff, status_patch


def test_removed_nested_key_is_nulled():
    """The bug: v2's drift score stayed in status.drift.versions after v2 stopped being served."""
    old = {
        "stableVersion": 1,
        "drift": {
            "version": 2,
            "versions": {"1": 0.05, "2": 0.6},
            "breaches": {"1": 0, "2": 3},
            "features": {"f0": 0.6, "f1": 0.1},
        },
    }
    new = {"drift": {"version": 1, "versions": {"1": 0.04}, "breaches": {"1": 0}, "features": {"f0": 0.04}}}
    patch = status_patch(old, new)
    assert patch == {
        "drift": {
            "version": 1,
            "versions": {"1": 0.04, "2": None},
            "breaches": {"2": None},
            "features": {"f0": 0.04, "f1": None},
        }
    }
    after = merge_patch(old, patch)
    assert after["drift"] == new["drift"] and after["stableVersion"] == 1  # untouched: not named


def test_converged_object_produces_no_write():
    old = {"phase": "Ready", "rollback": {"from": 2, "to": 1}, "conditions": [{"type": "Ready"}]}
    new = {
        "phase": "Ready",
        "rollback": {"from": 2, "to": 1, "scores": None},
        "conditions": [{"type": "Ready"}],
        "canaryVersion": None,
    }
    assert status_patch(old, new) == {}


def test_top_level_none_deletes_and_unnamed_keys_are_left_to_other_writers():
    old = {"canaryVersion": 2, "drift": {"score": 0.1}, "retrain": {"count": 1}}
    assert status_patch(old, {"canaryVersion": None}) == {"canaryVersion": None}
    assert status_patch(old, {"drift": None, "phase": "Ready"}) == {"drift": None, "phase": "Ready"}


def test_map_replacing_a_scalar_and_lists_replaced_whole():
    assert status_patch({"a": 1}, {"a": {"b": 1, "c": None}}) == {"a": {"b": 1}}
    assert status_patch({"a": [1, 2]}, {"a": [1]}) == {"a": [1]}


def test_no_null_written_for_a_key_that_is_already_absent():
    assert merge_diff({"a": {"x": 1}}, {"a": {"x": 1, "y": None}}) == {}
    assert merge_diff({}, {"a": None}) == {}


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text("ab", max_size=2))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from("xyz"), inner, max_size=3)
    ),
    max_leaves=8,
)
_maps = st.dictionaries(st.sampled_from("abcd"), _values, max_size=4)


def _no_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _no_none(x) for k, x in v.items() if x is not None}
    return v


@settings(max_examples=300, deadline=None)
@given(old=_maps, new=_maps)
def test_applying_the_patch_yields_the_desired_map_and_then_nothing(old, new):
    old = _no_none(old)  # a stored object never holds nulls
    after = merge_patch(old, merge_diff(old, new))
    assert after == _no_none(new)
    assert merge_diff(after, new) == {}
