"""Condition types, reasons and pure helpers (kstatus-compatible).

kstatus reads ``Ready`` as the summary, ``Reconciling`` as "progressing" and ``Stalled`` as "failed";
Argo CD and Flux derive health from these, so every kind sets them through these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

# Types
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
VERIFIED = "Verified"
DEGRADED = "Degraded"
DRIFT_DETECTED = "DriftDetected"
SUCCEEDED = "Succeeded"
ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
CAPACITY_REDUCED = "CapacityReduced"
TRAFFIC_SPLIT_INEXACT = "TrafficSplitInexact"
PAUSED = "Paused"  # InferenceService: the canary waits for a person (manual gate or `onnxops pause`)
RELEASE_BLOCKED = "ReleaseBlocked"  # InferenceService: governance keeps the wanted version from being served


# Reasons
class Reason:
    """CamelCase reasons used across kinds."""

    PENDING = "Pending"
    SUSPENDED = "Suspended"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    TRAINING_FAILED = "TrainingFailed"
    GATE_NOT_MET = "GateNotMet"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    REGISTERED = "Registered"
    VERIFYING = "Verifying"
    VERIFIED = "Verified"
    VERIFICATION_FAILED = "VerificationFailed"
    INVALID_SPEC = "InvalidSpec"
    VERSION_NOT_FOUND = "VersionNotFound"
    VERSION_NOT_READY = "VersionNotReady"
    PROGRESSING = "Progressing"
    CANARY = "CanaryInProgress"
    BAKING = "Baking"
    AVAILABLE = "Available"
    ANALYSIS_FAILED = "AnalysisFailed"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    ROLLED_BACK = "RolledBack"
    DRIFT = "DriftDetected"
    NO_DRIFT = "NoDrift"
    INCONCLUSIVE = "Inconclusive"
    ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
    CAPACITY_REDUCED = "CapacityReduced"
    WEIGHT_INEXACT = "WeightInexact"
    RETRAINING = "Retraining"
    UNAVAILABLE = "Unavailable"
    AS_EXPECTED = "AsExpected"
    SERVICE_NOT_FOUND = "ServiceNotFound"  # dataset.fromServing.service names no InferenceService
    CAPTURE_NOT_ENABLED = "CaptureNotEnabled"  # ... or one without spec.logging enabled
    SINK_WRITABLE = "SinkWritable"  # CaptureHealthy True: the pods write their captured rows
    SINK_UNAVAILABLE = "SinkUnavailable"  # CaptureHealthy False: a pod's writes fail, rows are dropped
    # release governance (the Model resource)
    AWAITING_APPROVAL = "AwaitingApproval"
    ALIAS_NOT_FOUND = "AliasNotFound"
    ALIAS_NOT_READY = "AliasNotReady"
    VERSION_ARCHIVED = "VersionArchived"
    VERSION_REJECTED = "VersionRejected"
    INVALID_GOVERNANCE = "InvalidGovernance"
    CONSISTENT = "Consistent"
    # manual rollout control (onnxops promote / abort / pause)
    AWAITING_PROMOTION = "AwaitingPromotion"  # a step with awaitPromotion waits for `onnxops promote`
    PAUSED_BY_USER = "PausedByUser"  # `onnxops pause` holds the canary
    ABORTED_BY_USER = "AbortedByUser"  # `onnxops abort`: a status-only rollback, held until spec changes
    # shadow phase (spec.rollout.shadow): mirrored traffic only, judged before the canary steps
    SHADOW = "ShadowInProgress"
    SHADOW_FAILED = "ShadowAnalysisFailed"  # the shadow failed its check: aborted before any weight


def now_rfc3339(now: datetime | None = None) -> str:
    """RFC 3339 timestamp in UTC with a Z suffix, second precision (as metav1.Time)."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    """The condition of that type, or None."""
    for c in conditions or ():
        if c.get("type") == type_:
            return c
    return None


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> bool:
    c = find(conditions, type_)
    return c is not None and c.get("status") == "True"


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Return a new list with the condition set.

    ``lastTransitionTime`` changes only when ``status`` changes, so reconciling a converged object yields
    an identical list (and therefore no write).
    """
    status_str = status if isinstance(status, str) else ("True" if status else "False")
    out: list[dict[str, Any]] = []
    replaced = False
    for c in conditions or ():
        if c.get("type") != type_:
            out.append(dict(c))
            continue
        replaced = True
        ltt = c.get("lastTransitionTime") if c.get("status") == status_str else None
        out.append(_condition(type_, status_str, reason, message, generation, ltt or now_rfc3339(now)))
    if not replaced:
        out.append(_condition(type_, status_str, reason, message, generation, now_rfc3339(now)))
    return out


def remove_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> list[dict[str, Any]]:
    return [dict(c) for c in conditions or () if c.get("type") != type_]


def _condition(
    type_: str, status: str, reason: str, message: str, generation: int | None, ltt: str
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": ltt,
    }
    if generation is not None:
        c["observedGeneration"] = generation
    return c


def summarize(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    ready: bool,
    reason: str,
    message: str = "",
    reconciling: bool = False,
    stalled: bool = False,
    stalled_reason: str | None = None,
    generation: int | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Set Ready, and Reconciling/Stalled only while they are True (kstatus: abnormal-true polarity)."""
    out = set_condition(conditions, READY, ready, reason, message, generation=generation, now=now)
    if reconciling:
        out = set_condition(out, RECONCILING, True, reason, message, generation=generation, now=now)
    else:
        out = remove_condition(out, RECONCILING)
    if stalled:
        out = set_condition(
            out, STALLED, True, stalled_reason or reason, message, generation=generation, now=now
        )
    else:
        out = remove_condition(out, STALLED)
    return out
