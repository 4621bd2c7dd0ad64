"""The performance hook: a policy decision from live labels -> status.performance, rollback, retrain."""

from __future__ import annotations

from datetime import UTC, datetime

from _operator_fixtures import isvc, mv

from onnxops.api import conditions as cond
from onnxops.drift.performance import PerfCounts
from onnxops.drift.performance_policy import PerfPolicySpec, PerfPrior, ServedPerf, decide_performance
from onnxops.reconcile.performance_hook import PERFORMANCE_DEGRADED, apply_performance, prior_consecutive
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()
HELD = {"accuracy": 0.95}
RETRAIN = {
    "trainingJob": {
        "model": "iris",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "LogisticRegression"},
    },
    "minInterval": "30m",
}


def counts(correct: int, wrong: int) -> PerfCounts:
    return PerfCounts(
        confusion={("0", "0"): float(correct), ("0", "1"): float(wrong)}, labels=float(correct + wrong)
    )


def test_canary_worse_on_labels_is_rolled_back_status_only() -> None:
    obj = isvc(status={"stableVersion": 1, "canaryVersion": 2, "canaryWeight": 50, "currentStep": 0})
    d = decide_performance(
        [ServedPerf("1", "stable", counts(190, 10), HELD), ServedPerf("2", "canary", counts(140, 60), HELD)],
        PerfPolicySpec(failure_limit=1),
        PerfPrior(),
        T0,
        "NoDrift",
    )
    dp = apply_performance(obj, [mv(1), mv(2)], [], d, settings=S, now=T0, unresolved=7)
    st = dp.plan.status
    assert st["canaryVersion"] is None and st["stableVersion"] == 1
    assert (st["rollback"]["from"], st["rollback"]["to"], st["rollback"]["reason"]) == (
        2,
        1,
        "CanaryUnderperformed",
    )
    assert dp.plan.reject == [("iris-v2", "CanaryUnderperformed")]
    perf = st["performance"]
    assert perf["verdict"] == "Regressed" and perf["action"] == "Rollback" and perf["value"] == 0.95
    assert perf["versions"]["2"] == {
        "verdict": "Degraded",
        "labels": 200,
        "value": 0.7,
        "reference": 0.95 * 0.9,
    }
    assert perf["unresolved"] == 7
    assert cond.is_true(st["conditions"], PERFORMANCE_DEGRADED)
    assert dp.retrain is None


def test_concept_drift_retrains_once_and_the_breaches_survive_a_restart() -> None:
    obj = isvc(status={"stableVersion": 1}, retrain=RETRAIN)
    spec = PerfPolicySpec(failure_limit=2, on_concept_drift="Retrain", retrain_configured=True)
    served = [ServedPerf("1", "stable", counts(120, 80), HELD)]
    d1 = decide_performance(served, spec, PerfPrior(), T0, "NoDrift")
    dp1 = apply_performance(obj, [mv(1)], [], d1, settings=S, now=T0)
    assert d1.action is None and dp1.retrain is None
    assert prior_consecutive(dp1.plan.status) == {"1": 1}  # read back from status.performance
    d2 = decide_performance(served, spec, PerfPrior(prior_consecutive(dp1.plan.status)), T0, "NoDrift")
    dp2 = apply_performance(obj, [mv(1)], [], d2, settings=S, now=T0)
    assert (d2.action, d2.reason) == ("Retrain", "ConceptDrift")
    assert dp2.retrain is not None and dp2.retrain["spec"] == RETRAIN["trainingJob"]
    assert dp2.plan.status["retrain"]["reason"] == "ConceptDrift"
    assert dp2.plan.status["performance"]["verdict"] == "ConceptDrift"
    running = [{"status": {"phase": "Running"}}]
    again = apply_performance(obj, [mv(1)], [], d2, settings=S, now=T0, retrain_children=running)
    assert again.retrain is None


def test_too_few_labels_changes_nothing_but_status() -> None:
    obj = isvc(status={"stableVersion": 1}, retrain=RETRAIN)
    d = decide_performance(
        [ServedPerf("1", "stable", counts(1, 9), HELD)],
        PerfPolicySpec(failure_limit=1, on_concept_drift="Retrain", retrain_configured=True),
        PerfPrior(),
        T0,
        "NoDrift",
    )
    dp = apply_performance(obj, [mv(1)], [], d, settings=S, now=T0)
    assert dp.retrain is None and not dp.plan.status.get("rollback") and not dp.plan.reject
    assert dp.plan.status["performance"]["verdict"] == "Inconclusive"
    assert not cond.is_true(dp.plan.status["conditions"], PERFORMANCE_DEGRADED)
