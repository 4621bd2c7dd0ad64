"""The rollout state machine of an InferenceService (pure): canary steps, promotion, bake, abort, hold.

State lives in ``status`` (see :mod:`onnxops.reconcile.state`); every call derives the next state from it
and from what is observed, so a restarted operator continues where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from onnxops.api.conditions import Reason, now_rfc3339
from onnxops.api.v1alpha1.inferenceservice import AnalysisSummary, InferenceServiceSpec, Rollout

from . import defaults
from .analysis import AnalysisResult, analysis_config, recheck_seconds
from .bake import bake_extended as bake_extended
from .bake import drift_investigating as drift_investigating
from .bake import investigation_seconds
from .control import Control, describe, matches, who
from .durations import elapsed as elapsed
from .durations import parse_duration as parse_duration
from .durations import parse_time as parse_time
from .shadow import PHASE as SHADOW_PHASE
from .shadow import shadow_config
from .state import Outcome as Outcome
from .state import RolloutState as RolloutState
from .state import abort as abort
from .state import hold_active as hold_active
from .state import rollback_current as rollback_current
from .traffic import replicas_plan as replicas_plan
from .traffic import split_replicas as split_replicas
from .traffic import traffic_weights as traffic_weights


@dataclass(frozen=True)
class RolloutConfig:
    strategy: str = defaults.ROLLOUT_STRATEGY
    steps: tuple[tuple[int, float], ...] = defaults.ROLLOUT_STEPS
    analysis: dict[str, Any] | None = None
    bake_seconds: float = defaults.BAKE_SECONDS
    progress_deadline: float = defaults.PROGRESS_DEADLINE_SECONDS
    # how long a drift investigation of a promoted version may extend its bake: failureLimit x interval
    investigation_seconds: float = 0.0
    # per step: wait for `onnxops promote` once the pause (and its analysis) is over
    gates: tuple[bool, ...] = ()
    # spec.rollout.shadow with defaults (reconcile/shadow.py): the rollout starts with a shadow phase
    shadow: dict[str, Any] | None = None

    @classmethod
    def from_spec(cls, spec: InferenceServiceSpec | Mapping[str, Any]) -> RolloutConfig:
        """The config of ``spec`` (typed; a dict, e.g. a test's spec fragment, is parsed first and read as
        stored where :meth:`of` reads the stored spec)."""
        if isinstance(spec, InferenceServiceSpec):
            return cls.of(spec, spec.to_dict())
        return cls.of(defaults.spec_of(spec), spec)

    @classmethod
    def of(cls, spec: InferenceServiceSpec, raw: Mapping[str, Any]) -> RolloutConfig:
        """From the typed spec (the API's defaults come with it); the canary's and the shadow's
        thresholds are read from ``raw``, the spec as stored, as the user wrote them (their numbers are
        quoted in status messages)."""
        r = spec.rollout or Rollout()
        raw_rollout = raw.get("rollout") or {}
        return cls(
            strategy=r.strategy,
            steps=tuple((s.weight, parse_duration(s.pause)) for s in r.steps),
            analysis=analysis_config(raw_rollout.get("analysis")),
            bake_seconds=parse_duration(r.bake_time),
            progress_deadline=parse_duration(r.progress_deadline),
            investigation_seconds=investigation_seconds(spec),
            gates=tuple(bool(s.await_promotion) for s in r.steps),
            shadow=shadow_config(raw),
        )

    def gated(self, step: int) -> bool:
        return step < len(self.gates) and self.gates[step]


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
    control: Control | None = None,
) -> Outcome:
    """One step of the state machine. ``target`` is the resolved servable version (None: nothing new);
    ``target_failed`` = (version, reason, message) when the version spec.version pins cannot be served;
    ``investigating``: the stable version has an open drift breach and the previous one is Ready;
    ``control``: a person's requests (status.control: promote, abort, pause)."""
    ctl = control or Control()
    out = _advance(
        state,
        cfg,
        target=target,
        target_failed=target_failed,
        canary_ready=canary_ready,
        analysis=analysis,
        now=now,
        generation=generation,
        investigating=investigating,
        ctl=ctl,
    )
    _drop_stale(out, ctl)
    return out


def _drop_stale(out: Outcome, ctl: Control) -> None:
    """Requests that no longer name the current canary (and step) are dropped, with an Event."""
    s = out.state
    for key in ("promote", "abort", "pause"):
        req = ctl.get(key)
        if req is None or key in out.control_clear:
            continue
        if key == "promote":
            stale = not matches(req, s.canary, s.step)
        elif key == "abort":
            stale = True  # an abort that _advance did not act on names nothing it can stop
        else:
            stale = not matches(req, s.canary)
        if stale:
            out.control_clear.add(key)
            if key != "pause":
                out.events.append(
                    (
                        "Normal",
                        "ControlIgnored",
                        f"{describe(key, req)} ignored: the rollout it was for is over",
                    )
                )


def _advance(
    state: RolloutState,
    cfg: RolloutConfig,
    *,
    target: int | None,
    target_failed: tuple[int, str, str] | None,
    canary_ready: bool,
    analysis: AnalysisResult | None,
    now: datetime,
    generation: int,
    investigating: bool,
    ctl: Control,
) -> Outcome:
    out = Outcome(state)
    at = now_rfc3339(now)
    s = state
    held = hold_active(s, generation)
    rb_from = s.rollback.from_version if held and s.rollback is not None else None
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
    # `onnxops abort`: the canary (or, during the bake, the just promoted version) is rolled back like an
    # automatic abort: status-only, held until spec changes
    req = ctl.abort
    if req is not None and (
        matches(req, s.canary) or (s.canary is None and s.previous is not None and matches(req, s.stable))
    ):
        why = f": {req['reason']}" if req.get("reason") else ""
        abort(
            out,
            from_version=int(req["version"]),
            reason=Reason.ABORTED_BY_USER,
            message=f"aborted{who(req)}{why}",
            now=now,
            generation=generation,
        )
        out.control_clear |= {"abort", "promote", "pause"}
        return out
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
                s,
                canary=None,
                weight=None,
                step=None,
                step_started_at=None,
                analysis_failures=0,
                inconclusive_checks=0,
                shadow=False,
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
                inconclusive_checks=0,
                shadow=False,
            )
            out.history.append({"action": "Deployed", "version": target, "at": at})
            out.events.append(("Normal", "Deployed", f"replaced v{s.stable} with v{target} (Recreate)"))
            return out
        if s.previous is not None:
            out.events.append(("Normal", "BakeEnded", f"v{s.previous} removed: a new rollout starts"))
        if cfg.shadow is not None:
            return _start_shadow(out, cfg, target, at)
        out.state = replace(
            s,
            canary=target,
            step=0,
            weight=cfg.steps[0][0],
            step_started_at=at,
            previous=None,
            promoted_at=s.promoted_at,
            analysis_failures=0,
            inconclusive_checks=0,
        )
        out.events.append(
            ("Normal", "CanaryStarted", f"canary v{target} at {cfg.steps[0][0]}% (step 1/{len(cfg.steps)})")
        )
        out.requeue_after = 1.0
        out.waiting = f"canary v{target} to become Ready"
        return out
    return _canary(
        out, cfg, canary_ready=canary_ready, analysis=analysis, now=now, generation=generation, ctl=ctl
    )


