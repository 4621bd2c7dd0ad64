"""A field left out of a spec behaves as the API's default for it (the pydantic models in api/, which also
write the defaults into the CRDs): each runtime default is compared with the model's own default, through
the code that applies it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from _operator_fixtures import isvc, mv

from onnxops.api.v1alpha1.inferenceservice import (
    Autoscaling,
    Drift,
    InferenceServiceSpec,
    Monitoring,
    ParsedInferenceService,
    Retrain,
    Rollout,
)
from onnxops.api.v1alpha1.logging import PayloadLogging
from onnxops.api.v1alpha1.performance import PerformanceSpec
from onnxops.builders import label_eval
from onnxops.controller.drift import drift_due
from onnxops.controller.performance import performance_due
from onnxops.drift.performance import PerfCounts
from onnxops.drift.performance_policy import PerfPolicySpec, PerfPrior, ServedPerf, decide_performance
from onnxops.drift.policy import Decision
from onnxops.reconcile import defaults
from onnxops.reconcile.bake import investigation_seconds
from onnxops.reconcile.capture_health import check_interval
from onnxops.reconcile.drift_hook import apply_decision
from onnxops.reconcile.durations import parse_duration
from onnxops.reconcile.inferenceservice import _desired_children, total_replicas
from onnxops.reconcile.performance_hook import apply_performance
from onnxops.reconcile.rollout import RolloutConfig, RolloutState
from onnxops.reconcile.versions import by_version
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()
TEMPLATE = {
    "model": "iris",
    "dataset": {"uri": "sklearn://iris"},
    "estimator": {"className": "LogisticRegression"},
}


def api(model: type, field: str):
    """The API's default of ``model.field`` (as written into the CRD)."""
    return model.model_fields[field].get_default(call_default_factory=True)


def test_rollout_bake_time_default():
    assert RolloutConfig.from_spec({"rollout": {}}).bake_seconds == parse_duration(api(Rollout, "bake_time"))
    assert RolloutConfig.from_spec({}).bake_seconds == parse_duration(api(Rollout, "bake_time"))
    assert RolloutConfig().bake_seconds == parse_duration(api(Rollout, "bake_time"))


def test_rollout_progress_deadline_default():
    want = parse_duration(api(Rollout, "progress_deadline"))
    assert RolloutConfig.from_spec({"rollout": {}}).progress_deadline == want
    assert RolloutConfig().progress_deadline == want


def test_rollout_strategy_and_steps_default():
    cfg = RolloutConfig.from_spec({"rollout": {}})
    assert cfg.strategy == api(Rollout, "strategy") == RolloutConfig().strategy
    want = tuple((s.weight, parse_duration(s.pause)) for s in api(Rollout, "steps"))
    assert cfg.steps == want == RolloutConfig().steps


