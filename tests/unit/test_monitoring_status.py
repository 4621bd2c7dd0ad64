"""The drift, performance and retrain status blocks as typed models (``api/v1alpha1/remediation.py``):
what the previous (dict) code stored parses and is written back as the same JSON, and a stored block that
does not parse is read the way the dict readers read it (a field or entry left out), never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_remediation_golden import STATES, TEMPLATE

from onnxops.api.v1alpha1.inferenceservice import DriftSummary
from onnxops.api.v1alpha1.performance import PerformanceSummary
from onnxops.api.v1alpha1.remediation import MonitoringStatus, RetrainRecord, read_block
from onnxops.builders import labels
from onnxops.controller.drift import drift_due
from onnxops.controller.performance import data_drift_of, performance_due
from onnxops.drift.evaluate import Served, prior_from_status
from onnxops.reconcile import remediation
from onnxops.reconcile.performance_hook import prior_consecutive

GOLDEN = Path(__file__).parent / "golden" / "remediation.json"
T0 = datetime(2026, 3, 2, 13, 0, 0, tzinfo=UTC)
SERVED = [Served("1", "stable", None), Served("2", "canary", None)]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the API server does with a status patch)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _stored_blocks() -> dict[str, list[dict[str, Any]]]:
    """Every status.drift / .performance / .retrain as stored after the dict code's writes: the status
    patches of golden/remediation.json (recorded before the paths were typed) applied to the status they
    were computed against."""
    before = dict(STATES)
    out: dict[str, list[dict[str, Any]]] = {"drift": [], "performance": [], "retrain": []}
    for case in json.loads(GOLDEN.read_text()).values():
        for key, plan in case.items():
            if key.endswith(":reads"):
                continue
            stored = merge_patch(before[key.split(":")[0]], plan["patch"])
            for field, blocks in out.items():
                if field in plan["patch"]:
                    blocks.append(stored[field])
    return out


BLOCKS = _stored_blocks()
MODELS: dict[str, Any] = {"drift": DriftSummary, "performance": PerformanceSummary, "retrain": RetrainRecord}


@pytest.mark.parametrize("field", sorted(BLOCKS))
def test_what_the_dict_code_stored_parses_and_is_written_back_unchanged(field: str) -> None:
    blocks = BLOCKS[field]
    assert len(blocks) >= 20  # every decision of every case writes one
    for block in blocks:
        parsed = MonitoringStatus.from_status({field: block})
        typed = getattr(parsed, field)
        assert isinstance(typed, MODELS[field])
        # the same JSON, byte for byte (the API server stores its keys sorted)
        assert json.dumps(typed.to_dict(), sort_keys=True) == json.dumps(block, sort_keys=True)
        # and strictly valid: nothing was left out on the way
        assert MODELS[field].model_validate(block).to_dict() == block


def test_a_retrain_record_keeps_fields_it_does_not_know() -> None:
    stored = {
        "trainingJob": "iris-retrain-3",
        "at": "2026-03-02T12:00:00Z",
        "count": 3,
        "by": "a newer operator",
    }
    rec = MonitoringStatus.from_status({"retrain": stored}).retrain
    assert rec is not None and rec.number == 3 and rec.to_dict() == stored


def test_blocks_that_are_not_objects_are_absent() -> None:
    st = MonitoringStatus.from_status({"drift": "x", "performance": [1], "retrain": 7, "promotedAt": 5})
    assert st == MonitoringStatus()
    assert st.retrain_count == 0 and st.drift_breaches() == {} and st.performance_breaches() == {}
    assert MonitoringStatus.from_status(None) == MonitoringStatus()


def test_what_does_not_parse_is_left_out_the_rest_is_read() -> None:
    stored = {
        "drift": {
            "breaches": {"1": "x", "2": 2},  # the dict readers skipped a count that is not a number
            "verdict": "Unknown",  # not a verdict the API knows
            "score": 0.5,
            "samples": -3,  # below the schema's minimum
        },
        "performance": {"breaches": ["1", 2], "evaluatedAt": "2026-03-02T12:59:00Z"},
        "retrain": {"trainingJob": "iris-retrain-1", "count": "many", "at": "2026-03-02T12:00:00Z"},
    }
    st = MonitoringStatus.from_status(stored)
    assert st.drift == DriftSummary(score=0.5, breaches={"2": 2})
    assert st.drift_breaches() == {"2": 2}
    assert st.data_drift() == data_drift_of(stored) == "Unknown"
    assert st.performance == PerformanceSummary(evaluated_at="2026-03-02T12:59:00Z")
    assert st.performance_breaches() == prior_consecutive(stored) == {}  # the dict code raised here
    assert st.retrain == RetrainRecord(training_job="iris-retrain-1", at="2026-03-02T12:00:00Z")
    assert st.retrain_count == 0
    assert read_block(DriftSummary, {"version": "two", "consecutiveBreaches": 1}) == DriftSummary(
        consecutive_breaches=1
    )


def test_breach_counts_written_before_the_map_still_count() -> None:
    prior = prior_from_status({"drift": {"version": 2, "consecutiveBreaches": 2}}, SERVED)
    assert prior.consecutive == {"2": 2}
    # a map, even with every entry skipped, is the map: no fallback to the focus version's count
    prior = prior_from_status(
        {"drift": {"version": 2, "consecutiveBreaches": 2, "breaches": {"2": "x"}}}, SERVED
    )
    assert prior.consecutive == {}


def _isvc(status: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": "iris", "monitoring": {"interval": "1m", "drift": {}, "performance": {}}}
    return {"metadata": {"name": "iris", "namespace": "ml"}, "spec": spec, "status": status}


def test_an_unreadable_evaluation_time_is_due_now_not_a_crash() -> None:
    ten_s_ago = (T0 - timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fine = _isvc({"drift": {"evaluatedAt": ten_s_ago}, "performance": {"evaluatedAt": ten_s_ago}})
    assert drift_due(fine, T0) == performance_due(fine, T0) == 50.0
    odd = _isvc({"drift": {"evaluatedAt": "yesterday"}, "performance": {"evaluatedAt": "2026-03-02"}})
    assert drift_due(odd, T0) == performance_due(odd, T0) == 0.0


def test_an_unreadable_last_retrain_time_does_not_hold_a_retrain_back() -> None:
    spec = {"model": "iris", "retrain": {"minInterval": "1h", "trainingJob": TEMPLATE}}
    recent = {"retrain": {"at": (T0 - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"), "count": 1}}
    assert not remediation.retrain_due(spec, recent, [], T0)
    assert remediation.retrain_due(spec, {"retrain": {"at": "soon", "count": 1}}, [], T0)


def test_an_unreadable_retrain_annotation_is_not_a_pending_retrain() -> None:
    def tj(raw: str) -> dict[str, Any]:
        return {"metadata": {"annotations": {labels.RETRAIN_RECORD: raw}}, "status": {}}

    good = json.dumps({"trainingJob": "iris-retrain-2", "count": 2, "at": "2026-03-02T12:00:00Z"})
    children = [tj("{not json"), tj(json.dumps({"count": "bad"})), tj(json.dumps([2])), tj(good)]
    pending = remediation.unrecorded_retrain({"retrain": {"count": 1}}, children)
    assert pending is not None and pending.to_dict() == json.loads(good)
    assert remediation.unrecorded_retrain({"retrain": {"count": 2}}, children) is None
