"""What a drift or a live-performance decision does to an InferenceService (pure).

Both hooks (:mod:`onnxops.reconcile.drift_hook`, :mod:`onnxops.reconcile.performance_hook`) act the same
way and differ only in their status field, condition and wording, so the acting is written once here:

- :func:`rollback`: the status-only rollback (``abort``: the version is rejected for ``latest`` until spec
  changes), only while the decision still matches the served versions;
- :func:`start_retrain`: the retrain TrainingJob from ``spec.retrain`` with its ``status.retrain`` record
  (one at a time and at most once per ``minInterval``, across both causes);
- :func:`set_flag`: the condition a decision raises (DriftDetected, PerformanceDegraded) and whether an
  Alert newly raised it;
- :func:`finish`: the InferenceService plan with the decision's status fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from onnxops import API_VERSION
from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason
from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec, ParsedInferenceService
from onnxops.api.v1alpha1.remediation import MonitoringStatus, RetrainRecord
from onnxops.builders import labels, names
from onnxops.settings import Settings

from . import versions
from .defaults import spec_of
from .inferenceservice import IsvcPlan, assemble
from .rollout import Outcome, RolloutState, abort, parse_duration, parse_time
from .status import status_patch

ACTING = ("Rollback", "Retrain", "Alert")  # the actions that raise the decision's condition


@dataclass
class DriftPlan:
    plan: IsvcPlan
    retrain: dict[str, Any] | None = None  # TrainingJob to create


def retrain_running(children_tjs: list[dict[str, Any]]) -> bool:
    return any((t.get("status") or {}).get("phase") not in ("Succeeded", "Failed") for t in children_tjs)


def _annotated_record(tj: Mapping[str, Any]) -> RetrainRecord | None:
    """The retrain record a retrain TrainingJob carries in its annotation (None: none, or unreadable)."""
    raw = ((tj.get("metadata") or {}).get("annotations") or {}).get(labels.RETRAIN_RECORD)
    try:
        rec = json.loads(raw) if raw else None
        return RetrainRecord.model_validate(rec) if isinstance(rec, dict) else None
    except (ValueError, ValidationError):
        return None


def unrecorded_retrain(
    status: MonitoringStatus | Mapping[str, Any], children_tjs: list[dict[str, Any]]
) -> RetrainRecord | None:
    """The status.retrain record of a retrain TrainingJob that an interrupted evaluation created but never
    recorded (the TrainingJob is created first, then the status is written: a crash in between leaves the
    decision only in the TrainingJob's annotation). None when every retrain is recorded."""
    newest = MonitoringStatus.of(status).retrain_count
    best: RetrainRecord | None = None
    for t in children_tjs:
        rec = _annotated_record(t)
        if rec is not None and rec.number > newest:
            best, newest = rec, rec.number
    return best


def retrain_training_job(
    isvc: ParsedInferenceService | Mapping[str, Any],
    n: int,
    record: RetrainRecord | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The retrain TrainingJob; ``record`` (its status.retrain entry) rides along as an annotation. Its spec
    is ``spec.retrain.trainingJob`` as stored (a TrainingJob's spec is compared as written)."""
    isvc = ParsedInferenceService.of(isvc)
    md, spec = isvc.meta, isvc.spec
    if spec.retrain is None:
        raise ValueError("spec.retrain.trainingJob is required for onDrift: Retrain")
    tmpl = dict((isvc.raw_spec.get("retrain") or {}).get("trainingJob") or {})
    rec = record.to_dict() if isinstance(record, RetrainRecord) else record
    annotations = {labels.RETRAIN_RECORD: json.dumps(rec, sort_keys=True)} if rec else {}
    owner = {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": md.name, "uid": md.uid},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {
            "name": names.retrain_job(md.name, n),
            "namespace": md.namespace,
            "labels": {
                **labels.base("retrain"),
                labels.INFERENCE_SERVICE: md.name,
                labels.MODEL: spec.retrain.training_job.model,
            },
            "ownerReferences": [labels.owner_reference(owner, controller=False)],
            **({"annotations": annotations} if annotations else {}),
        },
        "spec": tmpl,
    }


def rollback(
    out: Outcome,
    state: RolloutState,
    rollback_from: str | None,
    rollback_to: str | None,
    *,
    reason: str,
    message: str,
    scores: dict[str, float],
    now: datetime,
    generation: int,
) -> None:
    """The status-only rollback from ``rollback_from`` to ``rollback_to``, when the first is still the
    canary, or the stable with the second as its previous version (else the decision is stale: nothing)."""
    if not (rollback_from and rollback_to):
        return
    frm = int(rollback_from)
    if frm == state.canary or (frm == state.stable and state.previous == int(rollback_to)):
        abort(
            out,
            from_version=frm,
            reason=reason,
            message=message,
            now=now,
            generation=generation,
            scores=scores,
        )


def stored_time(at: str | None) -> datetime | None:
    """A time as the operator stores it (``2026-01-02T03:04:05Z``); None when unset or not such a time
    (read as never, as the policies' guards read it: the next evaluation writes it anew)."""
    try:
        return parse_time(at)
    except ValueError:
        return None


def since(at: str | None, now: datetime) -> float:
    """Seconds since the stored time ``at`` (infinite when unset or unreadable: :func:`stored_time`)."""
    t = stored_time(at)
    return math.inf if t is None else (now - t).total_seconds()


def retrain_due(
    spec: InferenceServiceSpec | Mapping[str, Any],
    old: MonitoringStatus | Mapping[str, Any],
    children_tjs: list[dict[str, Any]],
    now: datetime,
) -> bool:
    """``spec.retrain`` is set, no retrain TrainingJob runs and ``minInterval`` passed since the last one
    (``spec`` typed; a dict, e.g. a test's, is parsed with the API's defaults)."""
    spec = spec_of(spec)
    if spec.retrain is None or retrain_running(children_tjs):
        return False
    last = MonitoringStatus.of(old).retrain
    return since(last.at if last else None, now) >= parse_duration(spec.retrain.min_interval)


def start_retrain(
    isvc: ParsedInferenceService,
    old: MonitoringStatus,
    out: Outcome,
    extra: dict[str, Any],
    *,
    stable: int | None,
    reason: str,
    scores: dict[str, float],
    cause: str,
    now: datetime,
    children_tjs: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """The retrain TrainingJob when one is due (None otherwise); records it in ``extra["retrain"]``, the
    history (against the ``stable`` version) and a Warning event (``cause``, then the TrainingJob's name).
    ``old``: the stored status's blocks (the last retrain)."""
    if not retrain_due(isvc.spec, old, children_tjs, now):
        return None
    n = old.retrain_count + 1
    record = RetrainRecord(
        training_job=names.retrain_job(isvc.meta.name, n),
        at=cond.now_rfc3339(now),
        reason=reason,
        count=n,
        scores=scores,
    )
    extra["retrain"] = record.to_dict()
    tj = retrain_training_job(isvc, n, record)
    out.history.append(
        {"action": "Retrained", "version": int(stable or 0), "at": cond.now_rfc3339(now), "reason": reason}
    )
    out.events.append(
        ("Warning", Reason.RETRAINING, f"{cause}; created TrainingJob {tj['metadata']['name']}")
    )
    return tj


def set_flag(
    conds: list[dict[str, Any]],
    ctype: str,
    action: str | None,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> tuple[list[dict[str, Any]], bool]:
    """The conditions with ``ctype`` True while ``action`` acts (:data:`ACTING`), and whether an Alert
    newly raised it (the one time an Alert posts its event)."""
    on = action in ACTING
    before = cond.find(conds, ctype)
    conds = cond.set_condition(conds, ctype, on, reason, message[:1024], generation=generation, now=now)
    return conds, on and action == "Alert" and (before is None or before.get("status") != "True")


def finish(
    isvc: ParsedInferenceService,
    mvs: list[dict[str, Any]],
    observed: list[dict[str, Any]],
    out: Outcome,
    conds: list[dict[str, Any]],
    extra: dict[str, Any],
    retrain: dict[str, Any] | None,
    *,
    settings: Settings,
    now: datetime,
) -> DriftPlan:
    """The InferenceService plan after the decision: ``conds`` and ``extra`` (status fields) on top of the
    usual assembly, with its status patch against the observed status."""
    spec = isvc.spec
    old = dict(isvc.status)
    isvc_now = dataclasses.replace(isvc, status={**old, "conditions": conds})
    by_v = versions.by_version(mvs, spec.model)
    skipped = versions.skipped_by_latest(old, by_v)
    res = versions.resolve(spec.version, spec.model, mvs, skipped)
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
