"""A rollback is recorded per InferenceService: `latest` skips the version for the service that rolled it
back, never for another service of the same model; the ModelVersion's record only says who rejected it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from _operator_fixtures import isvc, mv
from test_reconcile_drift import decision

from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile import versions
from onnxops.reconcile.drift_hook import apply_decision
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()
ENTRY = {"version": 2, "reason": "DriftDetected", "at": "2026-01-01T11:00:00Z", "generation": 1}


def marked(m: dict[str, Any], *services: str) -> dict[str, Any]:
    """``m`` after the controller applied each service's mark patch (a JSON merge patch of status)."""
    st = dict(m.get("status") or {})
    for s in services:
        patch = versions.mark_patch(s, "DriftDetected", "2026-01-01T11:00:00Z")
        st.update(
            rejected=patch["rejected"],
            rejectedReason=patch["rejectedReason"],
            rejectedBy={**(st.get("rejectedBy") or {}), **patch["rejectedBy"]},
        )
    return {**m, "status": st}


def served(plan: ir.IsvcPlan) -> set[int]:
    return {plan.status[k] for k in ("stableVersion", "canaryVersion") if plan.status.get(k) is not None}


def test_service_a_rolls_back_v2_and_service_b_may_still_roll_it_out() -> None:
    a = isvc("iris", status={"stableVersion": 1, "canaryVersion": 2, "canaryWeight": 50, "currentStep": 0})
    dp = apply_decision(a, [mv(1), mv(2)], [], decision("Rollback", frm="2", to="1"), settings=S, now=T0)
    rec = dp.plan.status["rejectedVersions"]
    assert [(e["version"], e["reason"], e["generation"]) for e in rec] == [(2, "DriftDetected", 1)]
    assert dp.plan.reject == [("iris-v2", "DriftDetected")]  # the ModelVersion learns who rejected it
    mvs = [mv(1), marked(mv(2), "iris")]
    # service B (same model, same namespace) still rolls v2 out: the mark is informative only
    b = isvc("iris-b", status={"stableVersion": 1})
    plan_b = ir.reconcile(b, mvs, [], settings=S, now=T0)
    assert 2 in served(plan_b), plan_b.status["message"]
    assert plan_b.reject == [] and plan_b.readmit == [] and not plan_b.status.get("rejectedVersions")
    # service A stays off v2, during the hold AND after a spec change ends it (its own record)
    for gen in (1, 2):
        a2 = isvc("iris", gen=gen, status={**dp.plan.status, "stableVersion": 1})
        plan_a = ir.reconcile(a2, mvs, [], settings=S, now=T0)
        assert served(plan_a) == {1}, (gen, plan_a.status["message"])
        assert [e["version"] for e in plan_a.status["rejectedVersions"]] == [2]
        assert plan_a.reject == [] and plan_a.readmit == []


def test_pinning_the_version_in_a_later_generation_readmits_it() -> None:
    st = {"stableVersion": 1, "rejectedVersions": [ENTRY]}
    mvs = [mv(1), marked(mv(2), "iris")]
    # the same generation that rejected it: the pin does not re-admit it (the rollback holds)
    same = ir.reconcile(isvc(gen=1, version=2, status=st), mvs, [], settings=S, now=T0)
    assert same.status["rejectedVersions"] == [ENTRY] and same.readmit == []
    later = ir.reconcile(isvc(gen=2, version=2, status=st), mvs, [], settings=S, now=T0)
    assert later.status.get("rejectedVersions") is None and 2 in served(later)
    assert later.readmit == [
        ("iris-v2", {"rejectedBy": {"iris": None}, "rejected": None, "rejectedReason": None})
    ]
    # another service's mark stays, and so does the ModelVersion's summary
    both = [mv(1), marked(mv(2), "iris", "iris-b")]
    later = ir.reconcile(isvc(gen=2, version=2, status=st), both, [], settings=S, now=T0)
    assert later.readmit == [("iris-v2", {"rejectedBy": {"iris": None}})]


def test_removing_the_entry_from_status_readmits_it_once_the_hold_is_over() -> None:
    rb = {"from": 2, "to": 1, "reason": "DriftDetected", "at": "2026-01-01T11:00:00Z", "generation": 1}
    mvs = [mv(1), marked(mv(2), "iris")]
    st = {"stableVersion": 1, "rollback": rb}  # `kubectl patch --subresource=status` removed the entry
    held = ir.reconcile(isvc(gen=1, status=st), mvs, [], settings=S, now=T0)
    assert served(held) == {1} and [e["version"] for e in held.status["rejectedVersions"]] == [2]
    over = ir.reconcile(isvc(gen=2, status=st), mvs, [], settings=S, now=T0)
    assert 2 in served(over) and over.readmit and not over.status.get("rejectedVersions")


def test_a_rejection_by_an_older_operator_stays_with_the_service_that_made_it() -> None:
    legacy = {**mv(2), "status": {"phase": "Ready", "rejected": True, "rejectedReason": "DriftDetected"}}
    rb = {"from": 2, "to": 1, "reason": "DriftDetected", "at": "2026-01-01T11:00:00Z", "generation": 1}
    a = ir.reconcile(
        isvc(gen=2, status={"stableVersion": 1, "rollback": rb}), [mv(1), legacy], [], settings=S, now=T0
    )
    assert served(a) == {1} and [e["version"] for e in a.status["rejectedVersions"]] == [2]
    assert a.reject == [("iris-v2", "DriftDetected")]  # now recorded with its service
    b = ir.reconcile(isvc("iris-b", status={"stableVersion": 1}), [mv(1), legacy], [], settings=S, now=T0)
    assert 2 in served(b)


def test_record_is_bounded_and_keeps_the_newest() -> None:
    old = {"rejectedVersions": [{**ENTRY, "version": v} for v in range(1, versions.MAX_REJECTED + 1)]}
    out = versions.record_rejections(
        old, [(999, "AnalysisFailed")], spec_version="latest", generation=1, at="2026-01-01T12:00:00Z"
    )
    assert out is not None and len(out) == versions.MAX_REJECTED
    assert out[-1]["version"] == 999 and out[0]["version"] == 2
