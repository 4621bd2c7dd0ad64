"""The InferenceService's stored ``reason``, ``status.history``, ``status.rejectedVersions`` and (for a
legacy rejection) ``status.rollback`` are read through ``ServiceRecord`` and written back as the JSON they
were; an entry that does not parse is left out, never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from _operator_fixtures import isvc, mv

from onnxops.api.v1alpha1.servicerecord import ServiceRecord
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile import versions
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
ENTRY = {"version": 2, "reason": "DriftDetected", "at": "2026-01-01T11:00:00Z", "generation": 1}
HISTORY = [
    {"action": "Deployed", "version": 1, "at": "2026-01-01T10:00:00Z"},
    {"action": "Aborted", "version": 2, "at": "2026-01-01T11:00:00Z", "reason": "DriftDetected"},
]


def test_valid_record_reads_and_writes_back_as_stored() -> None:
    rec = ServiceRecord.from_status({"reason": "Available", "history": HISTORY, "rejectedVersions": [ENTRY]})
    assert rec.reason == "Available"
    assert rec.history is not None and [h.action for h in rec.history] == ["Deployed", "Aborted"]
    assert json.dumps(rec.history_as_stored()) == json.dumps(HISTORY)  # key order and numbers too
    assert versions.rejected_versions(rec) == {2}
    out = versions.record_rejections(rec, [], spec_version="latest", generation=1, at="x")
    assert json.dumps(out) == json.dumps([ENTRY])


@pytest.mark.parametrize(
    "raw,want",
    [
        ([ENTRY, {"version": "three"}, "x", {**ENTRY, "version": 4, "generation": None}], {2}),
        ([{**ENTRY, "version": 0}, {**ENTRY, "version": 5}], {5}),  # version >= 1
        ({"version": 2}, set()),  # not a list
        (None, set()),
    ],
)
def test_rejected_entries_that_do_not_parse_are_left_out(raw: Any, want: set[int]) -> None:
    status = {"rejectedVersions": raw}
    assert versions.rejected_versions(status) == want
    out = versions.record_rejections(
        status, [(7, "AnalysisFailed")], spec_version="latest", generation=2, at="t"
    )
    assert out is not None and [e["version"] for e in out] == [*sorted(want), 7]


def test_history_and_reason_that_do_not_parse() -> None:
    rec = ServiceRecord.from_status({"reason": 5, "history": [HISTORY[0], {"action": "Exploded"}, 3]})
    assert rec.reason is None
    assert rec.history_as_stored() == [HISTORY[0]]
    assert ServiceRecord.from_status({"history": "none"}).history_as_stored() is None


def test_legacy_rejection_with_a_rollback_that_does_not_parse_is_none() -> None:
    # an older operator marked the ModelVersion rejected without rejectedBy
    legacy = {**mv(2), "status": {"phase": "Ready", "rejected": True, "rejectedReason": "DriftDetected"}}
    by_v = versions.by_version([mv(1), legacy], "iris")
    good = {"from": 2, "to": 1, "reason": "DriftDetected", "at": "t", "generation": 1}
    assert versions.legacy_rejection({"rollback": good}, by_v) == (2, "DriftDetected")
    for bad in ("x", {"from": "two", "to": 1}, {**good, "generation": None}):
        assert versions.legacy_rejection({"rollback": bad}, by_v) is None


def test_reconcile_rewrites_a_broken_record_without_crashing() -> None:
    status = {
        "stableVersion": 1,
        "promotedAt": "2026-01-01T10:00:00Z",
        "reason": ["not", "text"],
        "history": [HISTORY[0], {"action": 1}],
        "rejectedVersions": [ENTRY, {"version": "x"}],
    }
    plan = ir.reconcile(isvc(gen=1, status=status), [mv(1), mv(2)], [], settings=Settings(), now=T0)
    assert plan.status["stableVersion"] == 1 and plan.status["canaryVersion"] is None  # v2 stays rejected
    assert plan.status["rejectedVersions"] == [ENTRY]
    assert plan.status["history"] == [HISTORY[0]]
    assert plan.status_patch["history"] == [HISTORY[0]] and plan.status_patch["rejectedVersions"] == [ENTRY]


COND = {
    "type": "Ready",
    "status": "True",
    "reason": "Available",
    "message": "serving v1",
    "lastTransitionTime": "2026-01-01T10:00:00Z",
    "observedGeneration": 1,
}


def test_conditions_are_handed_on_as_stored() -> None:
    bare = {k: v for k, v in COND.items() if k not in ("message", "observedGeneration")}
    rec = ServiceRecord.from_status({"conditions": [COND, {**bare, "type": "Degraded"}]})
    assert rec.condition("Ready") is not None and rec.condition("Ready").reason == "Available"  # type: ignore[union-attr]
    assert rec.condition("Stalled") is None
    # no field added (message keeps absent), none lost
    assert rec.conditions_as_stored() == [COND, {**bare, "type": "Degraded"}]


@pytest.mark.parametrize(
    "bad",
    [
        "Ready",
        {**COND, "status": "Maybe"},
        {k: v for k, v in COND.items() if k != "lastTransitionTime"},
        {**COND, "reason": "not a reason!"},
    ],
)
def test_a_condition_that_does_not_parse_is_left_out(bad: Any) -> None:
    rec = ServiceRecord.from_status({"conditions": [bad, {**COND, "type": "Reconciling"}]})
    assert [c.type for c in rec.conditions] == ["Reconciling"]
    assert ServiceRecord.from_status({"conditions": {"Ready": COND}}).conditions == ()
    # the reconcile writes the conditions anew, without it, and does not crash
    status = {"stableVersion": 1, "promotedAt": "2026-01-01T10:00:00Z", "conditions": [bad]}
    plan = ir.reconcile(isvc(gen=1, status=status), [mv(1)], [], settings=Settings(), now=T0)
    assert bad not in plan.status["conditions"]
    written = ServiceRecord.from_status(plan.status)
    assert written.conditions_as_stored() == plan.status["conditions"]  # each one parses
    assert plan.status["conditions"][0]["type"] == "Ready"