def _gate_passed(s: RolloutState, cfg: RolloutConfig, step: int) -> bool:
    """The gated step's own check already passed (or there is none): only a person moves it on."""
    if cfg.analysis is None:
        return True
    last = s.last_analysis
    mode = str(cfg.analysis.get("onInconclusive", "Pause"))
    ok = ("Pass", "Inconclusive") if mode == "Promote" else ("Pass",)
    return (
        last is not None
        and last.version == s.canary
        and last.step == step
        and last.verdict in ok
        and last.phase is None
    )


def _canary(
    out: Outcome,
    cfg: RolloutConfig,
    *,
    canary_ready: bool,
    analysis: AnalysisResult | None,
    now: datetime,
    generation: int,
    ctl: Control | None = None,
) -> Outcome:
    ctl = ctl or Control()
    s = out.state
    assert s.canary is not None
    if s.shadow and cfg.shadow is None:  # spec.rollout.shadow removed during the phase
        return _end_shadow(out, cfg, now, "ended: spec.rollout.shadow was removed")
    if s.shadow and cfg.shadow is not None:
        return _shadow(
            out, cfg, canary_ready=canary_ready, analysis=analysis, now=now, generation=generation, ctl=ctl
        )
    step = min(int(s.step or 0), len(cfg.steps) - 1)
    _weight, pause = cfg.steps[step]
    since = elapsed(s.step_started_at, now)
    if not canary_ready:
        return _not_ready(out, cfg, since, now, generation)
    req = ctl.promote
    if matches(req, s.canary, step):
        assert req is not None
        out.control_clear |= {"promote", "pause"}
        by = who(req)
        if req.get("full") or step + 1 >= len(cfg.steps):
            out.events.append(
                (
                    "Normal",
                    "PromotedByUser",
                    f"canary v{s.canary} promoted{by} "
                    f"(from step {step + 1}/{len(cfg.steps)}, remaining steps skipped)",
                )
            )
            return _promote(out, cfg, now)
        return _next_step(out, cfg, step, now, by=f", promoted{by}")
    if matches(ctl.pause, s.canary):
        assert ctl.pause is not None
        out.gate = Reason.PAUSED_BY_USER
        out.waiting = f"`onnxops resume` (paused{who(ctl.pause)})"
        return out
    gated = cfg.gated(step)
    if gated and since >= pause and _gate_passed(s, cfg, step):
        out.gate = Reason.AWAITING_PROMOTION
        out.waiting = f"`onnxops promote` (step {step + 1}/{len(cfg.steps)} is a manual gate)"
        return out
    if since < pause:
        out.waiting = f"pause of step {step + 1} ({pause:g}s)"
        out.requeue_after = max(0.5, pause - since + 0.1)
        return out
    if cfg.analysis is not None and not _judge(out, cfg.analysis, analysis, step, pause, now, generation):
        return out
    if gated:
        out.gate = Reason.AWAITING_PROMOTION
        out.waiting = f"`onnxops promote` (step {step + 1}/{len(cfg.steps)} is a manual gate)"
        return out
    if step + 1 < len(cfg.steps):
        return _next_step(out, cfg, step, now)
    return _promote(out, cfg, now)


