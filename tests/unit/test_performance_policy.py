"""The live-performance policy as a table: per-version labelled counts + spec + prior -> the decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from onnxops.api.v1alpha1 import InferenceServiceSpec
from onnxops.drift.live import Inconclusive
from onnxops.drift.performance import PerfCounts
from onnxops.drift.performance_policy import (
    PerfPolicySpec,
    PerfPrior,
    ServedPerf,
    decide_performance,
)

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def clf(correct: int, wrong: int) -> PerfCounts:
    """Counts of a 2-class model: ``correct`` right answers, ``wrong`` wrong ones (accuracy = c/(c+w))."""
    return PerfCounts(
        confusion={("a", "a"): float(correct), ("a", "b"): float(wrong)}, labels=float(correct + wrong)
    )


def reg(n: int, mae: float) -> PerfCounts:
    return PerfCounts(labels=float(n), abs_err=mae * n, sq_err=(mae**2) * n)


HELD = {"accuracy": 0.95, "f1_macro": 0.9, "mae": 2.0, "rmse": 3.0}
S = PerfPolicySpec(failure_limit=1, min_labels=100)
S3 = PerfPolicySpec(failure_limit=3, min_labels=100)
RETRAIN = PerfPolicySpec(failure_limit=1, on_concept_drift="Retrain", retrain_configured=True)


def sv(v: str, role: str, counts: Any, task: str | None = "classification", held: Any = None) -> ServedPerf:
    return ServedPerf(v, role, counts, HELD if held is None else held, task)  # type: ignore[arg-type]


# (id, served, spec, prior, data drift, expected action, expected reason, rollback (from, to) or None)
TABLE: list[tuple[str, list[ServedPerf], PerfPolicySpec, PerfPrior, str, str | None, str, Any]] = [
    ("healthy", [sv("1", "stable", clf(190, 10))], S, PerfPrior(), "NoDrift", None, "Healthy", None),
    (
        "too-few-labels-never-acts",
        [sv("1", "stable", clf(10, 89))],
        RETRAIN,
        PerfPrior(),
        "NoDrift",
        None,
        "Inconclusive",
        None,
    ),
    (
        "no-counts",
        [sv("1", "stable", Inconclusive("WarmingUp", "first scrape"))],
        S,
        PerfPrior(),
        "NoDrift",
        None,
        "Inconclusive",
        None,
    ),
    (
        "degraded-below-limit-pending",
        [sv("1", "stable", clf(100, 100))],
        S3,
        PerfPrior(),
        "NoDrift",
        None,
        "BreachPending",
        None,
    ),
    (
        "concept-drift-alert",
        [sv("1", "stable", clf(100, 100))],
        S3,
        PerfPrior({"1": 2}),
        "NoDrift",
        "Alert",
        "ConceptDrift",
        None,
    ),
    (
        "concept-drift-retrain",
        [sv("1", "stable", clf(100, 100))],
        RETRAIN,
        PerfPrior(),
        "NoDrift",
        "Retrain",
        "ConceptDrift",
        None,
    ),
    (
        "concept-drift-unknown-data-drift-still-retrains",
        [sv("1", "stable", clf(100, 100))],
        RETRAIN,
        PerfPrior(),
        "Unknown",
        "Retrain",
        "ConceptDrift",
        None,
    ),
    (
        "with-data-drift-no-retrain",
        [sv("1", "stable", clf(100, 100))],
        RETRAIN,
        PerfPrior(),
        "Drift",
        "Alert",
        "DegradedWithDataDrift",
        None,
    ),
    (
        "retrain-running",
        [sv("1", "stable", clf(100, 100))],
        RETRAIN,
        PerfPrior(retrain_running=True),
        "NoDrift",
        "Alert",
        "RetrainRunning",
        None,
    ),
    (
        "retrain-rate-limited",
        [sv("1", "stable", clf(100, 100))],
        RETRAIN,
        PerfPrior(last_retrain_at=NOW - timedelta(minutes=5)),
        "NoDrift",
        "Alert",
        "RetrainRateLimited",
        None,
    ),
    (
        "retrain-not-configured",
        [sv("1", "stable", clf(100, 100))],
        PerfPolicySpec(failure_limit=1, on_concept_drift="Retrain"),
        PerfPrior(),
        "NoDrift",
        "Alert",
        "RetrainNotConfigured",
        None,
    ),
    (
        "canary-worse-than-stable",
        [sv("1", "stable", clf(190, 10)), sv("2", "canary", clf(150, 50))],
        S,
        PerfPrior(),
        "NoDrift",
        "Rollback",
        "CanaryUnderperformed",
        ("2", "1"),
    ),
    (
        "canary-worse-but-too-few-labels",
        [sv("1", "stable", clf(190, 10)), sv("2", "canary", clf(30, 20))],
        S,
        PerfPrior(),
        "NoDrift",
        None,
        "Healthy",
        None,
    ),
    (
        "canary-within-max-regression",
        [sv("1", "stable", clf(190, 10)), sv("2", "canary", clf(187, 13))],
        S,
        PerfPrior(),
        "NoDrift",
        None,
        "Healthy",
        None,
    ),
    (
        "canary-better",
        [sv("1", "stable", clf(150, 50)), sv("2", "canary", clf(190, 10))],
        S3,
        PerfPrior(),
        "NoDrift",
        None,
        "BreachPending",
        None,
    ),
    (
        "just-promoted-worse-than-previous",
        [sv("2", "stable", clf(150, 50)), sv("1", "previous", clf(190, 10))],
        S,
        PerfPrior(promoted_at=NOW - timedelta(seconds=30)),
        "NoDrift",
        "Rollback",
        "PromotionUnderperformed",
        ("2", "1"),
    ),
    (
        "promoted-long-ago",
        [sv("2", "stable", clf(190, 10)), sv("1", "previous", clf(199, 1))],
        S,
        PerfPrior(promoted_at=NOW - timedelta(hours=2)),
        "NoDrift",
        None,
        "Healthy",
        None,
    ),
    (
        "one-of-two-degraded-alerts",
        [sv("1", "stable", clf(190, 10)), sv("2", "canary", clf(100, 100))],
        PerfPolicySpec(failure_limit=1, max_regression=1.0),
        PerfPrior(),
        "NoDrift",
        "Alert",
        "PerformanceDegraded",
        None,
    ),
    (
        "absolute-min",
        [sv("1", "stable", clf(170, 30))],
        PerfPolicySpec(failure_limit=1, min=0.9),
        PerfPrior(),
        "NoDrift",
        "Alert",
        "ConceptDrift",
        None,
    ),
    (
        "absolute-min-met",
        [sv("1", "stable", clf(170, 30))],
        PerfPolicySpec(failure_limit=1, min=0.8),
        PerfPrior(),
        "NoDrift",
        None,
        "Healthy",
        None,
    ),
    (
        "no-held-out-metric-inconclusive",
        [sv("1", "stable", clf(100, 100), held={})],
        S,
        PerfPrior(),
        "NoDrift",
        None,
        "Inconclusive",
        None,
    ),
    (
        "rmse-on-classifier",
        [sv("1", "stable", clf(190, 10))],
        PerfPolicySpec(metric="rmse"),
        PerfPrior(),
        "NoDrift",
        None,
        "MetricNotApplicable",
        None,
    ),
    (
        "regression-mae-degraded",
        [sv("1", "stable", reg(200, 2.5), "regression")],
        PerfPolicySpec(metric="mae", failure_limit=1),
        PerfPrior(),
        "NoDrift",
        "Alert",
        "ConceptDrift",
        None,
    ),
    (
        "regression-mae-ok",
        [sv("1", "stable", reg(200, 2.1), "regression")],
        PerfPolicySpec(metric="mae", failure_limit=1),
        PerfPrior(),
        "NoDrift",
        None,
        "Healthy",
        None,
    ),
    (
        "regression-canary-rmse-worse",
        [sv("1", "stable", reg(200, 2.0), "regression"), sv("2", "canary", reg(200, 2.5), "regression")],
        PerfPolicySpec(metric="rmse", failure_limit=1),
        PerfPrior(),
        "NoDrift",
        "Rollback",
        "CanaryUnderperformed",
        ("2", "1"),
    ),
    (
        "disabled",
        [sv("1", "stable", clf(0, 200))],
        PerfPolicySpec(enabled=False),
        PerfPrior(),
        "NoDrift",
        None,
        "PerformanceDisabled",
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "served", "spec", "prior", "data_drift", "action", "reason", "rollback"),
    TABLE,
    ids=[t[0] for t in TABLE],
)
def test_policy_table(
    case: str,
    served: list[ServedPerf],
    spec: PerfPolicySpec,
    prior: PerfPrior,
    data_drift: Any,
    action: str | None,
    reason: str,
    rollback: Any,
) -> None:
    d = decide_performance(served, spec, prior, NOW, data_drift)
    assert (d.action, d.reason) == (action, reason), d.message
    assert (d.rollback_from, d.rollback_to) == (rollback or (None, None))
    assert d.message


def test_decision_carries_the_numbers() -> None:
    d = decide_performance([sv("1", "stable", clf(150, 50))], S3, PerfPrior({"1": 1}), NOW, "NoDrift")
    assert d.values == {"1": 0.75} and d.labels == {"1": 200}
    assert d.thresholds["1"] == pytest.approx(0.95 * 0.9) and d.consecutive == {"1": 2}
    assert "accuracy 0.75" in d.message and "200 labels" in d.message
    # an inconclusive window neither counts nor resets
    d2 = decide_performance([sv("1", "stable", clf(5, 5))], S3, PerfPrior({"1": 2}), NOW)
    assert d2.consecutive == {"1": 2} and d2.verdicts == {"1": "Inconclusive"}


def test_spec_from_the_api_model() -> None:
    spec = InferenceServiceSpec.model_validate(
        {
            "model": "iris",
            "retrain": {
                "trainingJob": {
                    "model": "iris",
                    "dataset": {"uri": "sklearn://iris"},
                    "estimator": {"className": "LogisticRegression"},
                }
            },
            "monitoring": {
                "performance": {
                    "metric": "f1",
                    "maxDegradation": 0.05,
                    "minLabels": 20,
                    "onConceptDrift": "Retrain",
                    "failureLimit": 2,
                }
            },
        }
    )
    p = PerfPolicySpec.from_spec(spec)
    assert (p.enabled, p.metric, p.max_degradation) == (True, "f1", 0.05)
    assert (p.min_labels, p.failure_limit) == (20, 2)
    assert p.on_concept_drift == "Retrain" and p.retrain_configured
    assert not PerfPolicySpec.from_spec(InferenceServiceSpec.model_validate({"model": "iris"})).enabled
