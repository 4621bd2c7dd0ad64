"""The drift policy: pure decision from per-version scores, spec thresholds and prior state.

Like cert-manager's certificate policies, the decision is an ordered chain of small checks; each looks at
the evaluation ``Context`` and either decides (returns an ``Outcome``: action, reason, message) or passes
(returns None). The first check that decides wins. See docs/drift.md for the table. The chain runner, the
breach count, the bake window and the retrain guards are ``drift/chain.py``'s (shared with the
live-performance policy).

Versions are identified by their ``version`` label value (a string, e.g. "2").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from onnxops.drift.chain import (
    BAKE_TIME_S,
    DRIFT_DEFAULTS,
    INTERVAL_S,
    MONITORING_DEFAULTS,
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
from onnxops.drift.live import Inconclusive, LiveCounts, VersionScore, score_version
from onnxops.drift.window import duration_seconds
from onnxops.profile import Profile

if TYPE_CHECKING:
    from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec

Verdict = Literal["NoDrift", "Drift", "Inconclusive"]

CLEARLY_BETTER_RATIO = 0.5


@dataclass(frozen=True)
class PolicySpec:
    """The thresholds of ``spec.monitoring.drift`` and friends, in plain types."""

    enabled: bool = True
    method: str = DRIFT_DEFAULTS.method
    threshold: float = DRIFT_DEFAULTS.threshold
    min_samples: int = DRIFT_DEFAULTS.min_samples
    failure_limit: int = DRIFT_DEFAULTS.failure_limit
    features: tuple[str, ...] | None = None
    include_predictions: bool = DRIFT_DEFAULTS.include_predictions
    on_drift: Action = MONITORING_DEFAULTS.on_drift
    retrain_configured: bool = False
    retrain_min_interval_s: float = RETRAIN_MIN_INTERVAL_S
    bake_time_s: float = BAKE_TIME_S
    interval_s: float = INTERVAL_S  # monitoring.interval: one evaluation window

    @property
    def bake_window_s(self) -> float:
        """How long after a promotion a drift of the new version may still roll back to the previous one:
        the bake time, extended by the time a breach needs to be confirmed (failureLimit x interval) —
        the reconciler keeps the previous version warm that long while a breach is open."""
        return self.bake_time_s + self.failure_limit * self.interval_s

    @classmethod
    def from_spec(cls, spec: InferenceServiceSpec) -> PolicySpec:
        """From the typed spec; what it leaves out is the API's default (``api/``'s models)."""
        mon = spec.monitoring or MONITORING_DEFAULTS
        drift = mon.drift or DRIFT_DEFAULTS
        return cls(
            enabled=spec.monitoring is not None and mon.drift is not None and drift.enabled,
            method=drift.method,
            threshold=drift.threshold,
            min_samples=drift.min_samples,
            failure_limit=drift.failure_limit,
            features=tuple(drift.features) if drift.features else None,
            include_predictions=drift.include_predictions,
            on_drift=mon.on_drift,
            retrain_configured=spec.retrain is not None,
            retrain_min_interval_s=retrain_min_interval_s(spec),
            bake_time_s=duration_seconds(spec.rollout.bake_time) if spec.rollout else BAKE_TIME_S,
            interval_s=duration_seconds(mon.interval),
        )


@dataclass(frozen=True)
class ServedVersion:
    version: str
    role: Role
    live: LiveCounts | Inconclusive
    profile: Profile | None = None


@dataclass(frozen=True)
class PriorState:
    consecutive: Mapping[str, int] = field(default_factory=dict)  # consecutive breaching windows
    promoted_at: datetime | None = None  # when the stable version was promoted
    retrain_running: bool = False
    last_retrain_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    action: Action | None
    reason: str
    message: str
    verdicts: dict[str, Verdict]
    scores: dict[str, float]  # aggregated score per conclusive version
    feature_scores: dict[str, dict[str, float]]
    samples: dict[str, float]
    consecutive: dict[str, int]
    breaches: dict[str, bool]  # this window breached the threshold
    rollback_from: str | None = None
    rollback_to: str | None = None


@dataclass(frozen=True)
class Context:
    spec: PolicySpec
    prior: PriorState
    now: datetime
    served: dict[str, ServedVersion]
    scored: dict[str, VersionScore]
    verdicts: dict[str, Verdict]
    consecutive: dict[str, int]

    def drifting(self) -> list[str]:
        return [v for v, verdict in self.verdicts.items() if verdict == "Drift"]

    def by_role(self, role: Role) -> str | None:
        return next((v for v, s in self.served.items() if s.role == role), None)

    def summary(self) -> str:
        parts = []
        for v, s in self.scored.items():
            state = f"breach {self.consecutive[v]}/{self.spec.failure_limit}" if s.breach else "ok"
            text = f"{s.message}; {state}" if s.conclusive else f"inconclusive: {s.message}"
            parts.append(f"v{v} ({self.served[v].role}, {s.samples:g} rows): {text}")
        return "; ".join(parts)


Check = Callable[[Context], Outcome | None]


def _clearly_better(ctx: Context, better: str, worse: str) -> bool:
    """``better`` is clearly better than ``worse`` on the same traffic: conclusive, under the threshold,
    and its severity (score relative to the threshold) at most half of ``worse``'s."""
    b, w = ctx.scored[better], ctx.scored[worse]
    if not (b.conclusive and w.conclusive) or b.severity is None or w.severity is None:
        return False
    return b.severity < 1 and b.severity <= CLEARLY_BETTER_RATIO * w.severity


