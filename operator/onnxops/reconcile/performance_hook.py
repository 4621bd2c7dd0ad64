"""Where the live-performance policy plugs into the InferenceService reconciler (pure).

:func:`apply_performance` takes a performance decision (``onnxops.drift.performance_policy.PerfDecision``,
duck-typed) and returns the plan: ``status.performance`` with the numbers behind it, the
``PerformanceDegraded`` condition, a status-only rollback (the same ``abort`` as a drift rollback: the
version is rejected for ``latest`` until spec changes) or a retrain TrainingJob from ``spec.retrain``
(recorded in ``status.retrain`` like a drift retrain, so ``minInterval`` and "one at a time" hold across
both causes). The acting itself is :mod:`onnxops.reconcile.remediation`'s, shared with the drift hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.performance import PerformanceSummary, VersionPerformance
from onnxops.api.v1alpha1.remediation import MonitoringStatus
from onnxops.api.v1alpha1.servicerecord import ServiceRecord
from onnxops.settings import Settings

from .remediation import DriftPlan, finish, rollback, set_flag, start_retrain, unrecorded_retrain
from .rollout import Outcome, RolloutState

PERFORMANCE_DEGRADED = "PerformanceDegraded"  # condition type


class PerfDecisionLike(Protocol):
    @property
    def action(self) -> str | None: ...

    @property
    def reason(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def metric(self) -> str: ...

    @property
    def verdicts(self) -> Mapping[str, str]: ...

    @property
    def values(self) -> Mapping[str, float]: ...

    @property
    def labels(self) -> Mapping[str, int]: ...

    @property
    def thresholds(self) -> Mapping[str, float]: ...

    @property
    def consecutive(self) -> Mapping[str, int]: ...

    @property
    def rollback_from(self) -> str | None: ...

    @property
    def rollback_to(self) -> str | None: ...


def _overall(decision: PerfDecisionLike) -> str:
    """The window's verdict over the served versions."""
    verdicts = set(decision.verdicts.values())
    if decision.action == "Rollback":
        return "Regressed"
    if decision.reason == "ConceptDrift":
        return "ConceptDrift"
    if "Degraded" in verdicts:
        return "Degraded"
    return "Healthy" if "Healthy" in verdicts else "Inconclusive"


def performance_summary(
    decision: PerfDecisionLike,
    stable: int | None,
    now: datetime,
    unresolved: float | None = None,
    source: str | None = None,
    job: str | None = None,
) -> PerformanceSummary:
    """status.performance: the stable version's live metric (printer column), every version's numbers."""
    per = {
        v: VersionPerformance(
            verdict=verdict,
            labels=int(decision.labels.get(v, 0)),
            value=float(decision.values[v]) if v in decision.values else None,
            reference=float(decision.thresholds[v]) if v in decision.thresholds else None,
        )
        for v, verdict in decision.verdicts.items()
    }
    value = decision.values.get(str(stable)) if stable is not None else None
    return PerformanceSummary(
        metric=decision.metric,
        verdict=_overall(decision),
        action=decision.action or "None",
        versions=per or None,
        breaches={str(k): int(v) for k, v in decision.consecutive.items()} or None,
        consecutive_breaches=int(max(decision.consecutive.values(), default=0)),
        evaluated_at=cond.now_rfc3339(now),
        message=decision.message[:1024],
        version=stable,
        value=float(value) if value is not None else None,
        unresolved=int(unresolved) if unresolved is not None else None,
        source=source,
        job=job,
    )


def prior_consecutive(status: MonitoringStatus | Mapping[str, Any] | None) -> dict[str, int]:
    """The consecutive degraded windows per version, as stored in ``status.performance.breaches``."""
    return MonitoringStatus.of(status).performance_breaches()


def apply_performance(
    isvc: ParsedInferenceService | Mapping[str, Any],
    mvs: list[dict[str, Any]],
    observed: list[dict[str, Any]],
    decision: PerfDecisionLike,
    *,
    settings: Settings,
    now: datetime,
    retrain_children: list[dict[str, Any]] | None = None,
    unresolved: float | None = None,
    source: str | None = None,
    job: str | None = None,
) -> DriftPlan:
    """The plan of a performance ``decision`` for ``isvc`` (parsed at the handler boundary; a dict is
    parsed here)."""
    isvc = ParsedInferenceService.of(isvc)
    old = dict(isvc.status)
    gen = isvc.meta.generation
    state = RolloutState.from_status(old)
    mon = MonitoringStatus.from_status(old)  # status.performance, .retrain as stored
    out = Outcome(state)
    extra: dict[str, Any] = {
        "performance": performance_summary(decision, state.stable, now, unresolved, source, job).to_dict()
    }
    values = {f"v{k}": float(v) for k, v in decision.values.items()}
    retrain = None
    children = retrain_children or []
    if decision.action == "Rollback":
        rollback(
            out,
            state,
            decision.rollback_from,
            decision.rollback_to,
            reason=decision.reason,
            message=decision.message,
            scores=values,
            now=now,
            generation=gen,
        )
    elif decision.action == "Retrain" and unrecorded_retrain(mon, children) is None:
        retrain = start_retrain(
            isvc,
            mon,
            out,
            extra,
            stable=state.stable,
            reason=decision.reason,
            scores=values,
            cause=f"live {decision.metric} degraded for every version ({decision.message})",
            now=now,
            children_tjs=children,
        )
    conds, new_alert = set_flag(
        ServiceRecord.from_status(old).conditions_as_stored(),
        PERFORMANCE_DEGRADED,
        decision.action,
        decision.reason,
        decision.message,
        generation=gen,
        now=now,
    )
    if new_alert:
        out.events.append(("Warning", decision.reason, decision.message[:1024]))
    return finish(isvc, mvs, observed, out, conds, extra, retrain, settings=settings, now=now)
