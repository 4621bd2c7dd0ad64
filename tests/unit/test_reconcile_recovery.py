"""After an abort/rollback: the hold keeps the rejected version out, and the phase describes the present."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from _operator_fixtures import isvc, mv, ready

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.inferenceservice import RollbackRecord
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile.rollout import RolloutConfig, RolloutState, advance, rollback_current
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()
RB = {
    "from": 2,
    "to": 1,
    "reason": "DriftDetected",
    "message": "psi 0.6",
    "at": "2026-01-01T11:00:00Z",
    "generation": 1,
}


def _old_conditions() -> list[dict[str, Any]]:
    """What the rollback left: Degraded and Stalled True."""
    c: list[dict[str, Any]] = []
    for t in (cond.DEGRADED, cond.STALLED):
        c = cond.set_condition(c, t, True, "DriftDetected", "rolled back v2 -> v1", generation=1, now=T0)
    return c


def _reconcile(status: dict[str, Any], *, gen: int, mvs: list[dict[str, Any]]) -> ir.IsvcPlan:
    obj = isvc(
        gen=gen,
        status={"rejectedVersions": [REJ], **status, "rollback": RB, "conditions": _old_conditions()},
        rollout={"steps": [{"weight": 25, "pause": "1h"}], "bakeTime": "1h"},
    )
    first = ir.reconcile(obj, mvs, [], settings=S, now=T0)
    observed = [ready(c) if c["kind"] == "Deployment" else c for c in first.children]
    return ir.reconcile(obj, mvs, observed, settings=S, now=T0)


MVS = [mv(1), mv(2, rejected=True), mv(3)]
REJ = {"version": 2, "reason": "DriftDetected", "at": "2026-01-01T11:00:00Z", "generation": 1}


@pytest.mark.parametrize(
    "case,status,gen,mvs,phase,degraded,stalled",
    [
        # still serving the version it rolled back to: Degraded, Stalled (the story is the present)
        (
            "rolled back",
            {"stableVersion": 1, "promotedAt": "2026-01-01T10:00:00Z"},
            1,
            MVS[:2],
            "Degraded",
            True,
            True,
        ),
        # a newer version (a retrain's v3) is canarying: progressing, still degraded on v1, not stalled
        (
            "canary after rollback",
            {
                "stableVersion": 1,
                "canaryVersion": 3,
                "canaryWeight": 25,
                "currentStep": 0,
                "stepStartedAt": "2026-01-01T11:59:00Z",
            },
            1,
            MVS,
            "Progressing",
            True,
            False,
        ),
        # v3 promoted, v1 warm for the bake: the service is healthy on a newer version
        (
            "promoted, baking",
            {"stableVersion": 3, "previousVersion": 1, "promotedAt": "2026-01-01T11:59:00Z"},
            1,
            MVS,
            "Ready",
            False,
            False,
        ),
        # v3 promoted, bake over
        (
            "promoted",
            {"stableVersion": 3, "promotedAt": "2026-01-01T10:00:00Z"},
            1,
            MVS,
            "Ready",
            False,
            False,
        ),
        # spec changed: the hold is over
        (
            "spec changed",
            {"stableVersion": 1, "promotedAt": "2026-01-01T10:00:00Z"},
            2,
            MVS[:2],
            "Ready",
            False,
            False,
        ),
    ],
)
def test_phase_after_rollback(case, status, gen, mvs, phase, degraded, stalled):
    plan = _reconcile(status, gen=gen, mvs=mvs)
    st = plan.status
    assert st["phase"] == phase, (case, st["message"])
    assert cond.is_true(st["conditions"], cond.READY), case
    assert cond.is_true(st["conditions"], cond.DEGRADED) is degraded, case
    assert cond.is_true(st["conditions"], cond.STALLED) is stalled, case
    assert st["rollback"] == RB  # the historical record stays
    if not degraded:
        assert "rolled back" not in st["message"]
        assert cond.find(st["conditions"], cond.DEGRADED) is None
        assert cond.find(st["conditions"], cond.STALLED) is None


def test_recovered_service_still_keeps_the_rejected_version_out():
    # a crash lost the ModelVersion's rejected mark: the hold marks it again, even after v3's promotion
    plan = _reconcile(
        {"stableVersion": 3, "promotedAt": "2026-01-01T10:00:00Z"}, gen=1, mvs=[mv(1), mv(2), mv(3)]
    )
    assert plan.reject == [("iris-v2", "DriftDetected")]
    assert plan.status["phase"] == "Ready" and plan.status["canaryVersion"] is None
    # and the rejected version, pinned while the generation is unchanged, does not come back
    recovered = RolloutState(stable=3, rollback=RollbackRecord.model_validate(RB))
    out = advance(
        recovered,
        RolloutConfig(),
        target=2,
        target_failed=None,
        canary_ready=False,
        analysis=None,
        now=T0,
        generation=1,
    )
    assert out.state.canary is None and out.state.stable == 3


@pytest.mark.parametrize(
    "stable,gen,current",
    [(1, 1, True), (3, 1, False), (1, 2, False), (None, 1, True)],
)
def test_rollback_current(stable, gen, current):
    rb = RollbackRecord.model_validate(RB)
    assert rollback_current(RolloutState(stable=stable, rollback=rb), gen) is current
