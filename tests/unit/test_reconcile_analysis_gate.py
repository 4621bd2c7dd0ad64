"""Issue 22: an inconclusive analysis never promotes by default; the analysis is on unless switched off.

The step machine as a table: (onInconclusive, inconclusiveLimit, checks so far, verdict) -> what the step
does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _operator_fixtures import isvc, mv, ready

from onnxops.api import conditions as cond
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile.analysis import AnalysisResult, RequestStats, analysis_config, assess
from onnxops.reconcile.rollout import RolloutConfig, RolloutState, advance
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()
INCONCLUSIVE = AnalysisResult("Inconclusive", "3 requests < minRequests 50")
PASS = AnalysisResult("Pass", "error rate 0.0000, p99 4.0ms over 400 requests")
FAIL = AnalysisResult("Fail", "error rate 0.5000 > 0.01 over 400 requests")


def _cfg(
    mode: str = "Pause", limit: int = 3, steps: tuple[tuple[int, float], ...] = ((50, 0.0),)
) -> RolloutConfig:
    acfg = analysis_config({"onInconclusive": mode, "inconclusiveLimit": limit, "failureLimit": 2})
    return RolloutConfig(steps=steps, analysis=acfg, bake_seconds=0, progress_deadline=600)


def _canary(checks: int = 0, failures: int = 0) -> RolloutState:
    return RolloutState(
        stable=1,
        canary=2,
        weight=50,
        step=0,
        step_started_at="2026-01-01T11:59:00Z",
        inconclusive_checks=checks,
        analysis_failures=failures,
    )


def _adv(state: RolloutState, cfg: RolloutConfig, analysis: AnalysisResult | None, now: datetime = T0) -> Any:
    return advance(
        state, cfg, target=2, target_failed=None, canary_ready=True, analysis=analysis, now=now, generation=7
    )


@pytest.mark.parametrize(
    "mode,limit,checks,result,expect,checks_after,reason",
    [
        # Pause (the default): the step holds and counts, then aborts at the limit
        ("Pause", 3, 0, INCONCLUSIVE, "hold", 1, None),
        ("Pause", 3, 1, INCONCLUSIVE, "hold", 2, None),
        ("Pause", 3, 2, INCONCLUSIVE, "abort", 0, "AnalysisInconclusive"),
        ("Pause", 0, 99, INCONCLUSIVE, "hold", 100, None),  # 0: no limit, holds until spec changes
        # evidence ends the hold either way
        ("Pause", 3, 2, PASS, "promote", 0, None),
        ("Pause", 3, 2, FAIL, "hold", 0, None),  # the first failure of failureLimit 2; counts reset
        # the other behaviours
        ("Promote", 3, 0, INCONCLUSIVE, "promote", 0, None),
        ("Abort", 3, 0, INCONCLUSIVE, "abort", 0, "AnalysisInconclusive"),
        ("Abort", 3, 0, PASS, "promote", 0, None),
    ],
)
def test_inconclusive_step_table(
    mode: str,
    limit: int,
    checks: int,
    result: AnalysisResult,
    expect: str,
    checks_after: int,
    reason: str | None,
) -> None:
    out = _adv(_canary(checks), _cfg(mode, limit), result)
    st = out.state
    if expect == "hold":
        assert (st.stable, st.canary, st.step) == (1, 2, 0) and st.rollback is None
        assert out.requeue_after is not None and out.requeue_after >= 10  # one check per window
    elif expect == "promote":
        assert (st.stable, st.canary, st.previous) == (2, None, 1)
        assert [h["action"] for h in out.history] == ["Promoted"]
    else:
        assert (st.stable, st.canary) == (1, None)
        assert st.rollback is not None
        assert st.rollback.reason == reason and st.rollback.from_version == 2 and st.rollback.to_version == 1
        assert st.rollback.generation == 7  # status-only, holds until spec changes
        assert out.reject == [(2, reason)]
    assert st.inconclusive_checks == checks_after
    if expect != "promote" or result is not INCONCLUSIVE:
        assert (st.last_analysis.verdict if st.last_analysis else None) in (None, result.verdict)


def test_inconclusive_hold_does_not_remeasure_before_the_next_window() -> None:
    cfg = _cfg("Pause", 10)
    held = _adv(_canary(), cfg, INCONCLUSIVE).state
    # a wake-up 3 s later (a Deployment event) does not measure again: the limit counts windows
    out = _adv(held, cfg, None, T0 + timedelta(seconds=3))
    assert not out.wants_analysis and out.state == held and 6 < (out.requeue_after or 0) <= 7.5
    out = _adv(held, cfg, None, T0 + timedelta(seconds=10))
    assert out.wants_analysis


def test_old_behaviour_promoted_without_evidence_now_holds() -> None:
    """The default config from an InferenceService without any analysis block."""
    cfg = RolloutConfig.from_spec({"model": "iris", "rollout": {"steps": [{"weight": 50}]}})
    assert cfg.analysis is not None and cfg.analysis["onInconclusive"] == "Pause"
    out = _adv(_canary(), cfg, assess(None, cfg.analysis))  # metrics source down
    assert out.state.canary == 2 and out.state.stable == 1 and out.state.inconclusive_checks == 1
    out = _adv(_canary(), cfg, assess(RequestStats(12, 0, 3.0), cfg.analysis))  # too few requests
    assert out.state.last_analysis is not None
    assert out.state.canary == 2 and "12 requests < minRequests 50" in out.state.last_analysis.message


@pytest.mark.parametrize(
    "spec,enabled,min_requests",
    [
        ({"model": "iris"}, True, 50),  # no rollout at all: default analysis
        ({"model": "iris", "rollout": {}}, True, 50),
        ({"model": "iris", "rollout": {"analysis": {"minRequests": 5}}}, True, 5),
        ({"model": "iris", "rollout": {"analysis": {"enabled": False}}}, False, None),
    ],
)
def test_analysis_is_on_unless_switched_off(
    spec: dict[str, Any], enabled: bool, min_requests: int | None
) -> None:
    cfg = RolloutConfig.from_spec(spec)
    assert (cfg.analysis is not None) == enabled
    if cfg.analysis is not None:
        assert cfg.analysis["minRequests"] == min_requests
        assert (cfg.analysis["maxErrorRate"], cfg.analysis["maxLatencyP99Ms"]) == (0.01, 500)


def test_opted_out_analysis_promotes_after_the_pause() -> None:
    cfg = RolloutConfig.from_spec(
        {"model": "iris", "rollout": {"steps": [{"weight": 50}], "analysis": {"enabled": False}}}
    )
    out = _adv(_canary(), cfg, None)
    assert not out.wants_analysis and out.state.stable == 2


def test_held_step_shows_in_status_condition_and_reason() -> None:
    rollout = {"steps": [{"weight": 50, "pause": "0s"}], "analysis": {"inconclusiveLimit": 4}}
    status = {
        "stableVersion": 1,
        "canaryVersion": 2,
        "canaryWeight": 50,
        "currentStep": 0,
        "stepStartedAt": "2026-01-01T11:59:00Z",
    }
    obj = isvc(replicas=2, rollout=rollout, status=status)
    from onnxops.builders.deployment import deployment

    observed = [ready(deployment(obj, mv(1), 1, S)), ready(deployment(obj, mv(2), 1, S))]
    plan = ir.reconcile(obj, [mv(1), mv(2)], observed, settings=S, now=T0)
    assert plan.wants_analysis
    plan = ir.reconcile(obj, [mv(1), mv(2)], observed, settings=S, now=T0, analysis=INCONCLUSIVE)
    st = plan.status
    assert st["canaryVersion"] == 2 and st["phase"] == "Progressing"
    assert st["reason"] == "AnalysisInconclusive" and st["inconclusiveChecks"] == 1
    c = cond.find(st["conditions"], cond.ANALYSIS_INCONCLUSIVE)
    assert c and c["status"] == "True" and "minRequests 50" in c["message"]
    assert "inconclusive" in st["message"]
    assert any(e[1] == "AnalysisInconclusive" for e in plan.events)
    # evidence arrives: the step moves on and the condition goes away
    obj["status"] = {k: v for k, v in st.items() if v is not None}
    plan = ir.reconcile(
        obj, [mv(1), mv(2)], observed, settings=S, now=T0 + timedelta(seconds=11), analysis=PASS
    )
    assert plan.status["stableVersion"] == 2
    assert cond.find(plan.status["conditions"], cond.ANALYSIS_INCONCLUSIVE) is None
