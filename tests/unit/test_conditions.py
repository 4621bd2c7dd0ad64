"""api/conditions.py: kstatus-style condition helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from onnxops.api import conditions as cond
from onnxops.crdgen import build_crds
from onnxops.validate import schema_for, validate

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_now_rfc3339_is_utc_with_z() -> None:
    assert cond.now_rfc3339(T0) == "2026-01-02T03:04:05Z"
    other_zone = datetime(2026, 1, 2, 3, 4, 5, 999_000, tzinfo=UTC)
    assert cond.now_rfc3339(other_zone) == "2026-01-02T03:04:05Z"


def test_set_condition_adds_a_new_condition() -> None:
    out = cond.set_condition(None, cond.READY, True, "Available", "ok", generation=4, now=T0)
    assert out == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Available",
            "message": "ok",
            "lastTransitionTime": "2026-01-02T03:04:05Z",
            "observedGeneration": 4,
        }
    ]


def test_unchanged_status_keeps_last_transition_time_but_updates_reason_and_message() -> None:
    first = cond.set_condition([], cond.READY, False, "Progressing", "step 1", now=T0)
    second = cond.set_condition(first, cond.READY, False, "CanaryInProgress", "step 2", now=T1)
    assert second[0]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert (second[0]["reason"], second[0]["message"]) == ("CanaryInProgress", "step 2")


def test_changed_status_moves_last_transition_time() -> None:
    first = cond.set_condition([], cond.READY, False, "Progressing", now=T0)
    second = cond.set_condition(first, cond.READY, True, "Available", now=T1)
    assert second[0]["lastTransitionTime"] == "2026-01-02T03:09:05Z"
    assert second[0]["status"] == "True"


def test_set_condition_is_idempotent() -> None:
    once = cond.set_condition([], cond.READY, True, "Available", "ok", generation=2, now=T0)
    twice = cond.set_condition(once, cond.READY, True, "Available", "ok", generation=2, now=T1)
    assert twice == once


def test_set_condition_does_not_mutate_and_keeps_others_in_order() -> None:
    verified = cond.set_condition([], cond.VERIFIED, True, "Verified", now=T0)
    both = cond.set_condition(verified, cond.READY, "Unknown", "Pending", now=T0)
    snapshot = [dict(c) for c in both]
    updated = cond.set_condition(both, cond.VERIFIED, False, "VerificationFailed", now=T1)
    assert both == snapshot
    assert [c["type"] for c in updated] == ["Verified", "Ready"]
    assert updated[1] == both[1]


def test_message_is_truncated_to_the_api_limit() -> None:
    out = cond.set_condition([], cond.READY, False, "Failed", "x" * 40_000, now=T0)
    assert len(out[0]["message"]) == 32768


def test_find_and_is_true() -> None:
    out = cond.set_condition([], cond.READY, True, "Available", now=T0)
    assert cond.find(out, "Ready") is not None and cond.find(out, "Stalled") is None
    assert cond.is_true(out, "Ready") and not cond.is_true(out, "Stalled") and not cond.is_true(None, "Ready")


def test_summarize_sets_reconciling_and_stalled_only_while_true() -> None:
    progressing = cond.summarize([], ready=False, reason="Progressing", reconciling=True, now=T0)
    assert {c["type"]: c["status"] for c in progressing} == {"Ready": "False", "Reconciling": "True"}
    stalled = cond.summarize(
        progressing,
        ready=False,
        reason="Failed",
        stalled=True,
        stalled_reason="ProgressDeadlineExceeded",
        now=T1,
    )
    assert {c["type"]: c["status"] for c in stalled} == {"Ready": "False", "Stalled": "True"}
    assert cond.find(stalled, "Stalled")["reason"] == "ProgressDeadlineExceeded"  # type: ignore[index]
    ready = cond.summarize(stalled, ready=True, reason="Available", now=T1)
    assert [c["type"] for c in ready] == ["Ready"]
    assert cond.summarize(ready, ready=True, reason="Available", now=T1 + timedelta(hours=1)) == ready


def test_conditions_from_the_helpers_are_valid_status_for_every_kind() -> None:
    conditions = cond.summarize(
        [], ready=False, reason=cond.Reason.CANARY, message="step 1/2", reconciling=True, generation=3, now=T0
    )
    for kind, crd in build_crds().items():
        spec = {
            "TrainingJob": {
                "model": "iris",
                "dataset": {"uri": "sklearn://iris"},
                "estimator": {"className": "SVC"},
            },
            "ModelVersion": {
                "model": "iris",
                "version": 1,
                "artifact": {"uri": "file:///m.onnx", "sha256": "a" * 64},
            },
            "InferenceService": {"model": "iris"},
            "Model": {"aliases": {"production": 1}},
        }[kind]
        obj = {"spec": spec, "status": {"conditions": conditions, "observedGeneration": 3}}
        assert validate(schema_for(crd), obj) == [], kind


def test_every_reason_matches_the_condition_reason_pattern() -> None:
    import re

    pattern = schema_for(build_crds()["ModelVersion"])["properties"]["status"]["properties"]["conditions"][
        "items"
    ]["properties"]["reason"]["pattern"]
    reasons = [v for k, v in vars(cond.Reason).items() if k.isupper()]
    assert reasons and all(re.match(pattern, r) for r in reasons)
