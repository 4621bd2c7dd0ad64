"""The rollout state machine of an InferenceService (pure): canary steps, promotion, bake, abort, hold.

State lives in ``status`` (stableVersion, canaryVersion, canaryWeight, currentStep, stepStartedAt,
previousVersion, promotedAt, analysisFailures, rollback); every call derives the next state from it and
from what is observed, so a restarted operator continues where the last one stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from onnxops.api.conditions import Reason, now_rfc3339

from .analysis import AnalysisResult
from .bake import bake_extended as bake_extended
from .bake import drift_investigating as drift_investigating
from .bake import investigation_seconds
from .durations import elapsed as elapsed
from .durations import parse_duration as parse_duration
from .durations import parse_time as parse_time

DEFAULT_STEPS: list[dict[str, Any]] = [{"weight": 20, "pause": "30s"}, {"weight": 50, "pause": "30s"}]


def split_replicas(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pods so that the Service's traffic follows ``weight`` percent.

    canary = max(1, round-half-up(total * w / 100)); stable = total - canary, but at least 1 while w < 100.
    """
    canary = max(1, math.floor(total * weight / 100 + 0.5))
    stable = max(0, total - canary)
    if weight < 100 and stable < 1:
        stable = 1
    return stable, canary


@dataclass(frozen=True)
class RolloutConfig:
    strategy: str = "Canary"
    steps: tuple[tuple[int, float], ...] = ((20, 30.0), (50, 30.0))
    analysis: dict[str, Any] | None = None
    bake_seconds: float = 120.0
    progress_deadline: float = 600.0
    # how long a drift investigation of a promoted version may extend its bake: failureLimit x interval
    investigation_seconds: float = 0.0

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> RolloutConfig:
        r = spec.get("rollout") or {}
        steps: list[dict[str, Any]] = r["steps"] if r.get("steps") is not None else DEFAULT_STEPS
        return cls(
            strategy=r.get("strategy", "Canary"),
            steps=tuple((int(s["weight"]), parse_duration(s.get("pause"))) for s in steps),
            analysis=r.get("analysis"),
            bake_seconds=parse_duration(r.get("bakeTime"), 120.0),
            progress_deadline=parse_duration(r.get("progressDeadline"), 600.0),
            investigation_seconds=investigation_seconds(spec),
        )


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
    rollback: dict[str, Any] | None = None

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
            s.get("rollback"),
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
            "rollback": self.rollback,
        }


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


def hold_active(state: RolloutState, generation: int) -> bool:
    """A rollback holds until spec changes: metadata.generation > rollback.generation."""
    rb = state.rollback
    return rb is not None and int(rb.get("generation", -1)) >= generation


def rollback_current(state: RolloutState, generation: int) -> bool:
    """The held rollback is the present (Degraded/Stalled): the service serves the version it rolled back to.
    Once a newer version is rolled out (a retrain's), the hold only keeps the rejected one out."""
    if not hold_active(state, generation):
        return False
    to = (state.rollback or {}).get("to")
    return to is None or state.stable is None or int(to) == int(state.stable)


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
    rb: dict[str, Any] = {
        "from": from_version,
        "to": to if to is not None else from_version,
        "reason": reason,
        "message": message,
        "at": at,
        "generation": generation,
    }
    if scores:
        rb["scores"] = dict(scores)
    new = replace(
        s, canary=None, weight=None, step=None, step_started_at=None, analysis_failures=0, rollback=rb
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
            f"rollout of v{from_version} aborted ({reason}): {message}; serving v{rb['to']}",
        )
    )


def advance(
    state: RolloutState,
    cfg: RolloutConfig,
    *,
    target: int | None,
    target_failed: tuple[int, str, str] | None,
    canary_ready: bool,
    analysis: AnalysisResult | None,
    now: datetime,
    generation: int,
    investigating: bool = False,
) -> Outcome:
    """One step of the state machine. ``target`` is the resolved servable version (None: nothing new);
    ``target_failed`` = (version, reason, message) when the version spec.version pins cannot be served;
    ``investigating``: the stable version has an open drift breach and the previous one is Ready."""
    out = Outcome(state)
    at = now_rfc3339(now)
    s = state
    held = hold_active(s, generation)
    rb_from = (s.rollback or {}).get("from") if held else None
    if held and target == rb_from:
        target = None
    # a pinned version that failed verification: abort instead of rolling it out (held like any abort)
    if target_failed and s.stable is not None:
        failed_v, reason, msg = target_failed
        if (
            reason == Reason.VERIFICATION_FAILED
            and failed_v != s.stable
            and not (held and failed_v == rb_from)
        ):
            abort(out, from_version=failed_v, reason=reason, message=msg, now=now, generation=generation)
            return _bake(out, cfg, now, investigating)
    if s.stable is None:
        if target is not None:
            out.state = replace(s, stable=target, promoted_at=at)
            out.history.append({"action": "Deployed", "version": target, "at": at})
            out.events.append(("Normal", "Deployed", f"serving v{target}"))
        return out
    if target is None or target == s.stable:
        if s.canary is not None:
            out.events.append(
                ("Normal", "CanaryCancelled", f"canary v{s.canary} cancelled: spec points at v{s.stable}")
            )
            out.state = replace(
                s, canary=None, weight=None, step=None, step_started_at=None, analysis_failures=0
            )
        return _bake(out, cfg, now, investigating)
    if target != s.canary:
        if cfg.strategy == "Recreate" or not cfg.steps:
            out.state = replace(
                s,
                stable=target,
                canary=None,
                weight=None,
                step=None,
                step_started_at=None,
                previous=None,
                promoted_at=at,
                analysis_failures=0,
            )
            out.history.append({"action": "Deployed", "version": target, "at": at})
            out.events.append(("Normal", "Deployed", f"replaced v{s.stable} with v{target} (Recreate)"))
            return out
        if s.previous is not None:
            out.events.append(("Normal", "BakeEnded", f"v{s.previous} removed: a new rollout starts"))
        out.state = replace(
            s,
            canary=target,
            step=0,
            weight=cfg.steps[0][0],
            step_started_at=at,
            previous=None,
            promoted_at=s.promoted_at,
            analysis_failures=0,
        )
        out.events.append(
            ("Normal", "CanaryStarted", f"canary v{target} at {cfg.steps[0][0]}% (step 1/{len(cfg.steps)})")
        )
        out.requeue_after = 1.0
        out.waiting = f"canary v{target} to become Ready"
        return out
    return _canary(out, cfg, canary_ready=canary_ready, analysis=analysis, now=now, generation=generation)