def test_monitoring_interval_default_paces_drift_and_performance():
    interval = parse_duration(api(Monitoring, "interval"))
    ten_s_ago = (T0 - timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    drift = isvc(monitoring={"drift": {"enabled": True}}, status={"drift": {"evaluatedAt": ten_s_ago}})
    assert drift_due(drift, T0) == interval - 10
    perf = isvc(
        monitoring={"performance": {"enabled": True}}, status={"performance": {"evaluatedAt": ten_s_ago}}
    )
    assert performance_due(perf, T0) == interval - 10


def test_drift_failure_limit_and_interval_defaults_extend_the_bake():
    want = api(Drift, "failure_limit") * parse_duration(api(Monitoring, "interval"))
    assert investigation_seconds({"monitoring": {"drift": {"enabled": True}}}) == want


def test_drift_window_default():
    # controller/drift.py passes it to the live-count query when spec.monitoring.drift.window is absent
    assert api(Drift, "window") == defaults.DRIFT_WINDOW


def test_performance_window_default():
    # controller/performance.py (live labels) and the label-file evaluation Job use it when it is absent
    assert api(PerformanceSpec, "window") == defaults.PERFORMANCE_WINDOW
    files = {"uri": "pvc://warehouse/labels/", "target": "y"}
    obj = isvc(logging={}, monitoring={"performance": {"source": "LabelFiles", "labelFiles": files}})
    job = label_eval.label_evaluation_job(ParsedInferenceService.parse(obj), S, T0, 30.0)
    [c] = job["spec"]["template"]["spec"]["containers"]
    assert c["args"][c["args"].index("--window") + 1] == api(PerformanceSpec, "window")


def test_capture_flush_interval_default():
    flush = parse_duration(api(PayloadLogging, "flush_interval"))
    assert check_interval(isvc(logging={})) == min(60.0, max(5.0, flush))


def test_replicas_defaults():
    assert total_replicas({}) == api(InferenceServiceSpec, "replicas")
    assert total_replicas({"autoscaling": {"maxReplicas": 5}}) == api(Autoscaling, "min_replicas")


def test_autoscaling_defaults_reach_the_hpa():
    obj = isvc(autoscaling={"minReplicas": 2})  # (an empty map is no autoscaling)
    children, _ = _desired_children(obj, RolloutState(stable=1), by_version([mv(1)], "iris"), S, {})
    (hpa,) = [c for c in children if c["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["maxReplicas"] == api(Autoscaling, "max_replicas")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["target"]["averageUtilization"] == api(Autoscaling, "target_cpu_utilization")


def test_spec_version_default():
    assert api(InferenceServiceSpec, "version") == defaults.SPEC_VERSION


def _drift_retrain(obj: dict, now: datetime):
    decision = Decision(
        action="Retrain",
        reason="AllVersionsDrifted",
        message="psi 0.7 > 0.2",
        verdicts={"1": "Drift"},
        scores={"1": 0.7},
        feature_scores={"1": {"f0": 0.7}},
        samples={"1": 500.0},
        consecutive={"1": 3},
        breaches={"1": True},
    )
    return apply_decision(obj, [mv(1)], [], decision, settings=S, now=now).retrain


def _performance_retrain(obj: dict, now: datetime):
    spec = PerfPolicySpec(failure_limit=1, on_concept_drift="Retrain", retrain_configured=True)
    counts = PerfCounts(confusion={("0", "0"): 120.0, ("0", "1"): 80.0}, labels=200.0)
    d = decide_performance(
        [ServedPerf("1", "stable", counts, {"accuracy": 0.95})], spec, PerfPrior(), now, "NoDrift"
    )
    assert d.action == "Retrain"
    return apply_performance(obj, [mv(1)], [], d, settings=S, now=now).retrain


def test_retrain_min_interval_default_rate_limits_drift_and_concept_drift_retrains():
    min_interval = timedelta(seconds=parse_duration(api(Retrain, "min_interval")))
    last = {"trainingJob": "iris-retrain-1", "at": "2026-01-01T12:00:00Z", "count": 1}
    obj = isvc(status={"stableVersion": 1, "retrain": last}, retrain={"trainingJob": TEMPLATE})
    for retrain in (_drift_retrain, _performance_retrain):
        assert retrain(obj, T0 + min_interval - timedelta(seconds=1)) is None
        again = retrain(obj, T0 + min_interval)
        assert again is not None and again["metadata"]["name"] == "iris-retrain-2"


def test_drift_and_performance_policies_default_to_the_api():
    from onnxops.drift.policy import PolicySpec

    bare = InferenceServiceSpec(
        model="iris", monitoring=Monitoring(drift=Drift(), performance=PerformanceSpec())
    )
    interval = parse_duration(api(Monitoring, "interval"))
    bake = parse_duration(api(Rollout, "bake_time"))
    min_interval = parse_duration(api(Retrain, "min_interval"))
    for p in (PolicySpec(), PolicySpec.from_spec(bare)):
        drift = (p.method, p.threshold, p.min_samples, p.failure_limit, p.include_predictions)
        assert drift == tuple(
            api(Drift, f)
            for f in ("method", "threshold", "min_samples", "failure_limit", "include_predictions")
        )
        assert p.on_drift == api(Monitoring, "on_drift")
        assert (p.retrain_min_interval_s, p.bake_time_s, p.interval_s) == (min_interval, bake, interval)
    for q in (PerfPolicySpec(), PerfPolicySpec.from_spec(bare)):
        perf = (q.metric, q.max_regression, q.min_labels, q.failure_limit, q.on_concept_drift)
        assert perf == tuple(
            api(PerformanceSpec, f)
            for f in ("metric", "max_regression", "min_labels", "failure_limit", "on_concept_drift")
        )
        assert q.retrain_min_interval_s == min_interval
    assert (
        PerfPolicySpec.from_spec(bare).bake_window_s
        == bake + api(PerformanceSpec, "failure_limit") * interval
    )
