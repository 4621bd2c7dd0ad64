"""Where the drift policy plugs into the InferenceService reconciler (pure).

:func:`apply_decision` takes a drift ``Decision`` (``onnxops.drift.policy.Decision``: action Rollback/
Retrain/Alert/None, reason, message, scores per version, rollback_from/rollback_to, consecutive breaches)
and returns the InferenceService plan (status + children changes) and, for Retrain, the TrainingJob to
create. The decision is duck-typed here so the reconciler does not import the drift package.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason
from onnxops.api.v1alpha1.inferenceservice import DriftSummary, ParsedInferenceService
from onnxops.api.v1alpha1.remediation import MonitoringStatus, RetrainRecord
from onnxops.api.v1alpha1.servicerecord import ServiceRecord
from onnxops.settings import Settings

from .remediation import ACTING, finish, rollback, set_flag, start_retrain, unrecorded_retrain
from .remediation import DriftPlan as DriftPlan
from .remediation import retrain_running as retrain_running
from .remediation import retrain_training_job as retrain_training_job
from .rollout import Outcome, RolloutState


class DecisionLike(Protocol):
    """What the reconciler reads of ``onnxops.drift.policy.Decision``."""

    @property
    def action(self) -> str | None: ...

    @property
    def reason(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def verdicts(self) -> Mapping[str, str]: ...

    @property
    def scores(self) -> Mapping[str, float]: ...

    @property
    def feature_scores(self) -> Mapping[str, Mapping[str, float]]: ...

    @property
    def samples(self) -> Mapping[str, float]: ...

    @property
    def consecutive(self) -> Mapping[str, int]: ...

    @property
    def rollback_from(self) -> str | None: ...

    @property
    def rollback_to(self) -> str | None: ...


def focus_version(decision: DecisionLike, state: RolloutState) -> str | None:
    """The version status.drift is about: the one a rollback leaves, else the canary, else the stable, else
    the previous version (the served versions in the order the policy weighs them)."""
    if decision.rollback_from:
        return str(decision.rollback_from)
    for v in (state.canary, state.stable, state.previous):
        if v is not None:
            return str(v)
    return None


def drift_summary(decision: DecisionLike, state: RolloutState, now: datetime) -> DriftSummary:
    """``status.drift`` (its only writer is :func:`apply_decision`): the focus version's verdict, score,
    features, samples and consecutive breaches, every version's score and every served version's breach
    count (``breaches``: read back by ``onnxops.drift.evaluate.prior_from_status``, so every count survives
    a restart)."""
    focus = focus_version(decision, state)
    return DriftSummary(
        verdict=decision.verdicts.get(focus) if focus else None,
        version=int(focus) if focus and focus.isdigit() else None,
        score=decision.scores.get(focus) if focus else None,
        features=dict(f) if focus and (f := decision.feature_scores.get(focus)) is not None else None,
        versions=dict(decision.scores) or None,
        samples=int(decision.samples.get(focus, 0)) if focus else None,
        consecutive_breaches=decision.consecutive.get(focus) if focus else None,
        breaches={v: int(c) for v, c in decision.consecutive.items()} or None,
        evaluated_at=cond.now_rfc3339(now.astimezone(UTC)),  # second precision, as metav1.Time
        message=f"{decision.reason}: {decision.message}"[:1024],
    )


def _record_pending(out: Outcome, extra: dict[str, Any], pending: RetrainRecord) -> None:
    """Record a retrain decided before a crash (its TrainingJob exists, status.retrain lacks it)."""
    extra["retrain"] = pending.to_dict()
    out.history.append(
        {
            "action": "Retrained",
            "version": int(out.state.stable or 0),
            "at": pending.at,
            "reason": pending.reason,
        }
    )
    out.events.append(
        (
            "Warning",
            Reason.RETRAINING,
            f"recorded TrainingJob {pending.training_job} (a retrain created before the operator restarted)",
        )
    )


def _condition_reason(decision: DecisionLike) -> str:
    """DriftDetected's reason: the decision's while it acts, else NoDrift if a version has none."""
    if decision.action in ACTING:
        return decision.reason
    if any(v == "NoDrift" for v in decision.verdicts.values()):
        return Reason.NO_DRIFT
    return Reason.INCONCLUSIVE


def apply_decision(
    isvc: ParsedInferenceService | Mapping[str, Any],
    mvs: list[dict[str, Any]],
    observed: list[dict[str, Any]],
    decision: DecisionLike,
    *,
    settings: Settings,
    now: datetime,
    retrain_children: list[dict[str, Any]] | None = None,
) -> DriftPlan:
    """The plan of a drift ``decision`` for ``isvc`` (parsed at the handler boundary; a dict is parsed
    here)."""
    isvc = ParsedInferenceService.of(isvc)
    old = dict(isvc.status)
    gen = isvc.meta.generation
    state = RolloutState.from_status(old)
    out = Outcome(state)
    extra: dict[str, Any] = {"drift": drift_summary(decision, state, now).to_dict()}
    retrain = None
    scores = {f"v{k}": float(v) for k, v in decision.scores.items()}
    children = retrain_children or []
    mon = MonitoringStatus.from_status(old)  # status.drift, .retrain as stored
    pending = unrecorded_retrain(mon, children)
    if pending is not None:  # a retrain decided before a crash: record it now, never decide it again
        _record_pending(out, extra, pending)
    if decision.action == "Rollback":
        rollback(
            out,
            state,
            decision.rollback_from,
            decision.rollback_to,
            reason=Reason.DRIFT,
            message=decision.message,
            scores=scores,
            now=now,
            generation=gen,
        )
    elif decision.action == "Retrain" and pending is None:
        retrain = start_retrain(
            isvc,
            mon,
            out,
            extra,
            stable=state.stable,
            reason=decision.reason,
            scores=scores,
            cause=f"live data drifted for every version ({decision.message})",
            now=now,
            children_tjs=children,
        )
    conds, new_alert = set_flag(
        ServiceRecord.from_status(old).conditions_as_stored(),
        cond.DRIFT_DETECTED,
        decision.action,
        _condition_reason(decision),
        decision.message,
        generation=gen,
        now=now,
    )
    if new_alert:
        out.events.append(("Warning", Reason.DRIFT, decision.message))
    return finish(isvc, mvs, observed, out, conds, extra, retrain, settings=settings, now=now)
