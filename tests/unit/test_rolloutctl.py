"""`onnxops promote | abort | pause | resume | status` (pure parts): what each command requests in
status.control, that repeating it writes nothing, and the readable status view."""

from __future__ import annotations

import pytest

from onnxops.rolloutctl import plan_request, render

CANARY = {"stableVersion": 1, "canaryVersion": 2, "canaryWeight": 20, "currentStep": 1}
AT = "2026-01-01T12:00:00Z"


@pytest.mark.parametrize(
    "action,status,kw,want_patch,want_msg",
    [
        ("promote", CANARY, {}, {"promote": {"version": 2, "step": 1, "by": "bob", "at": AT}}, "past step 2"),
        (
            "promote",
            CANARY,
            {"full": True},
            {"promote": {"version": 2, "step": 1, "by": "bob", "at": AT, "full": True}},
            "to stable",
        ),
        (
            "promote",
            {**CANARY, "control": {"promote": {"version": 2, "step": 1}}},
            {},
            None,
            "already requested",
        ),
        # --full after a plain promote of the same step is a new request (it asks for more)
        (
            "promote",
            {**CANARY, "control": {"promote": {"version": 2, "step": 1}}},
            {"full": True},
            {"promote": {"version": 2, "step": 1, "by": "bob", "at": AT, "full": True}},
            "to stable",
        ),
        (
            "promote",
            {**CANARY, "control": {"promote": {"version": 2, "step": 0}}},
            {},
            {"promote": {"version": 2, "step": 1, "by": "bob", "at": AT}},
            "past step 2",
        ),
        ("promote", {"stableVersion": 1}, {}, None, "nothing to promote"),
        (
            "abort",
            CANARY,
            {"reason": "bad"},
            {"abort": {"version": 2, "by": "bob", "at": AT, "reason": "bad"}},
            "keeps all traffic",
        ),
        ("abort", {**CANARY, "control": {"abort": {"version": 2}}}, {}, None, "already requested"),
        (
            "abort",
            {"stableVersion": 2, "previousVersion": 1},
            {},
            {"abort": {"version": 2, "by": "bob", "at": AT}},
            "abort of v2",
        ),
        (
            "abort",
            {"stableVersion": 1, "rollback": {"from": 2, "to": 1, "reason": "AbortedByUser"}},
            {},
            None,
            "already aborted",
        ),
        ("abort", {"stableVersion": 1}, {}, None, "nothing to abort"),
        ("pause", CANARY, {}, {"pause": {"version": 2, "by": "bob", "at": AT}}, "paused at step 2"),
        (
            "pause",
            {**CANARY, "control": {"pause": {"version": 2, "by": "al"}}},
            {},
            None,
            "already paused by al",
        ),
        ("resume", {**CANARY, "control": {"pause": {"version": 2}}}, {}, {"pause": None}, "resumed"),
        ("resume", CANARY, {}, None, "not paused"),
    ],
)
def test_plan_request(action, status, kw, want_patch, want_msg):
    patch, msg = plan_request(action, status, by="bob", at=AT, **kw)
    assert patch == want_patch
    assert want_msg in msg


def test_status_view_shows_steps_analysis_drift_and_performance():
    obj = {
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {
            "model": "iris",
            "rollout": {"steps": [{"weight": 20, "pause": "1m"}, {"weight": 50, "awaitPromotion": True}]},
        },
        "status": {
            **CANARY,
            "phase": "Progressing",
            "reason": "AwaitingPromotion",
            "effectiveCanaryWeight": 25,
            "lastAnalysis": {
                "verdict": "Pass",
                "message": "120 requests, 0 errors",
                "version": 2,
                "step": 1,
                "at": AT,
            },
            "drift": {"verdict": "NoDrift", "score": 0.05, "version": 1, "versions": {"1": 0.05, "2": 0.31}},
            "performance": {
                "metric": "accuracy",
                "verdict": "Healthy",
                "versions": {"1": {"value": 0.93, "labels": 200, "verdict": "Healthy"}},
            },
            "control": {"pause": {"version": 2, "by": "al"}},
            "history": [{"action": "Deployed", "version": 1, "at": AT}],
        },
    }
    view = render(obj)
    assert "Status:      Progressing / AwaitingPromotion" in view
    assert "Canary:      v2 at 20% (effective 25%), step 2/2" in view
    assert "done  1.  20%  pause 1m" in view
    assert ">>  2.  50%  no pause, then waits for `onnxops promote`   analysis Pass: 120 requests" in view
    assert "v1 0.05, v2 0.31" in view and "v1 0.93 (200 labels, Healthy)" in view
    assert "Commands:    pause v2 by al" in view and "Deployed v1" in view


def test_status_view_shows_the_shadow_phase():
    obj = {
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {
            "model": "iris",
            "rollout": {
                "shadow": {"duration": "5m", "sampleRate": 0.5},
                "steps": [{"weight": 20, "pause": "1m"}],
            },
        },
        "status": {
            "stableVersion": 1,
            "canaryVersion": 2,
            "canaryWeight": 0,
            "currentStep": 0,
            "shadow": True,
            "stepStartedAt": AT,
            "phase": "Progressing",
            "reason": "ShadowInProgress",
            "lastAnalysis": {
                "verdict": "Inconclusive",
                "message": "shadow: 3 mirrored requests",
                "version": 2,
                "step": 0,
                "phase": "Shadow",
                "at": AT,
            },
        },
    }
    view = render(obj)
    assert "Canary:      v2 in its shadow phase (mirrored requests only, no weight)" in view
    assert ">>  S. shadow 5m, 50% of requests mirrored, no weight   analysis Inconclusive: shadow: 3" in view
    assert "      1.  20%  pause 1m\n" in view + "\n"  # not current, and not the shadow's check
