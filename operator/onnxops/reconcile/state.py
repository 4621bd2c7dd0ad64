"""Rollout state as stored in ``status`` (stableVersion, canaryVersion, canaryWeight, currentStep,
stepStartedAt, previousVersion, promotedAt, analysisFailures, inconclusiveChecks, lastAnalysis, rollback,
shadow),
what one step of the state machine decided (:class:`Outcome`), and the abort that records a rollback.

``status.rollback`` and ``status.lastAnalysis`` are typed (``RollbackRecord``, ``AnalysisSummary``): read
leniently (``api/v1alpha1/stored.read_block``: a block that does not parse, e.g. one missing a required
field, is absent; a field that does not parse is left out), written by their one writer each (:func:`abort`,
``rollout._judge``) as ``to_dict()``, the JSON the dicts were."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from onnxops.api.conditions import Reason, now_rfc3339
from onnxops.api.v1alpha1.inferenceservice import AnalysisSummary, RollbackRecord
from onnxops.api.v1alpha1.stored import read_block


@dataclass(frozen=True)
class RolloutState:
    stable: int | None = None
    canary: int | None = None
    weight: int | None = None
    step: int | None = None
    step_started_at: str | None = None
    previous: int | None = None
    promoted_at: str | None = None
    analysis_failures: int = 0
    rollback: RollbackRecord | None = None
    inconclusive_checks: int = 0
    last_analysis: AnalysisSummary | None = None
    shadow: bool = False  # the canary is in its shadow phase (spec.rollout.shadow): mirrored requests only

    @classmethod
    def from_status(cls, st: dict[str, Any] | None) -> RolloutState:
        s = st or {}
        return cls(
            s.get("stableVersion"),
            s.get("canaryVersion"),
            s.get("canaryWeight"),
            s.get("currentStep"),
            s.get("stepStartedAt"),
            s.get("previousVersion"),
            s.get("promotedAt"),
            int(s.get("analysisFailures") or 0),
            read_block(RollbackRecord, s.get("rollback")),
            int(s.get("inconclusiveChecks") or 0),
            read_block(AnalysisSummary, s.get("lastAnalysis")),
            bool(s.get("shadow")) and s.get("canaryVersion") is not None,
        )

    def to_status(self) -> dict[str, Any]:
        return {
            "stableVersion": self.stable,
            "canaryVersion": self.canary,
            "canaryWeight": self.weight,
            "currentStep": self.step,
            "stepStartedAt": self.step_started_at,
            "previousVersion": self.previous,
            "promotedAt": self.promoted_at,
            "analysisFailures": self.analysis_failures or None,
            "inconclusiveChecks": self.inconclusive_checks or None,
            "lastAnalysis": self.last_analysis.to_dict() if self.last_analysis is not None else None,
            "rollback": self.rollback.to_dict() if self.rollback is not None else None,
            "shadow": True if self.shadow and self.canary is not None else None,
        }

    def paused(self) -> bool:
        """The canary step holds on inconclusive analysis."""
        return self.canary is not None and self.inconclusive_checks > 0


@dataclass
class Outcome:
    """What one call decided, besides the new state."""

    state: RolloutState
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (Normal|Warning, reason, message)
    history: list[dict[str, Any]] = field(default_factory=list)
    reject: list[tuple[int, str]] = field(default_factory=list)  # versions to mark rejected, with reason
    requeue_after: float | None = None
    wants_analysis: bool = False
    waiting: str = ""  # what the rollout waits for (for the message)
    gate: str | None = None  # AwaitingPromotion | PausedByUser: the canary waits for a person
    control_clear: set[str] = field(default_factory=set)  # status.control requests consumed or stale


def hold_active(state: RolloutState, generation: int) -> bool:
    """A rollback holds until spec changes: metadata.generation > rollback.generation."""
    rb = state.rollback
    return rb is not None and rb.generation >= generation


def rollback_current(state: RolloutState, generation: int) -> bool:
    """The held rollback is the present (Degraded/Stalled): the service serves the version it rolled back to.
    Once a newer version is rolled out (a retrain's), the hold only keeps the rejected one out."""
    if not hold_active(state, generation):
        return False
    assert state.rollback is not None  # hold_active
    return state.stable is None or state.rollback.to_version == int(state.stable)


def abort(
    out: Outcome,
    *,
    from_version: int,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
    scores: dict[str, float] | None = None,
) -> None:
    """Stop the rollout of ``from_version``: the stable version keeps 100 %, record status.rollback."""
    s = out.state
    to = s.stable if s.stable is not None and s.stable != from_version else s.previous
    at = now_rfc3339(now)
    rb = RollbackRecord(
        from_version=from_version,
        to_version=to if to is not None else from_version,
        reason=reason,
        message=message,
        at=at,
        generation=generation,
        scores=dict(scores) if scores else None,
    )
    new = replace(
        s,
        canary=None,
        weight=None,
        step=None,
        step_started_at=None,
        analysis_failures=0,
        inconclusive_checks=0,
        rollback=rb,
        shadow=False,
    )
    if s.canary is None and s.stable == from_version and to is not None:
        # rollback after promotion (during the bake): the previous version becomes stable again
        new = replace(new, stable=to, previous=None, promoted_at=None)
    out.state = new
    out.reject.append((from_version, reason))
    out.history.append(
        {
            "action": "RolledBack" if s.stable == from_version else "Aborted",
            "version": from_version,
            "at": at,
            "reason": reason,
        }
    )
    out.events.append(
        (
            "Warning",
            Reason.ROLLED_BACK,
            f"rollout of v{from_version} aborted ({reason}): {message}; serving v{rb.to_version}",
        )
    )
