"""Manual rollout control (issue 15): the step machine with manual gates, promote, abort, pause — a table
of pure decisions, plus what the InferenceService status shows (reason, Paused condition, status.control)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _operator_fixtures import isvc, mv, ready

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.inferenceservice import AnalysisSummary
from onnxops.builders.deployment import deployment
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile.analysis import AnalysisResult
from onnxops.reconcile.control import Control
from onnxops.reconcile.notifications import from_events
from onnxops.reconcile.rollout import RolloutConfig, RolloutState, advance
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
AT = "2026-01-01T12:00:00Z"
# step 1: 20 % for 10 s then a manual gate; step 2: 50 % for 10 s, automatic
GATED = RolloutConfig(
    steps=((20, 10.0), (50, 10.0)), analysis=None, bake_seconds=60, progress_deadline=30, gates=(True, False)
)
GATED_SLO = RolloutConfig(
    steps=((20, 10.0), (50, 10.0)),
    analysis={"failureLimit": 1},
    bake_seconds=60,
    progress_deadline=30,
    gates=(True, False),
)
CANARY = RolloutState(stable=1, canary=2, weight=20, step=0, step_started_at=AT)
PASS = AnalysisSummary(verdict="Pass", message="ok", version=2, step=0, at=AT)


def req(version: int = 2, **kw: Any) -> dict[str, Any]:
    return {"version": version, "by": "alice", "at": AT, **kw}


# (case, config, state, control, seconds since the step began, analysis) ->
# (canary, step, stable, gate, cleared requests, rollback reason, wants analysis)
CASES = [
    ("gate: pause still running", GATED, CANARY, Control(), 5, None, (2, 0, 1, None, set(), None, False)),
    (
        "gate: pause over, waits for a person",
        GATED,
        CANARY,
        Control(),
        11,
        None,
        (2, 0, 1, "AwaitingPromotion", set(), None, False),
    ),
    (
        "gate waits for hours (no timeout)",
        GATED,
        CANARY,
        Control(),
        86400,
        None,
        (2, 0, 1, "AwaitingPromotion", set(), None, False),
    ),
    (
        "gate with SLO: the check runs first",
        GATED_SLO,
        CANARY,
        Control(),
        11,
        None,
        (2, 0, 1, None, set(), None, True),
    ),
    (
        "gate with SLO: passed check, waits",
        GATED_SLO,
        CANARY,
        Control(),
        11,
        AnalysisResult("Pass", "ok"),
        (2, 0, 1, "AwaitingPromotion", set(), None, False),
    ),
    (
        "gate with SLO: passed earlier, no new check",
        GATED_SLO,
        RolloutState(**{**CANARY.__dict__, "last_analysis": PASS}),
        Control(),
        50,
        None,
        (2, 0, 1, "AwaitingPromotion", set(), None, False),
    ),
    (
        "gate with SLO: failing check still aborts",
        GATED_SLO,
        CANARY,
        Control(),
        11,
        AnalysisResult("Fail", "errors 9%"),
        (None, None, 1, None, set(), "AnalysisFailed", False),
    ),
    (
        "promote: next step",
        GATED,
        CANARY,
        Control(promote=req(step=0)),
        11,
        None,
        (2, 1, 1, None, {"promote", "pause"}, None, False),
    ),
    (
        "promote skips the rest of an automatic pause",
        GATED,
        CANARY,
        Control(promote=req(step=0)),
        1,
        None,
        (2, 1, 1, None, {"promote", "pause"}, None, False),
    ),
    (
        "promote --full: stable at once",
        GATED,
        CANARY,
        Control(promote=req(step=0, full=True)),
        11,
        None,
        (None, None, 2, None, {"promote", "pause"}, None, False),
    ),
    (
        "promote of the last step promotes",
        GATED,
        RolloutState(**{**CANARY.__dict__, "step": 1, "weight": 50}),
        Control(promote=req(step=1)),
        1,
        None,
        (None, None, 2, None, {"promote", "pause"}, None, False),
    ),
    (
        "promote for an older step: stale, dropped",
        GATED,
        RolloutState(**{**CANARY.__dict__, "step": 1, "weight": 50}),
        Control(promote=req(step=0)),
        1,
        None,
        (2, 1, 1, None, {"promote"}, None, False),
    ),
    (
        "promote for another version: stale, dropped",
        GATED,
        CANARY,
        Control(promote=req(version=7, step=0)),
        11,
        None,
        (2, 0, 1, "AwaitingPromotion", {"promote"}, None, False),
    ),
    (
        "promote waits for a Ready canary",
        GATED,
        CANARY,
        Control(promote=req(step=0)),
        -1,
        None,
        (2, 0, 1, None, set(), None, False),
    ),
    (
        "pause holds an automatic step",
        GATED,
        RolloutState(**{**CANARY.__dict__, "step": 1, "weight": 50}),
        Control(pause=req()),
        99,
        None,
        (2, 1, 1, "PausedByUser", set(), None, False),
    ),
    (
        "pause of another version: dropped",
        GATED,
        CANARY,
        Control(pause=req(version=9)),
        5,
        None,
        (2, 0, 1, None, {"pause"}, None, False),
    ),
    (
        "promote overrides a pause",
        GATED,
        CANARY,
        Control(promote=req(step=0), pause=req()),
        5,
        None,
        (2, 1, 1, None, {"promote", "pause"}, None, False),
    ),
    (
        "abort mid-canary: stable keeps 100 %",
        GATED,
        CANARY,
        Control(abort=req(reason="bad labels")),
        5,
        None,
        (None, None, 1, None, {"abort", "promote", "pause"}, "AbortedByUser", False),
    ),
    (
        "abort during the bake rolls back",
        GATED,
        RolloutState(stable=2, previous=1, promoted_at=AT),
        Control(abort=req()),
        5,
        None,
        (None, None, 1, None, {"abort", "promote", "pause"}, "AbortedByUser", False),
    ),
    (
        "abort with nothing to stop: dropped",
        GATED,
        RolloutState(stable=2),
        Control(abort=req()),
        5,
        None,
        (None, None, 2, None, {"abort"}, None, False),
    ),
]


@pytest.mark.parametrize("case,cfg,state,control,since,analysis,want", CASES, ids=[c[0] for c in CASES])
def test_step_machine_with_manual_control(case, cfg, state, control, since, analysis, want):
    target = 2 if state.canary is not None or state.stable == 1 else state.stable
    out = advance(
        state,
        cfg,
        target=target,
        target_failed=None,
        canary_ready=since >= 0,
        analysis=analysis,
        now=T0 + timedelta(seconds=max(since, 0)),
        generation=1,
        control=control,
    )
    s = out.state
    got = (
        s.canary,
        s.step,
        s.stable,
        out.gate,
        out.control_clear,
        s.rollback.reason if s.rollback else None,
        out.wants_analysis,
    )
    assert got == want, case
    if want[5] == "AbortedByUser":
        assert out.reject == [(2, "AbortedByUser")]
        why = ": bad labels" if control.abort.get("reason") else ""
        assert s.rollback is not None and s.rollback.message == "aborted by alice" + why
        assert s.weight is None  # no weight left to the aborted version


def test_abort_holds_until_spec_changes():
    """After `abort` the spec still names v2: the hold keeps it out (a new generation re-admits it)."""
    out = advance(
        CANARY,
        GATED,
        target=2,
        target_failed=None,
        canary_ready=True,
        analysis=None,
        now=T0,
        generation=1,
        control=Control(abort=req()),
    )
    again = advance(
        out.state,
        GATED,
        target=2,
        target_failed=None,
        canary_ready=True,
        analysis=None,
        now=T0 + timedelta(seconds=60),
        generation=1,
    )
    assert again.state.canary is None and again.state.stable == 1
    new_gen = advance(
        out.state,
        GATED,
        target=2,
        target_failed=None,
        canary_ready=True,
        analysis=None,
        now=T0 + timedelta(seconds=60),
        generation=2,
    )
    assert new_gen.state.canary == 2


def test_config_reads_await_promotion():
    cfg = RolloutConfig.from_spec(
        {"rollout": {"steps": [{"weight": 20, "awaitPromotion": True}, {"weight": 50, "pause": "1m"}]}}
    )
    assert cfg.gates == (True, False) and cfg.steps == ((20, 0.0), (50, 60.0))
    assert cfg.gated(0) and not cfg.gated(1) and not cfg.gated(5)


def _gated_isvc(status: dict[str, Any]) -> dict[str, Any]:
    rollout = {"steps": [{"weight": 20, "awaitPromotion": True}], "analysis": {"enabled": False}}
    return isvc(status=status, version=2, rollout=rollout)


def test_status_shows_the_gate_and_consumes_requests():
    status = {
        "stableVersion": 1,
        "canaryVersion": 2,
        "canaryWeight": 20,
        "currentStep": 0,
        "stepStartedAt": AT,
        "observedGeneration": 1,
        "reason": "CanaryInProgress",
    }
    obj = _gated_isvc(status)
    observed = [ready(deployment(obj, mv(v), n, Settings())) for v, n in ((1, 3), (2, 1))]
    plan = ir.reconcile(_gated_isvc(status), [mv(1), mv(2)], observed, settings=Settings(), now=T0)
    st = plan.status
    assert st["reason"] == "AwaitingPromotion" and st["phase"] == "Progressing"
    paused = cond.find(st["conditions"], cond.PAUSED)
    assert paused and paused["status"] == "True" and paused["reason"] == "AwaitingPromotion"
    assert "onnxops promote" in st["message"]
    assert ("Normal", "AwaitingPromotion", st["message"]) in plan.events
    assert "control" not in plan.status_patch  # the commands' field is left alone
    # the person promotes the only step: v2 is stable, the request is consumed in the same write
    status2 = {**st, "control": {"promote": req(step=0), "pause": req()}}
    plan = ir.reconcile(_gated_isvc(status2), [mv(1), mv(2)], observed, settings=Settings(), now=T0)
    assert plan.status["stableVersion"] == 2 and plan.status["canaryVersion"] is None
    assert plan.status_patch["control"] == {"promote": None, "pause": None}  # per key: nothing else goes
    assert cond.find(plan.status["conditions"], cond.PAUSED) is None
    assert [e[1] for e in plan.events][:2] == ["PromotedByUser", "Promoted"]


def test_approval_needed_is_announced_once_per_waiting_version():
    """Issue 15: `ApprovalNeeded` notifications come from an AwaitingApproval Event, posted when a version
    starts waiting for approval, not on every reconcile."""
    from test_governance import model as gov_model

    mvs = [mv(1), mv(2)]
    gated = gov_model(require=True, approved=(1,))
    status: dict[str, Any] = {}
    said = []
    for _ in range(3):  # three reconciles of the same situation
        plan = ir.reconcile(
            isvc(status=status, version="latest"), mvs, [], settings=Settings(), now=T0, model_obj=gated
        )
        status = plan.status
        said += [e for e in plan.events if e[1] == "AwaitingApproval"]
    assert status["stableVersion"] == 1
    assert len(said) == 1 and "v2 awaits approval" in said[0][2]
    assert from_events(isvc(), said, status, AT)[0].type == "ApprovalNeeded"
