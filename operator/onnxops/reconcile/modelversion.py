"""ModelVersion reconcile (pure): verification Job result -> Verified/Ready; servedBy; deletion guard."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason
from onnxops.api.v1alpha1.modelversion import ParsedModelVersion
from onnxops.api.v1alpha1.termination import VerifierFailure, parse_verifier_result
from onnxops.builders import job as job_builder
from onnxops.settings import Settings

from .errors import describe_error, error_status
from .status import primary_metric, status_patch
from .termination import latest_typed, short, stuck_waiting
from .trainingjob import job_condition

CONTAINER = "verify"
BLOCKED = "DeletionBlocked"


@dataclass
class VersionPlan:
    status: dict[str, Any]
    status_patch: dict[str, Any]
    job: dict[str, Any] | None
    events: list[tuple[str, str, str]] = field(default_factory=list)


def invalid_spec_plan(mv: dict[str, Any], exc: ValidationError, now: datetime) -> VersionPlan:
    """A ModelVersion whose spec does not parse into the API's types (e.g. stored before the API refused
    what it holds): no verification Job; Ready=False and Stalled=True with reason InvalidSpec and a message
    naming the field and the problem (as any failed reconcile records it), and one Warning Event. The
    phase is left as it is (a Ready version already served keeps running: version resolution does not
    move `latest` past it, see ``ListedModelVersion``)."""
    reason, message = describe_error(exc)
    old = dict(mv.get("status") or {})
    new = {**error_status("ModelVersion", mv, reason, message, now), "message": message}
    patch = status_patch(old, new)
    return VersionPlan(new, patch, None, [("Warning", reason, message)] if patch else [])


def reconcile(
    mv: ParsedModelVersion | Mapping[str, Any],
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    served_by: list[str],
    settings: Settings,
    now: datetime,
) -> VersionPlan:
    """``mv``: parsed at the handler boundary (``ParsedModelVersion.parse``); a dict is parsed here."""
    mv = ParsedModelVersion.of(mv)
    md, spec = mv.meta, mv.spec
    old, st = dict(mv.status), mv.observed  # the stored status (compared), and as read
    gen = md.generation
    desired = job_builder.verification_job(mv, settings)
    events: list[tuple[str, str, str]] = []
    new: dict[str, Any] = {
        "observedGeneration": gen,
        "verificationJob": desired["metadata"]["name"],
        "servedBy": sorted(served_by) or None,
        "primaryMetric": primary_metric(spec.metrics),
    }
    job_out: dict[str, Any] | None = None
    if st.phase == "Ready" or st.phase == "Failed":
        phase: str = st.phase
        message = st.message or ""
        verified = phase == "Ready"
        reason = Reason.VERIFIED if verified else Reason.VERIFICATION_FAILED
    else:
        job_out = desired
        complete, failed = job_condition(job, "Complete"), job_condition(job, "Failed")
        if complete:
            phase, verified, reason = "Ready", True, Reason.VERIFIED
            message = "verified: sha256, ONNX load, signature and a smoke inference passed"
            new["verifiedAt"] = ((job or {}).get("status") or {}).get("completionTime") or cond.now_rfc3339(
                now
            )
            events.append(("Normal", Reason.VERIFIED, f"{md.name} verified"))
        elif failed:
            phase, verified, reason = "Failed", False, Reason.VERIFICATION_FAILED
            found = latest_typed(pods, CONTAINER, parse_verifier_result, ok=False)
            if isinstance(found.result, VerifierFailure):
                detail = f"{found.result.reason or 'Failed'}: {found.result.message}"
            elif found.malformed:  # a JSON result that breaks the contract: say which field
                detail = found.malformed
            else:
                detail = found.raw or str(failed.get("reason") or "verification Job failed")
            message = f"verification failed: {short(detail)}"
            events.append(("Warning", Reason.VERIFICATION_FAILED, message))
        elif (stuck := stuck_waiting(pods)) is not None:  # e.g. ImagePullBackOff: never starts unfixed
            phase, verified, (reason, detail) = "Verifying", False, stuck
            message = f"{reason}: verification {detail}"
            if message != st.message:
                events.append(("Warning", reason, message))
        else:
            phase, verified, reason = "Verifying", False, Reason.VERIFYING
            message = "verification Job running"
    new["phase"] = phase
    new["message"] = message
    conds = cond.set_condition(
        st.conditions_as_stored(),
        cond.VERIFIED,
        True if verified else ("False" if phase == "Failed" else "Unknown"),
        reason,
        message,
        generation=gen,
        now=now,
    )
    conds = cond.summarize(
        conds,
        ready=verified,
        reason=reason,
        message=message,
        reconciling=phase == "Verifying",
        stalled=phase == "Failed",
        generation=gen,
        now=now,
    )
    blocked = st.condition(BLOCKED)
    if blocked is not None and not served_by:
        conds = cond.remove_condition(conds, BLOCKED)
    new["conditions"] = conds
    return VersionPlan(new, status_patch(old, new), job_out, events)


def deletion_block(mv: dict[str, Any], served_by: list[str], now: datetime) -> dict[str, Any] | None:
    """Status patch reporting why the deletion waits, or None when it may proceed (nobody serves it)."""
    if not served_by:
        return None
    msg = f"deletion waits: served by {', '.join(sorted(served_by))}"
    old = mv.get("status") or {}
    conds = cond.set_condition(
        old.get("conditions"),
        BLOCKED,
        True,
        "ServedByInferenceService",
        msg,
        generation=int(mv["metadata"].get("generation") or 1),
        now=now,
    )
    patch = status_patch(old, {"conditions": conds, "servedBy": sorted(served_by)})
    return patch
