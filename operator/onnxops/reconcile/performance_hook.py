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


def performance_summary(
    decision: PerfDecisionLike,
    stable: int | None,
    now: datetime,
    unresolved: float | None = None,
    source: str | None = None,
    job: str | None = None,
) -> dict[str, Any]:
    """status.performance: the stable version's live metric (printer column), every version's numbers."""
    per: dict[str, Any] = {}
    for v, verdict in decision.verdicts.items():
        e: dict[str, Any] = {"verdict": verdict, "labels": int(decision.labels.get(v, 0))}
        if v in decision.values:
            e["value"] = float(decision.values[v])
        if v in decision.thresholds:
            e["reference"] = float(decision.thresholds[v])
        per[v] = e
    verdicts = set(decision.verdicts.values())
    if decision.action == "Rollback":
        overall = "Regressed"
    elif decision.reason == "ConceptDrift":
        overall = "ConceptDrift"
    elif "Degraded" in verdicts:
        overall = "Degraded"
    elif "Healthy" in verdicts:
        overall = "Healthy"
    else:
        overall = "Inconclusive"
    out: dict[str, Any] = {
        "metric": decision.metric,
        "verdict": overall,
        "action": decision.action or "None",
        "versions": per or None,
        "breaches": {str(k): int(v) for k, v in decision.consecutive.items()} or None,
        "consecutiveBreaches": int(max(decision.consecutive.values(), default=0)),
        "evaluatedAt": cond.now_rfc3339(now),
        "message": decision.message[:1024],
    }
    if stable is not None:
        out["version"] = stable
        if str(stable) in decision.values:
            out["value"] = float(decision.values[str(stable)])
    if unresolved is not None:
        out["unresolved"] = int(unresolved)
    if source is not None:
        out["source"] = source
    if job is not None:
        out["job"] = job
    return {k: v for k, v in out.items() if v is not None}


def prior_consecutive(status: Mapping[str, Any] | None) -> dict[str, int]:
    per = ((status or {}).get("performance") or {}).get("breaches") or {}
    return {str(k): int(v) for k, v in per.items() if isinstance(v, int | float)}


def apply_performance(
    isvc: dict[str, Any],
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
    old = dict(isvc.get("status") or {})
    gen = int(isvc["metadata"].get("generation") or 1)
    state = RolloutState.from_status(old)
    out = Outcome(state)
    extra: dict[str, Any] = {
        "performance": performance_summary(decision, state.stable, now, unresolved, source, job)
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
    elif decision.action == "Retrain" and unrecorded_retrain(old, children) is None:
        retrain = start_retrain(
            isvc,
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
        list(old.get("conditions") or []),
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
