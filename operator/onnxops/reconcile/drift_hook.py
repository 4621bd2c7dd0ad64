"""Where the drift policy plugs into the InferenceService reconciler (pure).

:func:`apply_decision` takes a drift ``Decision`` (``onnxops.drift.policy.Decision``: action Rollback/
Retrain/Alert/None, reason, message, scores per version, rollback_from/rollback_to, consecutive breaches)
and returns the InferenceService plan (status + children changes) and, for Retrain, the TrainingJob to
create. The decision is duck-typed here so the reconciler does not import the drift package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from onnxops import API_VERSION
from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason
from onnxops.builders import labels, names
from onnxops.settings import Settings

from . import defaults, versions
from .inferenceservice import IsvcPlan, assemble
from .rollout import Outcome, RolloutState, abort, elapsed, parse_duration
from .status import status_patch


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


@dataclass
class DriftPlan:
    plan: IsvcPlan
    retrain: dict[str, Any] | None = None  # TrainingJob to create


def focus_version(decision: DecisionLike, state: RolloutState) -> str | None:
    """The version status.drift is about: the one a rollback leaves, else the canary, else the stable, else
    the previous version (the served versions in the order the policy weighs them)."""
    if decision.rollback_from:
        return str(decision.rollback_from)
    for v in (state.canary, state.stable, state.previous):
        if v is not None:
            return str(v)
    return None


def drift_summary(decision: DecisionLike, state: RolloutState, now: datetime) -> dict[str, Any]:
    """``status.drift`` (DriftSummary, camelCase; its only writer is :func:`apply_decision`): the focus
    version's verdict, score, features, samples and consecutive breaches, every version's score and every
    served version's breach count (``breaches``: read back by ``onnxops.drift.evaluate.prior_from_status``,
    so every count survives a restart)."""
    focus = focus_version(decision, state)
    out: dict[str, Any] = {
        "verdict": decision.verdicts.get(focus) if focus else None,
        "version": int(focus) if focus and focus.isdigit() else None,
        "score": decision.scores.get(focus) if focus else None,
        "features": decision.feature_scores.get(focus) if focus else None,
        "versions": dict(decision.scores) or None,
        "samples": int(decision.samples.get(focus, 0)) if focus else None,
        "consecutiveBreaches": decision.consecutive.get(focus) if focus else None,
        "breaches": {v: int(c) for v, c in decision.consecutive.items()} or None,
        "evaluatedAt": cond.now_rfc3339(now.astimezone(UTC)),  # second precision, as metav1.Time
        "message": f"{decision.reason}: {decision.message}"[:1024],
    }
    return {k: v for k, v in out.items() if v is not None}


def retrain_running(children_tjs: list[dict[str, Any]]) -> bool:
    return any((t.get("status") or {}).get("phase") not in ("Succeeded", "Failed") for t in children_tjs)


def unrecorded_retrain(status: dict[str, Any], children_tjs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The status.retrain record of a retrain TrainingJob that an interrupted evaluation created but never
    recorded (the TrainingJob is created first, then the status is written: a crash in between leaves the
    decision only in the TrainingJob's annotation). None when every retrain is recorded."""
    recorded = int((status.get("retrain") or {}).get("count") or 0)
    best: dict[str, Any] | None = None
    for t in children_tjs:
        raw = ((t.get("metadata") or {}).get("annotations") or {}).get(labels.RETRAIN_RECORD)
        try:
            rec = json.loads(raw) if raw else None
        except ValueError:
            continue
        newest = max(recorded, int((best or {}).get("count") or 0))
        if isinstance(rec, dict) and int(rec.get("count") or 0) > newest:
            best = rec
    return best


def retrain_training_job(
    isvc: dict[str, Any], n: int, record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The retrain TrainingJob; ``record`` (its status.retrain entry) rides along as an annotation."""
    md, spec = isvc["metadata"], isvc["spec"]
    tmpl = (spec.get("retrain") or {}).get("trainingJob")
    annotations = {labels.RETRAIN_RECORD: json.dumps(record, sort_keys=True)} if record else {}
    if not tmpl:
        raise ValueError("spec.retrain.trainingJob is required for onDrift: Retrain")
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {
            "name": names.retrain_job(md["name"], n),
            "namespace": md.get("namespace", "default"),
            "labels": {
                **labels.base("retrain"),
                labels.INFERENCE_SERVICE: md["name"],
                labels.MODEL: tmpl.get("model", spec["model"]),
            },
            "ownerReferences": [labels.owner_reference(isvc, controller=False)],
            **({"annotations": annotations} if annotations else {}),
        },
        "spec": dict(tmpl),
    }


def apply_decision(
    isvc: dict[str, Any],
    mvs: list[dict[str, Any]],
    observed: list[dict[str, Any]],
    decision: DecisionLike,
    *,
    settings: Settings,
    now: datetime,
    retrain_children: list[dict[str, Any]] | None = None,
) -> DriftPlan:
    md, spec = isvc["metadata"], isvc["spec"]
    old = dict(isvc.get("status") or {})
    gen = int(md.get("generation") or 1)
    state = RolloutState.from_status(old)
    out = Outcome(state)
    extra: dict[str, Any] = {"drift": drift_summary(decision, state, now)}
    conds = list(old.get("conditions") or [])
    retrain = None
    action = decision.action
    scores = {f"v{k}": float(v) for k, v in decision.scores.items()}
    pending = unrecorded_retrain(old, retrain_children or [])
    if pending is not None:  # a retrain decided before a crash: record it now, never decide it again
        extra["retrain"] = pending
        out.history.append(
            {
                "action": "Retrained",
                "version": int(state.stable or 0),
                "at": pending.get("at"),
                "reason": pending.get("reason"),
            }
        )
        out.events.append(
            (
                "Warning",
                Reason.RETRAINING,
                f"recorded TrainingJob {pending.get('trainingJob')} (a retrain "
                "created before the operator restarted)",
            )
        )
    if action == "Rollback" and decision.rollback_from and decision.rollback_to:
        frm = int(decision.rollback_from)
        if frm == state.canary or (frm == state.stable and state.previous == int(decision.rollback_to)):
            abort(
                out,
                from_version=frm,
                reason=Reason.DRIFT,
                message=decision.message,
                now=now,
                generation=gen,
                scores=scores,
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
                "scores": scores,
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
                    f"live data drifted for every version ({decision.message}); created "
                    f"TrainingJob {retrain['metadata']['name']}",
                )
            )
    drifting = action in ("Rollback", "Retrain", "Alert")
    before = cond.find(conds, cond.DRIFT_DETECTED)
    conds = cond.set_condition(
        conds,
        cond.DRIFT_DETECTED,
        drifting,
        decision.reason
        if drifting
        else (
            Reason.NO_DRIFT
            if any(v == "NoDrift" for v in decision.verdicts.values())
            else Reason.INCONCLUSIVE
        ),
        decision.message[:1024],
        generation=gen,
        now=now,
    )
    if drifting and action == "Alert" and (before is None or before.get("status") != "True"):
        out.events.append(("Warning", Reason.DRIFT, decision.message))
    isvc_now = {**isvc, "status": {**old, "conditions": conds}}
    by_v = versions.by_version(mvs, spec["model"])
    skipped = versions.skipped_by_latest(old, by_v)
    res = versions.resolve(spec.get("version", defaults.SPEC_VERSION), spec["model"], mvs, skipped)
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
