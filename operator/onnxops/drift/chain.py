"""What the drift policy (``drift/policy.py``) and the live-performance policy
(``drift/performance_policy.py``) share (pure): the ``Outcome`` a check returns, running the chain of
checks, the count of consecutive breaching windows, the bake window and the guards in front of a retrain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypeVar

from onnxops.api.v1alpha1.inferenceservice import Drift, InferenceServiceSpec, Monitoring, Retrain, Rollout
from onnxops.api.v1alpha1.performance import PerformanceSpec
from onnxops.drift.window import duration_seconds

Action = Literal["Rollback", "Retrain", "Alert"]
Role = Literal["stable", "canary", "previous"]

C = TypeVar("C")

# The API's defaults (``api/``'s models, which also write them into the CRDs): what a spec leaves out, and
# the policies' own defaults, never a second hand-written number.
DRIFT_DEFAULTS = Drift()
MONITORING_DEFAULTS = Monitoring()
PERFORMANCE_DEFAULTS = PerformanceSpec()
BAKE_TIME_S = duration_seconds(Rollout().bake_time)
INTERVAL_S = duration_seconds(MONITORING_DEFAULTS.interval)
RETRAIN_MIN_INTERVAL_S = duration_seconds(str(Retrain.model_fields["min_interval"].get_default()))


def retrain_min_interval_s(spec: InferenceServiceSpec) -> float:
    """``spec.retrain.minInterval`` in seconds (without ``spec.retrain``, the API's default: it then guards
    nothing, since no retrain is configured)."""
    return duration_seconds(spec.retrain.min_interval) if spec.retrain is not None else RETRAIN_MIN_INTERVAL_S


@dataclass(frozen=True)
class Outcome:
    action: Action | None
    reason: str
    message: str
    rollback_from: str | None = None
    rollback_to: str | None = None


class RetrainPrior(Protocol):
    """What the retrain guard reads of the prior state (``PriorState``, ``PerfPrior``)."""

    @property
    def retrain_running(self) -> bool: ...

    @property
    def last_retrain_at(self) -> datetime | None: ...


class RetrainSpec(Protocol):
    """What the retrain guard reads of the policy's spec (``PolicySpec``, ``PerfPolicySpec``)."""

    @property
    def retrain_configured(self) -> bool: ...

    @property
    def retrain_min_interval_s(self) -> float: ...


def run_chain(ctx: C, chain: Sequence[Callable[[C], Outcome | None]], summary: Callable[[], str]) -> Outcome:
    """The first check's outcome that decides; ``NoDecision`` (with ``summary()``) when none does (only with
    a custom chain: the default chains' last check always decides)."""
    outcome = next((o for o in (check(ctx) for check in chain) if o is not None), None)
    return outcome if outcome is not None else Outcome(None, "NoDecision", summary())


def breach_count(before: int, conclusive: bool, breach: bool) -> int:
    """The consecutive breaching windows after this one: an inconclusive window neither counts nor resets,
    a breach counts one more, a clean window resets to 0."""
    if not conclusive:
        return before
    return before + 1 if breach else 0


def within_bake(promoted_at: datetime | None, now: datetime, bake_window_s: float) -> bool:
    """The stable version is still within its bake window (an unknown promotion time counts as within)."""
    return promoted_at is None or (now - promoted_at).total_seconds() <= bake_window_s


def retrain_or_alert(
    reason: str,
    msg: str,
    *,
    wants_retrain: bool,
    setting: str,
    spec: RetrainSpec,
    prior: RetrainPrior,
    now: datetime,
) -> Outcome:
    """``Retrain`` (``reason``) when the policy asks for it (``setting``, e.g. ``onDrift``, is Retrain) and
    ``spec.retrain`` is set, no retrain runs and its ``minInterval`` has passed; else an ``Alert`` saying
    which guard held it back."""
    if not wants_retrain:
        return Outcome("Alert", reason, msg)
    if not spec.retrain_configured:
        return Outcome(
            "Alert", "RetrainNotConfigured", msg + f"; {setting} is Retrain but spec.retrain is unset"
        )
    if prior.retrain_running:
        return Outcome("Alert", "RetrainRunning", msg + "; a retrain is already running")
    last = prior.last_retrain_at
    if last is not None and (now - last).total_seconds() < spec.retrain_min_interval_s:
        return Outcome(
            "Alert",
            "RetrainRateLimited",
            msg + f"; last retrain less than {spec.retrain_min_interval_s:g}s ago",
        )
    return Outcome("Retrain", reason, msg)
