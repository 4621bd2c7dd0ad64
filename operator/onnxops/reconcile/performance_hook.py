"""Where the live-performance policy plugs into the InferenceService reconciler (pure).

:func:`apply_performance` takes a performance decision (``onnxops.drift.performance_policy.PerfDecision``,
duck-typed) and returns the plan: ``status.performance`` with the numbers behind it, the
``PerformanceDegraded`` condition, a status-only rollback (the same ``abort`` as a drift rollback: the
version is rejected for ``latest`` until spec changes) or a retrain TrainingJob from ``spec.retrain``
(recorded in ``status.retrain`` like a drift retrain, so ``minInterval`` and "one at a time" hold across
both causes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason
from onnxops.builders import names
from onnxops.settings import Settings

from . import defaults, versions
from .drift_hook import DriftPlan, retrain_running, retrain_training_job, unrecorded_retrain
from .inferenceservice import assemble
from .rollout import Outcome, RolloutState, abort, elapsed, parse_duration
from .status import status_patch

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
    md, spec = isvc["metadata"], isvc["spec"]
    old = dict(isvc.get("status") or {})
    gen = int(md.get("generation") or 1)
    state = RolloutState.from_status(old)
    out = Outcome(state)
    extra: dict[str, Any] = {
        "performance": performance_summary(decision, state.stable, now, unresolved, source, job)
    }
    values = {f"v{k}": float(v) for k, v in decision.values.items()}
    retrain = None
    action = decision.action
    pending = unrecorded_retrain(old, retrain_children or [])
    if action == "Rollback" and decision.rollback_from and decision.rollback_to:
        frm = int(decision.rollback_from)
        if frm == state.canary or (frm == state.stable and state.previous == int(decision.rollback_to)):
            abort(
                out,
                from_version=frm,
                reason=decision.reason,
                message=decision.message,
                now=now,
                generation=gen,
                scores=values,
            )
    elif action == "Retrain" and pending is None:
        last = (old.get("retrain") or {}).get("at")
        min_interval = parse_duration(
            (spec.get("retrain") or {}).get("minInterval"), defaults.RETRAIN_MIN_INTERVAL_SECONDS
        )
        if (
            spec.get("retrain")
            and not retrain_running(retrain_children or [])
            and elapsed(last, now) >= min_interval
        ):
            n = int((old.get("retrain") or {}).get("count") or 0) + 1
            extra["retrain"] = {
                "trainingJob": names.retrain_job(md["name"], n),
                "at": cond.now_rfc3339(now),
                "reason": decision.reason,
                "count": n,
                "scores": values,
            }
            retrain = retrain_training_job(isvc, n, extra["retrain"])
            out.history.append(
                {
                    "action": "Retrained",
                    "version": int(state.stable or 0),
                    "at": cond.now_rfc3339(now),
                    "reason": decision.reason,
                }
            )
            out.events.append(
                (
                    "Warning",
                    Reason.RETRAINING,
                    f"live {decision.metric} degraded for every version ({decision.message}); "
                    f"created TrainingJob {retrain['metadata']['name']}",
                )
            )
    conds = list(old.get("conditions") or [])
    degraded = action in ("Rollback", "Retrain", "Alert")
    before = cond.find(conds, PERFORMANCE_DEGRADED)
    conds = cond.set_condition(
        conds,
        PERFORMANCE_DEGRADED,
        degraded,
        decision.reason,
        decision.message[:1024],
        generation=gen,
        now=now,
    )
    if degraded and action == "Alert" and (before is None or before.get("status") != "True"):
        out.events.append(("Warning", decision.reason, decision.message[:1024]))
    isvc_now = {**isvc, "status": {**old, "conditions": conds}}
    by_v = versions.by_version(mvs, spec["model"])
    skipped = versions.skipped_by_latest(old, by_v)
    res = versions.resolve(spec.get("version", "latest"), spec["model"], mvs, skipped)
    plan = assemble(
        isvc_now,
        {**old, "conditions": conds},
        out,
        res,
        by_v,
        observed,
        settings=settings,
        now=now,
        extra_status=extra,
    )
    plan.status_patch = status_patch(old, plan.status)
    return DriftPlan(plan, retrain)
