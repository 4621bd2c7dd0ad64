"""The drift hook of the InferenceService reconciler: a policy Decision -> status and children (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from _operator_fixtures import isvc, mv

from onnxops.api import conditions as cond
from onnxops.drift.evaluate import Served, prior_from_status
from onnxops.drift.policy import Decision
from onnxops.reconcile.drift_hook import apply_decision
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()
RETRAIN = {
    "trainingJob": {
        "model": "iris",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "LogisticRegression"},
    },
    "minInterval": "30m",
}


def decision(action, *, frm=None, to=None, scores=None, verdicts=None) -> Decision:
    scores = scores or {"1": 0.05, "2": 0.6}
    return Decision(
        action=action,
        reason="DriftDetected" if action else "NoDrift",
        message="psi 0.6 > 0.2",
        verdicts=verdicts or {v: ("Drift" if s > 0.2 else "NoDrift") for v, s in scores.items()},
        scores=scores,
        feature_scores={v: {"f0": s} for v, s in scores.items()},
        samples={v: 500.0 for v in scores},
        consecutive={v: (3 if s > 0.2 else 0) for v, s in scores.items()},
        breaches={v: s > 0.2 for v, s in scores.items()},
        rollback_from=frm,
        rollback_to=to,
    )


def test_rollback_of_canary():
    obj = isvc(status={"stableVersion": 1, "canaryVersion": 2, "canaryWeight": 50, "currentStep": 0})
    dp = apply_decision(obj, [mv(1), mv(2)], [], decision("Rollback", frm="2", to="1"), settings=S, now=T0)
    st = dp.plan.status
    assert st["canaryVersion"] is None and st["stableVersion"] == 1
    rb = st["rollback"]
    assert (rb["from"], rb["to"], rb["reason"]) == (2, 1, "DriftDetected")
    assert rb["scores"] == {"v1": 0.05, "v2": 0.6}
    assert dp.plan.reject == [("iris-v2", "DriftDetected")]
    assert cond.is_true(st["conditions"], cond.DRIFT_DETECTED)
    assert st["drift"]["version"] == 2 and st["drift"]["score"] == 0.6
    assert dp.retrain is None


def test_rollback_during_bake_restores_previous():
    obj = isvc(status={"stableVersion": 2, "previousVersion": 1, "promotedAt": "2026-01-01T11:59:00Z"})
    dp = apply_decision(obj, [mv(1), mv(2)], [], decision("Rollback", frm="2", to="1"), settings=S, now=T0)
    st = dp.plan.status
    assert st["stableVersion"] == 1 and st["previousVersion"] is None
    assert st["history"][-1]["action"] == "RolledBack"
    assert {c["metadata"]["name"] for c in dp.plan.children if c["kind"] == "Deployment"} == {"iris-v1"}


def test_retrain_creates_one_training_job_rate_limited():
    scores = {"1": 0.7}
    obj = isvc(status={"stableVersion": 1}, retrain=RETRAIN)
    dp = apply_decision(obj, [mv(1)], [], decision("Retrain", scores=scores), settings=S, now=T0)
    assert dp.retrain is not None and dp.retrain["metadata"]["name"] == "iris-retrain-1"
    assert dp.retrain["metadata"]["ownerReferences"][0]["kind"] == "InferenceService"
    assert dp.retrain["spec"] == RETRAIN["trainingJob"]
    assert dp.plan.status["retrain"]["count"] == 1
    # one is running: nothing new
    running = [{"status": {"phase": "Running"}}]
    assert (
        apply_decision(
            obj, [mv(1)], [], decision("Retrain", scores=scores), settings=S, now=T0, retrain_children=running
        ).retrain
        is None
    )
    # within minInterval of the last one: nothing new; after it: the next number
    obj["status"]["retrain"] = {"trainingJob": "iris-retrain-1", "at": "2026-01-01T12:00:00Z", "count": 1}
    assert (
        apply_decision(
            obj, [mv(1)], [], decision("Retrain", scores=scores), settings=S, now=T0 + timedelta(minutes=10)
        ).retrain
        is None
    )
    later = apply_decision(
        obj, [mv(1)], [], decision("Retrain", scores=scores), settings=S, now=T0 + timedelta(minutes=31)
    )
    assert later.retrain is not None and later.retrain["metadata"]["name"] == "iris-retrain-2"


def test_alert_sets_condition_and_one_event():
    obj = isvc(status={"stableVersion": 1})
    dp = apply_decision(obj, [mv(1)], [], decision("Alert", scores={"1": 0.5}), settings=S, now=T0)
    assert cond.is_true(dp.plan.status["conditions"], cond.DRIFT_DETECTED)
    assert [e[1] for e in dp.plan.events] == ["DriftDetected"]
    obj["status"] = {k: v for k, v in dp.plan.status.items() if v is not None}
    again = apply_decision(
        obj, [mv(1)], [], decision("Alert", scores={"1": 0.5}), settings=S, now=T0 + timedelta(seconds=30)
    )
    assert again.plan.events == []
    # the breach count survives through status, read back the way the controller does
    assert prior_from_status(obj["status"], [Served("1", "stable", None)]).consecutive == {"1": 3}


def test_no_drift_clears_condition():
    obj = isvc(status={"stableVersion": 1})
    dp = apply_decision(obj, [mv(1)], [], decision(None, scores={"1": 0.01}), settings=S, now=T0)
    c = cond.find(dp.plan.status["conditions"], cond.DRIFT_DETECTED)
    assert c and c["status"] == "False" and c["reason"] == "NoDrift"
    assert dp.plan.status.get("rollback") is None and dp.retrain is None


def test_drift_due_follows_monitoring_interval():
    from onnxops.controller.drift import drift_due

    mon = {"monitoring": {"interval": "30s", "drift": {"window": "5m"}}}
    assert drift_due(isvc(**mon), T0) == 0.0  # never evaluated: now
    evaluated = isvc(status={"drift": {"evaluatedAt": "2026-01-01T11:59:50Z"}}, **mon)
    assert drift_due(evaluated, T0) == 20.0
    assert drift_due(isvc(), T0) is None  # no monitoring.drift: off
    off = {"monitoring": {"drift": {"enabled": False}}}
    assert drift_due(isvc(**off), T0) is None


def test_a_retrain_created_just_before_a_crash_is_recorded_not_repeated():
    """The retrain TrainingJob is created before the status write: after a crash in between, the next
    evaluation records that retrain (from the TrainingJob) and decides none of its own."""
    obj = isvc(status={"stableVersion": 1}, retrain=RETRAIN)
    first = apply_decision(obj, [mv(1)], [], decision("Retrain", scores={"1": 0.7}), settings=S, now=T0)
    assert first.retrain is not None
    created = {**first.retrain, "status": {"phase": "Running"}}
    later_t = T0 + timedelta(seconds=8)
    for action in ("Alert", "Retrain"):  # the policy sees the running retrain (Alert), or it is over already
        later = apply_decision(
            obj,
            [mv(1)],
            [],
            decision(action, scores={"1": 0.7}),
            settings=S,
            now=later_t,
            retrain_children=[created],
        )
        assert later.retrain is None
        assert later.plan.status["retrain"] == first.plan.status["retrain"]
        assert [h["action"] for h in later.plan.status["history"]] == ["Retrained"]
    recorded = isvc(status=later.plan.status, retrain=RETRAIN)
    again = apply_decision(
        recorded,
        [mv(1)],
        [],
        decision("Alert", scores={"1": 0.7}),
        settings=S,
        now=later_t,
        retrain_children=[created],
    )
    assert again.retrain is None and again.plan.status_patch.get("retrain") is None
    assert [h["action"] for h in again.plan.status["history"]] == ["Retrained"]


def test_status_drift_is_about_the_canary_and_keeps_every_versions_breaches():
    """One writer, one formula: status.drift (apply_decision) focuses the canary (else the stable), carries
    every served version's breach count, and the controller's prior state reads all of them back."""
    obj = isvc(status={"stableVersion": 1, "canaryVersion": 2, "canaryWeight": 50, "currentStep": 0})
    scores = {"1": 0.6, "2": 0.1}  # the stable drifts more, the canary is what the rollout is about
    dp = apply_decision(obj, [mv(1), mv(2)], [], decision("Alert", scores=scores), settings=S, now=T0)
    drift = dp.plan.status["drift"]
    assert (drift["version"], drift["score"], drift["verdict"]) == (2, 0.1, "NoDrift")
    assert drift["versions"] == scores and drift["breaches"] == {"1": 3, "2": 0}
    assert drift["consecutiveBreaches"] == 0 and drift["samples"] == 500
    assert drift["message"] == "DriftDetected: psi 0.6 > 0.2"
    assert drift["evaluatedAt"] == "2026-01-01T12:00:00Z"
    assert dp.plan.status_patch["drift"] == drift
    served = [Served("1", "stable", None), Served("2", "canary", None)]
    assert prior_from_status(dp.plan.status, served).consecutive == {"1": 3, "2": 0}


def test_a_missing_drift_module_is_an_error_not_silently_no_monitoring(monkeypatch):
    import asyncio
    import sys

    import pytest

    from onnxops.controller.drift import evaluate_drift_if_due
    from onnxops.controller.performance import evaluate_performance_if_due

    monkeypatch.setitem(sys.modules, "onnxops.drift.scrape", None)  # as if the module were not installed
    for evaluate in (evaluate_drift_if_due, evaluate_performance_if_due):
        with pytest.raises(ImportError):
            asyncio.run(evaluate(None, "ns", "iris"))  # type: ignore[arg-type]