def check_enabled(ctx: Context) -> Outcome | None:
    if not ctx.spec.enabled:
        return Outcome(None, "DriftDisabled", "drift monitoring is disabled")
    return None


def check_conclusive(ctx: Context) -> Outcome | None:
    if not any(s.conclusive for s in ctx.scored.values()):
        return Outcome(None, "Inconclusive", ctx.summary() or "no served version")
    return None


def check_any_drift(ctx: Context) -> Outcome | None:
    if ctx.drifting():
        return None
    pending = any(s.breach for s in ctx.scored.values())
    return Outcome(None, "BreachPending" if pending else "NoDrift", ctx.summary())


def check_alert_only(ctx: Context) -> Outcome | None:
    if ctx.spec.on_drift == "Alert":
        return Outcome("Alert", "DriftDetected", f"drift in v{', v'.join(ctx.drifting())}: {ctx.summary()}")
    return None


def check_canary_rollback(ctx: Context) -> Outcome | None:
    canary, stable = ctx.by_role("canary"), ctx.by_role("stable")
    if canary and stable and ctx.verdicts[canary] == "Drift" and _clearly_better(ctx, stable, canary):
        msg = f"canary v{canary} drifted and v{stable} is clearly better: {ctx.summary()}"
        return Outcome("Rollback", "CanaryDrifted", msg, rollback_from=canary, rollback_to=stable)
    return None


def check_bake_rollback(ctx: Context) -> Outcome | None:
    stable, previous = ctx.by_role("stable"), ctx.by_role("previous")
    if not (stable and previous and ctx.verdicts[stable] == "Drift"):
        return None
    if not within_bake(ctx.prior.promoted_at, ctx.now, ctx.spec.bake_window_s):
        return None
    if _clearly_better(ctx, previous, stable):
        msg = f"v{stable} drifted within its bake time and v{previous} is clearly better: {ctx.summary()}"
        return Outcome("Rollback", "PromotionDrifted", msg, rollback_from=stable, rollback_to=previous)
    return None


def check_all_drift(ctx: Context) -> Outcome | None:
    if len(ctx.drifting()) != len(ctx.served):
        return None
    return retrain_or_alert(
        "AllVersionsDrifted",
        f"every served version drifts (the live data changed): {ctx.summary()}",
        wants_retrain=ctx.spec.on_drift == "Retrain",
        setting="onDrift",
        spec=ctx.spec,
        prior=ctx.prior,
        now=ctx.now,
    )


def check_fallback_alert(ctx: Context) -> Outcome | None:
    return Outcome(
        "Alert",
        "DriftDetected",
        f"drift in v{', v'.join(ctx.drifting())}, no clearly better version to roll back to: {ctx.summary()}",
    )


CHAIN: tuple[Check, ...] = (
    check_enabled,
    check_conclusive,
    check_any_drift,
    check_alert_only,
    check_canary_rollback,
    check_bake_rollback,
    check_all_drift,
    check_fallback_alert,
)


def _score(sv: ServedVersion, spec: PolicySpec) -> VersionScore:
    if isinstance(sv.live, Inconclusive):
        return VersionScore(sv.version, 0.0, False, message=f"{sv.live.reason}: {sv.live.message}")
    if sv.profile is None:
        return VersionScore(sv.version, sv.live.rows, False, message="no baseline profile")
    return score_version(
        sv.live,
        sv.profile,
        method=spec.method,
        threshold=spec.threshold,
        min_samples=spec.min_samples,
        features=spec.features,
        include_predictions=spec.include_predictions,
    )


def decide(
    served: Sequence[ServedVersion],
    spec: PolicySpec,
    prior: PriorState,
    now: datetime,
    chain: Sequence[Check] = CHAIN,
) -> Decision:
    """Score every served version, update the consecutive-breach counts, run the chain of checks."""
    by_version = {s.version: s for s in served}
    scored: dict[str, VersionScore] = {}
    consecutive: dict[str, int] = {}
    verdicts: dict[str, Verdict] = {}
    for v, sv in by_version.items():
        s = _score(sv, spec) if spec.enabled else VersionScore(v, 0.0, False, message="disabled")
        scored[v] = s
        consecutive[v] = breach_count(int(prior.consecutive.get(v, 0)), s.conclusive, s.breach)
        if not s.conclusive:
            verdicts[v] = "Inconclusive"
        else:
            verdicts[v] = "Drift" if consecutive[v] >= spec.failure_limit else "NoDrift"
    ctx = Context(spec, prior, now, by_version, scored, verdicts, consecutive)
    outcome = run_chain(ctx, chain, ctx.summary)
    return Decision(
        action=outcome.action,
        reason=outcome.reason,
        message=outcome.message,
        verdicts=verdicts,
        scores={v: s.score for v, s in scored.items() if s.score is not None},
        feature_scores={v: dict(s.features) for v, s in scored.items() if s.conclusive},
        samples={v: s.samples for v, s in scored.items()},
        consecutive=consecutive,
        breaches={v: s.breach for v, s in scored.items()},
        rollback_from=outcome.rollback_from,
        rollback_to=outcome.rollback_to,
    )
