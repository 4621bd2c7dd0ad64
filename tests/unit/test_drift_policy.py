"""The drift policy as a table of cases, plus live scoring checked against scipy/numpy directly."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from onnxops.drift.live import Inconclusive, LiveCounts, score_version
from onnxops.drift.names import PREDICTION_FEATURE
from onnxops.drift.policy import (
    CHAIN,
    Decision,
    PolicySpec,
    PriorState,
    ServedVersion,
    decide,
)
from onnxops.drift.window import duration_seconds, promql_duration
from onnxops.profile import Profile

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

PROFILE = Profile.model_validate(
    {
        "formatVersion": 1,
        "task": "classification",
        "rows": 400,
        "features": [
            {
                "name": "x",
                "index": 0,
                "kind": "numeric",
                "edges": [0.0, 1.0, 2.0],
                "counts": [100, 100, 100, 100],
                "mean": 1.0,
                "std": 1.2,
                "sample": [],
            },
            {
                "name": "colour",
                "index": 1,
                "kind": "categorical",
                "categories": ["blue", "red"],
                "counts": [200, 200],
            },
        ],
        "prediction": {"kind": "class", "classes": ["0", "1"], "counts": [200, 200]},
    }
)

CLEAN_X = [100.0, 100.0, 100.0, 100.0]
SHIFT_X = [10.0, 10.0, 80.0, 300.0]  # PSI ≈ 1.4 (well above 0.2)
MILD_X = [80.0, 100.0, 100.0, 120.0]  # PSI ≈ 0.02


def live(
    version: str, x: list[float] = CLEAN_X, rows: float | None = None, colour=None, pred=None
) -> LiveCounts:
    total = sum(x)
    return LiveCounts(
        version=version,
        rows=total if rows is None else rows,
        numeric={"x": x},
        categorical={"colour": colour or {"blue": total / 2, "red": total / 2}},
        prediction_classes=pred or {"0": total / 2, "1": total / 2},
    )


def sv(version: str, role: str, lc: LiveCounts | Inconclusive) -> ServedVersion:
    return ServedVersion(version, role, lc, PROFILE)  # type: ignore[arg-type]


@dataclass
class Case:
    name: str
    served: list[ServedVersion]
    action: str | None
    reason: str
    spec: PolicySpec = field(default_factory=lambda: PolicySpec(failure_limit=1, min_samples=100))
    prior: PriorState = field(default_factory=PriorState)
    rollback: tuple[str, str] | None = None
    verdicts: dict[str, str] | None = None
    consecutive: dict[str, int] | None = None


CASES = [
    Case(
        "clean stable: no action",
        [sv("1", "stable", live("1"))],
        None,
        "NoDrift",
        verdicts={"1": "NoDrift"},
        consecutive={"1": 0},
    ),
    Case(
        "too few samples: inconclusive, count kept",
        [sv("1", "stable", live("1", SHIFT_X, rows=50))],
        None,
        "Inconclusive",
        prior=PriorState(consecutive={"1": 2}),
        verdicts={"1": "Inconclusive"},
        consecutive={"1": 2},
    ),
    Case(
        "source unreachable: inconclusive, never drift",
        [sv("1", "stable", Inconclusive("PrometheusUnavailable", "connection refused"))],
        None,
        "Inconclusive",
        prior=PriorState(consecutive={"1": 2}),
        consecutive={"1": 2},
    ),
    Case(
        "first breach of 3: pending",
        [sv("1", "stable", live("1", SHIFT_X))],
        None,
        "BreachPending",
        spec=PolicySpec(failure_limit=3),
        verdicts={"1": "NoDrift"},
        consecutive={"1": 1},
    ),
    Case(
        "third consecutive breach, onDrift Rollback, only version: alert",
        [sv("1", "stable", live("1", SHIFT_X))],
        "Alert",
        "AllVersionsDrifted",
        spec=PolicySpec(failure_limit=3),
        prior=PriorState(consecutive={"1": 2}),
        verdicts={"1": "Drift"},
        consecutive={"1": 3},
    ),
    Case(
        "clean window resets the count",
        [sv("1", "stable", live("1"))],
        None,
        "NoDrift",
        spec=PolicySpec(failure_limit=3),
        prior=PriorState(consecutive={"1": 2}),
        consecutive={"1": 0},
    ),
    Case(
        "canary drifts, stable clean: rollback to stable",
        [sv("1", "stable", live("1")), sv("2", "canary", live("2", SHIFT_X))],
        "Rollback",
        "CanaryDrifted",
        rollback=("2", "1"),
        verdicts={"1": "NoDrift", "2": "Drift"},
    ),
    Case(
        "canary drifts, stable mildly off but clearly better: rollback",
        [sv("1", "stable", live("1", MILD_X)), sv("2", "canary", live("2", SHIFT_X))],
        "Rollback",
        "CanaryDrifted",
        rollback=("2", "1"),
    ),
    Case(
        "canary drifts, stable inconclusive: alert, no rollback",
        [sv("1", "stable", live("1", rows=10)), sv("2", "canary", live("2", SHIFT_X))],
        "Alert",
        "DriftDetected",
    ),
    Case(
        "canary drifts, onDrift Alert: alert only",
        [sv("1", "stable", live("1")), sv("2", "canary", live("2", SHIFT_X))],
        "Alert",
        "DriftDetected",
        spec=PolicySpec(failure_limit=1, on_drift="Alert"),
    ),
    Case(
        "promoted within bake time, drifts, previous clean: rollback to previous",
        [sv("2", "stable", live("2", SHIFT_X)), sv("1", "previous", live("1"))],
        "Rollback",
        "PromotionDrifted",
        prior=PriorState(promoted_at=NOW - timedelta(seconds=60)),
        rollback=("2", "1"),
    ),
    Case(
        "promoted long ago: no rollback, alert",
        [sv("2", "stable", live("2", SHIFT_X)), sv("1", "previous", live("1"))],
        "Alert",
        "DriftDetected",
        prior=PriorState(promoted_at=NOW - timedelta(hours=1)),
    ),
    # the bake ended while v2's breach was open: the reconciler kept v1 warm for failureLimit x interval
    # more, and the policy still compares them instead of concluding that "every version drifts"
    Case(
        "drift confirmed after the bake, within failureLimit x interval: rollback to previous",
        [sv("2", "stable", live("2", SHIFT_X)), sv("1", "previous", live("1"))],
        "Rollback",
        "PromotionDrifted",
        spec=PolicySpec(failure_limit=3, bake_time_s=120, interval_s=30),
        prior=PriorState(consecutive={"2": 2}, promoted_at=NOW - timedelta(seconds=200)),
        rollback=("2", "1"),
    ),
    Case(
        "drift confirmed after bake + failureLimit x interval: alert",
        [sv("2", "stable", live("2", SHIFT_X)), sv("1", "previous", live("1"))],
        "Alert",
        "DriftDetected",
        spec=PolicySpec(failure_limit=3, bake_time_s=120, interval_s=30),
        prior=PriorState(consecutive={"2": 2}, promoted_at=NOW - timedelta(seconds=211)),
    ),
    Case(
        "both versions drift, onDrift Retrain: retrain",
        [sv("1", "stable", live("1", SHIFT_X)), sv("2", "canary", live("2", SHIFT_X))],
        "Retrain",
        "AllVersionsDrifted",
        spec=PolicySpec(failure_limit=1, on_drift="Retrain", retrain_configured=True),
    ),
    Case(
        "all drift, retrain running: alert",
        [sv("1", "stable", live("1", SHIFT_X))],
        "Alert",
        "RetrainRunning",
        spec=PolicySpec(failure_limit=1, on_drift="Retrain", retrain_configured=True),
        prior=PriorState(retrain_running=True),
    ),
    Case(
        "all drift, last retrain too recent: alert",
        [sv("1", "stable", live("1", SHIFT_X))],
        "Alert",
        "RetrainRateLimited",
        spec=PolicySpec(
            failure_limit=1, on_drift="Retrain", retrain_configured=True, retrain_min_interval_s=1800
        ),
        prior=PriorState(last_retrain_at=NOW - timedelta(minutes=10)),
    ),
    Case(
        "all drift, last retrain long ago: retrain",
        [sv("1", "stable", live("1", SHIFT_X))],
        "Retrain",
        "AllVersionsDrifted",
        spec=PolicySpec(
            failure_limit=1, on_drift="Retrain", retrain_configured=True, retrain_min_interval_s=1800
        ),
        prior=PriorState(last_retrain_at=NOW - timedelta(hours=1)),
    ),
    Case(
        "all drift, Retrain without spec.retrain: alert",
        [sv("1", "stable", live("1", SHIFT_X))],
        "Alert",
        "RetrainNotConfigured",
        spec=PolicySpec(failure_limit=1, on_drift="Retrain"),
    ),
    Case(
        "disabled: nothing",
        [sv("1", "stable", live("1", SHIFT_X))],
        None,
        "DriftDisabled",
        spec=PolicySpec(enabled=False),
        prior=PriorState(consecutive={"1": 5}),
        consecutive={"1": 5},
    ),
    Case(
        "prediction drift alone counts as a feature",
        [sv("1", "stable", live("1", pred={"0": 390.0, "1": 10.0}))],
        "Alert",
        "AllVersionsDrifted",
    ),
    Case(
        "prediction drift ignored without includePredictions",
        [sv("1", "stable", live("1", pred={"0": 390.0, "1": 10.0}))],
        None,
        "NoDrift",
        spec=PolicySpec(failure_limit=1, include_predictions=False),
    ),
    Case(
        "watched features only: colour drift ignored when watching x",
        [sv("1", "stable", live("1", colour={"blue": 390.0, "red": 10.0}))],
        None,
        "NoDrift",
        spec=PolicySpec(failure_limit=1, features=("x",), include_predictions=False),
    ),
    Case(
        "ks: canary rollback with p-value aggregation",
        [sv("1", "stable", live("1")), sv("2", "canary", live("2", SHIFT_X))],
        "Rollback",
        "CanaryDrifted",
        spec=PolicySpec(method="ks", threshold=0.05, failure_limit=1),
        rollback=("2", "1"),
    ),
    Case(
        "chi2: both drift, Rollback mode: alert",
        [sv("1", "stable", live("1", SHIFT_X)), sv("2", "canary", live("2", SHIFT_X))],
        "Alert",
        "AllVersionsDrifted",
        spec=PolicySpec(method="chi2", threshold=0.05, failure_limit=1),
    ),
    Case(
        "wasserstein: canary rollback",
        [sv("1", "stable", live("1")), sv("2", "canary", live("2", SHIFT_X))],
        "Rollback",
        "CanaryDrifted",
        spec=PolicySpec(method="wasserstein", threshold=0.1, failure_limit=1),
        rollback=("2", "1"),
    ),
    Case(
        "ks with threshold >= 1 is inconclusive, not drift",
        [sv("1", "stable", live("1", SHIFT_X))],
        None,
        "Inconclusive",
        spec=PolicySpec(method="ks", threshold=2.0, failure_limit=1),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_policy_table(case: Case) -> None:
    d = decide(case.served, case.spec, case.prior, NOW)
    assert (d.action, d.reason) == (case.action, case.reason), d.message
    if case.rollback:
        assert (d.rollback_from, d.rollback_to) == case.rollback
    else:
        assert d.rollback_to is None
    if case.verdicts is not None:
        assert d.verdicts == case.verdicts
    if case.consecutive is not None:
        assert d.consecutive == case.consecutive
    assert isinstance(d, Decision) and d.message


def test_failure_limit_needs_consecutive_windows() -> None:
    spec = PolicySpec(failure_limit=3)
    served = [sv("1", "stable", live("1")), sv("2", "canary", live("2", SHIFT_X))]
    prior = PriorState()
    actions = []
    for _ in range(3):
        d = decide(served, spec, prior, NOW)
        actions.append(d.action)
        prior = PriorState(consecutive=d.consecutive)
    assert actions == [None, None, "Rollback"]
    # an inconclusive window in between neither counts nor resets
    prior = PriorState(consecutive={"2": 2})
    served = [sv("1", "stable", live("1")), sv("2", "canary", live("2", SHIFT_X, rows=5))]
    d = decide(served, spec, prior, NOW)
    assert d.consecutive["2"] == 2 and d.action is None


def test_decision_scores_match_independent_psi_and_message_has_them() -> None:
    d = decide(
        [sv("2", "canary", live("2", SHIFT_X)), sv("1", "stable", live("1"))],
        PolicySpec(failure_limit=1),
        PriorState(),
        NOW,
    )
    p = np.array([100.0] * 4) / 400
    q = np.array(SHIFT_X) / sum(SHIFT_X)
    expected = float(np.sum((q - p) * np.log(q / p)))
    assert d.feature_scores["2"]["x"] == pytest.approx(expected, abs=1e-9)
    assert d.scores["2"] == pytest.approx(max(d.feature_scores["2"].values()))
    assert d.feature_scores["1"]["x"] == pytest.approx(0.0, abs=1e-12)
    assert f"{expected:.4g}" in d.message
    assert set(d.feature_scores["2"]) == {"x", "colour", PREDICTION_FEATURE}


def test_score_version_ks_and_chi2_against_scipy() -> None:
    lc = live("1", SHIFT_X)
    s = score_version(lc, PROFILE, method="chi2", threshold=0.05, min_samples=1, include_predictions=False)
    p_x = sps.chi2_contingency(np.array([[100, 100, 100, 100], SHIFT_X])).pvalue
    p_c = sps.chi2_contingency(np.array([[200, 200], [200, 200]])).pvalue
    assert s.pvalue == pytest.approx(min(1.0, 2 * min(p_x, p_c)), abs=1e-12)
    assert s.breach
    s = score_version(
        lc, PROFILE, method="ks", threshold=0.05, min_samples=1, features=["x"], include_predictions=False
    )
    d = max(abs(np.cumsum([100, 100, 100, 100]) / 400 - np.cumsum(SHIFT_X) / 400))
    assert s.features["x"] == pytest.approx(1 - min(1.0, sps.kstwo.sf(d, 200)), abs=1e-12)
    s = score_version(
        lc, PROFILE, method="js", threshold=0.1, min_samples=1, features=["colour"], include_predictions=False
    )
    assert s.score == pytest.approx(0.0, abs=1e-12)
    assert jensenshannon([1, 1], [1, 1]) == 0.0


def test_unseen_category_is_its_own_bin() -> None:
    lc = live("1", colour={"blue": 200.0, "red": 100.0, "green": 100.0})
    s = score_version(
        lc,
        PROFILE,
        method="psi",
        threshold=0.2,
        min_samples=1,
        features=["colour"],
        include_predictions=False,
    )
    p = np.array([0.5, 0.5, 1e-4])
    q = np.array([0.5, 0.25, 0.25])
    assert s.score == pytest.approx(float(np.sum((q - p) * np.log(q / p))), abs=1e-12)


def test_misaligned_bins_are_inconclusive() -> None:
    lc = LiveCounts("1", rows=500, numeric={"x": [1.0, 2.0]})
    s = score_version(lc, PROFILE, method="psi", threshold=0.2, min_samples=1, features=["x"])
    assert not s.conclusive and "live bins" in s.message
    s = score_version(lc, PROFILE, method="psi", threshold=0.2, min_samples=1, features=["nope"])
    assert not s.conclusive and "not in the profile" in s.message


def test_duration_and_spec_mapping() -> None:
    assert duration_seconds("1h30m") == 5400 and duration_seconds("250ms") == 0.25
    assert promql_duration("1.5m") == "90s" and promql_duration("250ms") == "250ms"
    assert promql_duration(300.0) == "300s"
    with pytest.raises(ValueError, match="invalid duration"):
        duration_seconds("5 minutes")
    from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec, Retrain

    spec = InferenceServiceSpec.model_validate(
        {
            "model": "iris",
            "monitoring": {
                "onDrift": "Retrain",
                "drift": {
                    "method": "js",
                    "threshold": 0.15,
                    "minSamples": 50,
                    "failureLimit": 2,
                    "features": ["x"],
                },
            },
            "rollout": {"bakeTime": "5m"},
        }
    )
    # the TrainingJob template is irrelevant here: construct the Retrain block without validating it
    spec = spec.model_copy(update={"retrain": Retrain.model_construct(min_interval="1h")})
    ps = PolicySpec.from_spec(spec)
    assert (ps.method, ps.threshold, ps.min_samples) == ("js", 0.15, 50)
    assert (ps.failure_limit, ps.features) == (2, ("x",))
    assert (ps.on_drift, ps.retrain_configured, ps.retrain_min_interval_s, ps.bake_time_s) == (
        "Retrain",
        True,
        3600.0,
        300.0,
    )
    assert (ps.interval_s, ps.bake_window_s) == (30.0, 300.0 + 2 * 30.0)
    assert PolicySpec.from_spec(InferenceServiceSpec.model_validate({"model": "iris"})).enabled is False
    assert len(CHAIN) >= 5 and not math.isnan(ps.threshold)