def _not_ready(out: Outcome, cfg: RolloutConfig, since: float, now: datetime, generation: int) -> Outcome:
    """The canary (or shadow) is not Ready yet: wait, up to the progress deadline, then abort."""
    s = out.state
    assert s.canary is not None
    what = "shadow" if s.shadow else "canary"
    if since > cfg.progress_deadline:
        abort(
            out,
            from_version=s.canary,
            reason=Reason.PROGRESS_DEADLINE_EXCEEDED,
            message=f"{what} v{s.canary} not Ready within {cfg.progress_deadline:g}s",
            now=now,
            generation=generation,
        )
        return out
    out.waiting = f"{what} v{s.canary} to become Ready"
    out.requeue_after = max(1.0, min(10.0, cfg.progress_deadline - since + 0.5))
    return out


def _start_shadow(out: Outcome, cfg: RolloutConfig, target: int, at: str) -> Outcome:
    """A new version starts in its shadow phase: deployed, mirrored to, no traffic, no weight."""
    assert cfg.shadow is not None
    s = out.state
    out.state = replace(
        s,
        canary=target,
        step=0,
        weight=0,
        step_started_at=at,
        previous=None,
        analysis_failures=0,
        inconclusive_checks=0,
        shadow=True,
    )
    rate, secs = float(cfg.shadow["sampleRate"]), float(cfg.shadow["durationSeconds"])
    out.events.append(
        (
            "Normal",
            "ShadowStarted",
            f"shadow v{target}: {rate:.0%} of v{s.stable}'s requests "
            f"mirrored for {secs:g}s, no traffic, no weight",
        )
    )
    out.requeue_after = 1.0
    out.waiting = f"shadow v{target} to become Ready"
    return out