def _canary(
    out: Outcome,
    cfg: RolloutConfig,
    *,
    canary_ready: bool,
    analysis: AnalysisResult | None,
    now: datetime,
    generation: int,
) -> Outcome:
    s = out.state
    assert s.canary is not None
    step = min(int(s.step or 0), len(cfg.steps) - 1)
    _weight, pause = cfg.steps[step]
    since = elapsed(s.step_started_at, now)
    if not canary_ready:
        if since > cfg.progress_deadline:
            abort(
                out,
                from_version=s.canary,
                reason=Reason.PROGRESS_DEADLINE_EXCEEDED,
                message=f"canary v{s.canary} not Ready within {cfg.progress_deadline:g}s",
                now=now,
                generation=generation,
            )
            return out
        out.waiting = f"canary v{s.canary} to become Ready"
        out.requeue_after = max(1.0, min(10.0, cfg.progress_deadline - since + 0.5))
        return out
    if since < pause:
        out.waiting = f"pause of step {step + 1} ({pause:g}s)"
        out.requeue_after = max(0.5, pause - since + 0.1)
        return out
    if cfg.analysis is not None:
        if analysis is None:
            out.wants_analysis = True
            return out
        if analysis.verdict == "Fail":
            failures = s.analysis_failures + 1
            limit = int(cfg.analysis.get("failureLimit", 2))
            out.events.append(
                (
                    "Warning",
                    Reason.ANALYSIS_FAILED,
                    f"v{s.canary} step {step + 1}: {analysis.message} ({failures}/{limit})",
                )
            )
            if failures >= limit:
                abort(
                    out,
                    from_version=s.canary,
                    reason=Reason.ANALYSIS_FAILED,
                    message=analysis.message,
                    now=now,
                    generation=generation,
                )
                return out
            out.state = replace(s, analysis_failures=failures)
            out.requeue_after = max(1.0, pause)
            out.waiting = "the next analysis"
            return out
        if analysis.verdict == "Inconclusive":
            out.events.append(
                ("Normal", Reason.INCONCLUSIVE, f"v{s.canary} step {step + 1}: {analysis.message}")
            )
    at = now_rfc3339(now)
    if step + 1 < len(cfg.steps):
        w = cfg.steps[step + 1][0]
        out.state = replace(s, step=step + 1, weight=w, step_started_at=at, analysis_failures=0)
        out.events.append(
            ("Normal", "CanaryStep", f"canary v{s.canary} at {w}% (step {step + 2}/{len(cfg.steps)})")
        )
        out.requeue_after = 1.0
        return out
    out.state = replace(
        s,
        stable=s.canary,
        previous=s.stable,
        promoted_at=at,
        canary=None,
        weight=None,
        step=None,
        step_started_at=None,
        analysis_failures=0,
    )
    out.history.append({"action": "Promoted", "version": s.canary, "at": at})
    out.events.append(
        ("Normal", "Promoted", f"v{s.canary} promoted; v{s.stable} stays warm for {cfg.bake_seconds:g}s")
    )
    out.requeue_after = max(1.0, cfg.bake_seconds)
    return out


def _bake(out: Outcome, cfg: RolloutConfig, now: datetime, investigating: bool = False) -> Outcome:
    s = out.state
    if s.previous is None:
        return out
    since = elapsed(s.promoted_at, now)
    if bake_extended(cfg.bake_seconds, cfg.investigation_seconds, since, investigating):
        out.requeue_after = max(0.5, cfg.bake_seconds + cfg.investigation_seconds - since + 0.1)
        out.waiting = f"the drift investigation of v{s.stable}"
    elif since >= cfg.bake_seconds:
        out.events.append(("Normal", "BakeEnded", f"bake time over: v{s.previous} removed"))
        out.state = replace(s, previous=None)
    else:
        out.requeue_after = max(0.5, cfg.bake_seconds - since + 0.1)
    return out


def replicas_plan(state: RolloutState, total: int) -> dict[int, int]:
    """Replicas per served version: stable/canary split by weight, 1 for the baking previous version."""
    plan: dict[int, int] = {}
    if state.stable is None:
        return plan
    if state.canary is not None:
        stable, canary = split_replicas(total, int(state.weight or 0))
        plan[state.stable] = stable
        plan[state.canary] = canary
    else:
        plan[state.stable] = total
        if state.previous is not None and state.previous != state.stable:
            plan[state.previous] = 1
    return plan


def traffic_weights(state: RolloutState, total: int) -> dict[int, int]:
    """Exact weights for an HTTPRoute (percent per version)."""
    if state.stable is None:
        return {}
    if state.canary is not None:
        w = int(state.weight or 0)
        return {state.stable: 100 - w, state.canary: w}
    if state.previous is not None and state.previous != state.stable:
        share = max(1, math.floor(100 / (max(total, 1) + 1) + 0.5))
        return {state.stable: 100 - share, state.previous: share}
    return {state.stable: 100}
