"""The live-performance policy: pure decision from per-version labelled-prediction counts, the spec and the
prior state. Same style as the drift policy (``drift/policy.py``): an ordered chain of small checks on an
evaluation ``Context``; the first that returns an ``Outcome`` decides. Table in docs/feedback.md. The
chain, the breach count, the bake window and the retrain guards are ``drift/chain.py``'s, shared with it.

- A version with fewer than ``minLabels`` labelled predictions in the window (or no counts at all) is
  *Inconclusive*: it neither counts nor resets its breach count, and it can never cause an action.
- A version is *degraded* in a window when its live metric is worse than its threshold: ``min`` (accuracy,
  f1) or ``max`` (mae, rmse), else its own held-out metric (ModelVersion ``spec.metrics``) worsened by more
  than ``maxDegradation`` (default 10 %). ``failureLimit`` consecutive degraded windows make it *Degraded*.
- A canary (or a stable version still within its bake window after promotion) whose live metric is worse
  than the stable (previous) version's on the same window by more than ``maxRegression`` is rolled back
  (status-only, like a drift rollback): the two versions answered the same traffic in the same window.
- Every served version Degraded while the inputs do not drift = concept drift: ``Retrain`` (guarded like a
  drift retrain: configured, not running, ``minInterval``) or ``Alert``. With data drift the drift policy
  acts instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from onnxops.drift.chain import (
    BAKE_TIME_S,
    PERFORMANCE_DEFAULTS,
    RETRAIN_MIN_INTERVAL_S,
    breach_count,
    retrain_min_interval_s,
    retrain_or_alert,
    run_chain,
    within_bake,
)
from onnxops.drift.chain import Action as Action
from onnxops.drift.chain import Outcome as Outcome
from onnxops.drift.chain import Role as Role
from onnxops.drift.live import Inconclusive
from onnxops.drift.performance import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    PerfCounts,
    PerfValues,
    is_worse,
    metric_value,
)
from onnxops.drift.window import duration_seconds

if TYPE_CHECKING:
    from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec

Verdict = Literal["Healthy", "Degraded", "Inconclusive"]
DataDrift = Literal["NoDrift", "Drift", "Unknown"]
DEFAULT_MAX_DEGRADATION = 0.1
HELD_OUT_KEY = {"accuracy": "accuracy", "f1": "f1_macro", "mae": "mae", "rmse": "rmse"}
FIELD = "spec.monitoring.performance"


@dataclass(frozen=True)
class PerfPolicySpec:
    enabled: bool = True
    metric: str = PERFORMANCE_DEFAULTS.metric
    min: float | None = None
    max: float | None = None
    max_degradation: float | None = None
    max_regression: float = PERFORMANCE_DEFAULTS.max_regression
    min_labels: int = PERFORMANCE_DEFAULTS.min_labels
    failure_limit: int = PERFORMANCE_DEFAULTS.failure_limit
    on_concept_drift: Literal["Retrain", "Alert"] = PERFORMANCE_DEFAULTS.on_concept_drift
    retrain_configured: bool = False
    retrain_min_interval_s: float = RETRAIN_MIN_INTERVAL_S
    bake_window_s: float = BAKE_TIME_S

    @classmethod
    def from_spec(cls, spec: InferenceServiceSpec) -> PerfPolicySpec:
        """From the typed spec; what it leaves out is the API's default (``api/``'s models)."""
        mon = spec.monitoring
        p = mon.performance if mon else None
        if mon is None or p is None:
            return cls(enabled=False)
        bake = duration_seconds(spec.rollout.bake_time) if spec.rollout else BAKE_TIME_S
        interval = duration_seconds(mon.interval)
        return cls(
            enabled=p.enabled,
            metric=p.metric,
            min=p.min,
            max=p.max,
            max_degradation=p.max_degradation,
            max_regression=p.max_regression,
            min_labels=p.min_labels,
            failure_limit=p.failure_limit,
            on_concept_drift=p.on_concept_drift,
            retrain_configured=spec.retrain is not None,
            retrain_min_interval_s=retrain_min_interval_s(spec),
            bake_window_s=bake + p.failure_limit * interval,
        )


@dataclass(frozen=True)
class ServedPerf:
    version: str
    role: Role
    counts: PerfCounts | PerfValues | Inconclusive
    held_out: Mapping[str, float] = field(default_factory=dict)  # ModelVersion spec.metrics
    task: str | None = None  # ModelVersion spec.signature.task


@dataclass(frozen=True)
class PerfPrior:
    consecutive: Mapping[str, int] = field(default_factory=dict)
    promoted_at: datetime | None = None
    retrain_running: bool = False
    last_retrain_at: datetime | None = None


@dataclass(frozen=True)
class VersionEval:
    value: float | None
    labels: int
    threshold: float | None
    degraded: bool  # this window
    conclusive: bool
    note: str


@dataclass(frozen=True)
class PerfDecision:
    action: Action | None
    reason: str
    message: str
    metric: str
    verdicts: dict[str, Verdict]
    values: dict[str, float]  # live metric per conclusive version
    labels: dict[str, int]
    thresholds: dict[str, float]
    consecutive: dict[str, int]
    rollback_from: str | None = None
    rollback_to: str | None = None

    # the names the drift hook reads (DecisionLike), so a rollback/retrain goes the same way
    @property
    def scores(self) -> dict[str, float]:
        return self.values


@dataclass(frozen=True)
class Context:
    spec: PerfPolicySpec
    prior: PerfPrior
    now: datetime
    data_drift: DataDrift
    served: dict[str, ServedPerf]
    evals: dict[str, VersionEval]
    verdicts: dict[str, Verdict]
    consecutive: dict[str, int]

    def by_role(self, role: Role) -> str | None:
        return next((v for v, s in self.served.items() if s.role == role), None)

    def summary(self) -> str:
        m = self.spec.metric
        parts = []
        for v, e in self.evals.items():
            if not e.conclusive:
                parts.append(f"v{v} ({self.served[v].role}, {e.labels} labels): inconclusive: {e.note}")
                continue
            op = " >= " if HIGHER_IS_BETTER[m] else " <= "
            thr = "" if e.threshold is None else op + f"{e.threshold:.4g}"
            state = f"breach {self.consecutive[v]}/{self.spec.failure_limit}" if e.degraded else "ok"
            parts.append(
                f"v{v} ({self.served[v].role}, {e.labels} labels): {m} {e.value:.4g} (want{thr}); {state}"
            )
        return "; ".join(parts)


Check = Callable[[Context], Outcome | None]


def threshold_of(spec: PerfPolicySpec, held_out: Mapping[str, float]) -> tuple[float | None, str]:
    """The value a version is held to, or (None, why not)."""
    m = spec.metric
    if HIGHER_IS_BETTER[m] and spec.min is not None:
        return spec.min, "min"
    if not HIGHER_IS_BETTER[m] and spec.max is not None:
        return spec.max, "max"
    ref = held_out.get(HELD_OUT_KEY[m])
    if ref is None:
        return None, (
            f"no held-out {HELD_OUT_KEY[m]} on its ModelVersion (spec.metrics) for maxDegradation; "
            f"set {FIELD}.{'min' if HIGHER_IS_BETTER[m] else 'max'}"
        )
    d = spec.max_degradation if spec.max_degradation is not None else DEFAULT_MAX_DEGRADATION
    return (ref * (1 - d) if HIGHER_IS_BETTER[m] else ref * (1 + d)), f"held-out {ref:.4g}"


def evaluate_version(sv: ServedPerf, spec: PerfPolicySpec) -> VersionEval:
    if isinstance(sv.counts, Inconclusive):
        return VersionEval(None, 0, None, False, False, f"{sv.counts.reason}: {sv.counts.message}")
    n = sv.counts.n
    value = metric_value(spec.metric, sv.counts)
    if n < spec.min_labels:
        return VersionEval(value, n, None, False, False, f"{n} < minLabels {spec.min_labels}")
    if value is None:
        return VersionEval(
            None, n, None, False, False, f"the counts give no {spec.metric} (labels of the other task)"
        )
    thr, note = threshold_of(spec, sv.held_out)
    if thr is None:
        return VersionEval(value, n, None, False, False, note)
    return VersionEval(value, n, thr, is_worse(spec.metric, value, thr), True, note)


def _worse_than(ctx: Context, worse: str, better: str) -> float | None:
    """How much worse ``worse`` is than ``better`` (in the metric's unit) when both are conclusive and the
    gap exceeds max_regression; else None."""
    a, b = ctx.evals[worse], ctx.evals[better]
    if not (a.conclusive and b.conclusive) or a.value is None or b.value is None:
        return None
    m = ctx.spec.metric
    if is_worse(m, a.value, b.value, ctx.spec.max_regression):
        return abs(a.value - b.value)
    return None


def check_enabled(ctx: Context) -> Outcome | None:
    if not ctx.spec.enabled:
        return Outcome(None, "PerformanceDisabled", "performance monitoring is disabled")
    return None


def check_metric_fits(ctx: Context) -> Outcome | None:
    m = ctx.spec.metric
    for v, s in ctx.served.items():
        allowed = (
            CLASSIFICATION_METRICS
            if s.task == "classification"
            else (REGRESSION_METRICS if s.task == "regression" else None)
        )
        if allowed is not None and m not in allowed:
            return Outcome(
                None,
                "MetricNotApplicable",
                f"{FIELD}.metric: {m} does not apply to v{v}, a {s.task} model; use {' or '.join(allowed)}",
            )
    return None


def check_canary_regressed(ctx: Context) -> Outcome | None:
    canary, stable = ctx.by_role("canary"), ctx.by_role("stable")
    if not (canary and stable):
        return None
    gap = _worse_than(ctx, canary, stable)
    if gap is None:
        return None
    return Outcome(
        "Rollback",
        "CanaryUnderperformed",
        f"canary v{canary} is worse than v{stable} on the same labelled traffic by {gap:.4g} "
        f"{ctx.spec.metric} (maxRegression {ctx.spec.max_regression:g}): {ctx.summary()}",
        rollback_from=canary,
        rollback_to=stable,
    )


def check_promotion_regressed(ctx: Context) -> Outcome | None:
    stable, previous = ctx.by_role("stable"), ctx.by_role("previous")
    if not (stable and previous):
        return None
    if not within_bake(ctx.prior.promoted_at, ctx.now, ctx.spec.bake_window_s):
        return None
    gap = _worse_than(ctx, stable, previous)
    if gap is None:
        return None
    return Outcome(
        "Rollback",
        "PromotionUnderperformed",
        f"v{stable}, just promoted, is worse than v{previous} on the same labelled traffic by "
        f"{gap:.4g} {ctx.spec.metric} (maxRegression {ctx.spec.max_regression:g}): "
        f"{ctx.summary()}",
        rollback_from=stable,
        rollback_to=previous,
    )


def check_conclusive(ctx: Context) -> Outcome | None:
    if not any(e.conclusive for e in ctx.evals.values()):
        return Outcome(None, "Inconclusive", ctx.summary() or "no served version")
    return None


def check_any_degraded(ctx: Context) -> Outcome | None:
    if any(v == "Degraded" for v in ctx.verdicts.values()):
        return None
    pending = any(e.degraded for e in ctx.evals.values())
    return Outcome(None, "BreachPending" if pending else "Healthy", ctx.summary())


def check_concept_drift(ctx: Context) -> Outcome | None:
    if not all(v == "Degraded" for v in ctx.verdicts.values()):
        return None
    if ctx.data_drift == "Drift":
        return Outcome(
            "Alert",
            "DegradedWithDataDrift",
            f"every served version degraded and the inputs drift (the drift policy acts on the "
            f"data drift): {ctx.summary()}",
        )
    return retrain_or_alert(
        "ConceptDrift",
        f"every served version degraded while the inputs do not drift (concept drift): {ctx.summary()}",
        wants_retrain=ctx.spec.on_concept_drift == "Retrain",
        setting="onConceptDrift",
        spec=ctx.spec,
        prior=ctx.prior,
        now=ctx.now,
    )


def check_fallback_alert(ctx: Context) -> Outcome | None:
    bad = [v for v, verdict in ctx.verdicts.items() if verdict == "Degraded"]
    return Outcome("Alert", "PerformanceDegraded", f"v{', v'.join(bad)} degraded: {ctx.summary()}")


CHAIN: tuple[Check, ...] = (
    check_enabled,
    check_metric_fits,
    check_canary_regressed,
    check_promotion_regressed,
    check_conclusive,
    check_any_degraded,
    check_concept_drift,
    check_fallback_alert,
)


def decide_performance(
    served: Sequence[ServedPerf],
    spec: PerfPolicySpec,
    prior: PerfPrior,
    now: datetime,
    data_drift: DataDrift = "Unknown",
    chain: Sequence[Check] = CHAIN,
) -> PerfDecision:
    by_version = {s.version: s for s in served}
    evals: dict[str, VersionEval] = {}
    consecutive: dict[str, int] = {}
    verdicts: dict[str, Verdict] = {}
    for v, sv in by_version.items():
        off = VersionEval(None, 0, None, False, False, "disabled")
        e = evaluate_version(sv, spec) if spec.enabled else off
        evals[v] = e
        consecutive[v] = breach_count(int(prior.consecutive.get(v, 0)), e.conclusive, e.degraded)
        if not e.conclusive:
            verdicts[v] = "Inconclusive"
        else:
            verdicts[v] = "Degraded" if consecutive[v] >= spec.failure_limit else "Healthy"
    ctx = Context(spec, prior, now, data_drift, by_version, evals, verdicts, consecutive)
    outcome = run_chain(ctx, chain, ctx.summary)
    return PerfDecision(
        action=outcome.action,
        reason=outcome.reason,
        message=outcome.message,
        metric=spec.metric,
        verdicts=verdicts,
        values={v: e.value for v, e in evals.items() if e.value is not None},
        labels={v: e.labels for v, e in evals.items()},
        thresholds={v: e.threshold for v, e in evals.items() if e.threshold is not None},
        consecutive=consecutive,
        rollback_from=outcome.rollback_from,
        rollback_to=outcome.rollback_to,
    )