def _end_shadow(out: Outcome, cfg: RolloutConfig, now: datetime, why: str) -> Outcome:
    """The shadow passed (or a person moved it on): the canary steps begin."""
    s = out.state
    w = cfg.steps[0][0]
    out.state = replace(
        s,
        shadow=False,
        step=0,
        weight=w,
        step_started_at=now_rfc3339(now),
        analysis_failures=0,
        inconclusive_checks=0,
    )
    out.events.append(("Normal", "ShadowPassed", f"shadow v{s.canary} {why}"))
    out.events.append(
        ("Normal", "CanaryStarted", f"canary v{s.canary} at {w}% (step 1/{len(cfg.steps)}) after its shadow")
    )
    out.requeue_after = 1.0
    return out


def _shadow(
    out: Outcome,
    cfg: RolloutConfig,
    *,
    canary_ready: bool,
    analysis: AnalysisResult | None,
    now: datetime,
    generation: int,
    ctl: Control,
) -> Outcome:
    """The shadow phase: wait for its pods, mirror for ``duration``, then judge it once (a failure aborts
    before any weight; inconclusive follows onInconclusive). `onnxops promote` ends it (``--full``:
    promotes), `pause` holds it, `abort` rolls it back like a canary."""
    s, scfg = out.state, cfg.shadow
    assert s.canary is not None and scfg is not None
    since = elapsed(s.step_started_at, now)
    if not canary_ready:
        return _not_ready(out, cfg, since, now, generation)
    req = ctl.promote
    if matches(req, s.canary, 0):
        assert req is not None
        out.control_clear |= {"promote", "pause"}
        if req.get("full"):
            out.events.append(
                (
                    "Normal",
                    "PromotedByUser",
                    f"shadow v{s.canary} promoted{who(req)} (shadow and every step skipped)",
                )
            )
            return _promote(out, cfg, now)
        return _end_shadow(out, cfg, now, f"ended by a person{who(req)}")
    if matches(ctl.pause, s.canary):
        assert ctl.pause is not None
        out.gate = Reason.PAUSED_BY_USER
        out.waiting = f"`onnxops resume` (paused{who(ctl.pause)})"
        return out
    duration = float(scfg["durationSeconds"])
    if since < duration:
        out.waiting = f"the shadow's {duration:g}s of mirrored traffic"
        out.requeue_after = max(0.5, duration - since + 0.1)
        return out
    if not _judge(
        out,
        scfg,
        analysis,
        0,
        duration,
        now,
        generation,
        fail_reason=Reason.SHADOW_FAILED,
        phase=SHADOW_PHASE,
    ):
        return out
    last = out.state.last_analysis  # the check _judge just recorded
    return _end_shadow(
        out,
        cfg,
        now,
        "passed: " + (last.message if last is not None else "")
        if last is not None and last.verdict == "Pass"
        else "inconclusive: moving on (onInconclusive: Promote)",
    )


def _next_step(out: Outcome, cfg: RolloutConfig, step: int, now: datetime, *, by: str = "") -> Outcome:
    s = out.state
    w = cfg.steps[step + 1][0]
    out.state = replace(
        s,
        step=step + 1,
        weight=w,
        step_started_at=now_rfc3339(now),
        analysis_failures=0,
        inconclusive_checks=0,
    )
    out.events.append(
        ("Normal", "CanaryStep", f"canary v{s.canary} at {w}% (step {step + 2}/{len(cfg.steps)}){by}")
    )
    out.requeue_after = 1.0
    return out


