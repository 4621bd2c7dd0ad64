"""What a failed reconcile writes: Stalled=True with a short, scrubbed reason, Ready=False unless the object
is still serving (an InferenceService with a stableVersion keeps its Ready as is). Pure functions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason

# NameConflict, owner_uids, owned_by live in onnxops.objects.ownership (kube/ raises NameConflict too);
# re-exported here for the reconcilers and controllers that import them from this module.
from onnxops.objects.ownership import NameConflict as NameConflict
from onnxops.objects.ownership import owned_by as owned_by
from onnxops.objects.ownership import owner_uids as owner_uids

from .termination import short

RECONCILE_ERROR = "ReconcileError"
NAME_CONFLICT = "NameConflict"
MESSAGE_LIMIT = 512


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(reason, message) for an exception raised while reconciling.

    A pydantic validation error is the user's spec: ``InvalidSpec`` naming the field(s); anything else is
    ``ReconcileError`` with the exception's type and text, scrubbed of credentials and shortened.
    """
    if isinstance(exc, NameConflict):
        return NAME_CONFLICT, short(str(exc), MESSAGE_LIMIT)
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__ == "ValidationError":
        try:
            items = list(errors())
        except Exception:  # fall back to the generic description
            items = []
        if items:
            parts = [
                f"spec.{'.'.join(str(p) for p in e.get('loc', ())) or '<root>'}: {e.get('msg', 'invalid')}"
                for e in items[:3]
            ]
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            return Reason.INVALID_SPEC, short("invalid spec: " + "; ".join(parts) + more, MESSAGE_LIMIT)
    text = str(exc) or type(exc).__name__
    return RECONCILE_ERROR, short(f"reconcile failed ({type(exc).__name__}): {text}", MESSAGE_LIMIT)


def error_status(
    kind: str, obj: dict[str, Any], reason: str, message: str, now: datetime | None = None
) -> dict[str, Any]:
    """The status fields (conditions, observedGeneration) recording a reconcile error on ``obj``."""
    status = obj.get("status") or {}
    gen = (obj.get("metadata") or {}).get("generation")
    conds: list[dict[str, Any]] = [dict(c) for c in status.get("conditions") or []]
    serving = kind == "InferenceService" and status.get("stableVersion") is not None
    if not serving:
        conds = cond.set_condition(conds, cond.READY, False, reason, message, generation=gen, now=now)
    conds = cond.set_condition(conds, cond.STALLED, True, reason, message, generation=gen, now=now)
    out: dict[str, Any] = {"conditions": conds}
    if gen is not None:
        out["observedGeneration"] = gen
    return out