def _promote(out: Outcome, cfg: RolloutConfig, now: datetime) -> Outcome:
    s = out.state
    at = now_rfc3339(now)
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
        inconclusive_checks=0,
        shadow=False,
    )
    out.history.append({"action": "Promoted", "version": s.canary, "at": at})
    out.events.append(
        ("Normal", "Promoted", f"v{s.canary} promoted; v{s.stable} stays warm for {cfg.bake_seconds:g}s")
    )
    out.requeue_after = max(1.0, cfg.bake_seconds)
    return out


def _judge(
    out: Outcome,
    acfg: dict[str, Any],
    analysis: AnalysisResult | None,
    step: int,
    pause: float,
    now: datetime,
    generation: int,
    *,
    fail_reason: str = Reason.ANALYSIS_FAILED,
    phase: Literal["Shadow"] | None = None,
) -> bool:
    """The SLO gate of a step whose pause is over: True moves on. Fail counts towards failureLimit; an
    Inconclusive check holds the step (Pause, up to inconclusiveLimit), moves on (Promote) or aborts.
    ``phase``: "Shadow" for the shadow phase's check (recorded in status.lastAnalysis.phase)."""
    s = out.state
    assert s.canary is not None
    last = s.last_analysis
    again = recheck_seconds(pause)
    if analysis is None:
        since_last = elapsed(last.at if last is not None else None, now)
        if (
            last is not None
            and last.verdict in ("Fail", "Inconclusive")
            and last.version == s.canary
            and last.step == step
            and last.phase == phase
            and since_last < again
        ):  # one check per window: the limits count windows, not reconcile wake-ups
            out.requeue_after = max(0.5, again - since_last + 0.1)
            out.waiting = "the next analysis"
            return False
        out.wants_analysis = True
        return False
    record = AnalysisSummary(
        verdict=analysis.verdict,
        message=analysis.message[:1024],
        version=s.canary,
        step=step,
        at=now_rfc3339(now),
        phase=phase or None,
    )
    canary = s.canary
    s = out.state = replace(s, last_analysis=record)
    where = f"shadow v{s.canary}" if phase else f"v{s.canary} step {step + 1}"
    if analysis.verdict == "Fail":
        failures = s.analysis_failures + 1
        limit = int(acfg.get("failureLimit", 2))
        out.events.append(("Warning", fail_reason, f"{where}: {analysis.message} ({failures}/{limit})"))
        if failures >= limit:
            abort(
                out,
                from_version=canary,
                reason=fail_reason,
                message=analysis.message,
                now=now,
                generation=generation,
            )
            return False
        out.state = replace(s, analysis_failures=failures, inconclusive_checks=0)
        out.requeue_after = again
        out.waiting = "the next analysis"
        return False
    if analysis.verdict == "Inconclusive":
        mode = str(acfg.get("onInconclusive", "Pause"))
        if mode == "Promote":
            out.events.append(("Normal", Reason.INCONCLUSIVE, f"{where}: {analysis.message}; moving on"))
            return True
        checks = s.inconclusive_checks + 1
        limit = int(acfg.get("inconclusiveLimit", 10))
        if mode == "Abort" or (limit and checks >= limit):
            count = "" if mode == "Abort" else f" ({checks} checks in a row)"
            abort(
                out,
                from_version=canary,
                reason=Reason.ANALYSIS_INCONCLUSIVE,
                message=f"analysis inconclusive{count}: {analysis.message}",
                now=now,
                generation=generation,
            )
            return False
        if checks == 1:
            out.events.append(("Warning", Reason.ANALYSIS_INCONCLUSIVE, f"{where} holds: {analysis.message}"))
        out.state = replace(s, inconclusive_checks=checks)
        out.requeue_after = again
        out.waiting = f"conclusive analysis ({checks}/{limit or 'no limit'}: {analysis.message})"
        return False
    return True


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
