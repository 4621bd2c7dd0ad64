"""The rollout's ``status.rollback`` and ``status.lastAnalysis`` blocks are read through their api/ models
(``RolloutState.from_status``) and written back as the same JSON; a stored block that does not parse is
read leniently (absent, or without the field that does not parse) and never breaks the reconcile."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from _operator_fixtures import isvc, mv, ready

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.inferenceservice import AnalysisSummary, RollbackRecord
from onnxops.api.v1alpha1.stored import read_block, read_list
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile.state import RolloutState, hold_active, rollback_current
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
RB = {
    "from": 2,
    "to": 1,
    "reason": "DriftDetected",
    "message": "psi 0.6",
    "at": "2026-01-01T11:00:00Z",
    "generation": 1,
    "scores": {"v2": 0.6, "v1": 0.1},
}
LAST = {
    "verdict": "Inconclusive",
    "message": "12 requests < minRequests 50",
    "version": 2,
    "step": 0,
    "at": "2026-01-01T11:59:00Z",
    "phase": "Shadow",
}


def _dumps(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


@pytest.mark.parametrize(
    "rollback",
    [RB, {k: v for k, v in RB.items() if k not in ("message", "scores")}],
)
@pytest.mark.parametrize("last", [LAST, {k: v for k, v in LAST.items() if k != "phase"}])
def test_stored_blocks_are_written_back_as_stored(rollback: dict[str, Any], last: dict[str, Any]) -> None:
    stored = {"stableVersion": 1, "rollback": rollback, "lastAnalysis": last}
    st = RolloutState.from_status(stored)
    assert isinstance(st.rollback, RollbackRecord) and isinstance(st.last_analysis, AnalysisSummary)
    assert st.rollback.from_version == 2 and st.rollback.to_version == 1 and st.rollback.generation == 1
    assert st.last_analysis.verdict == "Inconclusive" and st.last_analysis.step == 0
    out = st.to_status()
    assert _dumps(out["rollback"]) == _dumps(rollback)  # same keys, same JSON numbers
    assert _dumps(out["lastAnalysis"]) == _dumps(last)
    # key order too (what the dict writers produced)
    assert list(out["rollback"]) == [k for k in RB if k in rollback]
    assert list(out["lastAnalysis"]) == [k for k in LAST if k in last]


@pytest.mark.parametrize(
    "raw",
    [
        "rolled back",  # not an object
        [RB],
        {k: v for k, v in RB.items() if k != "generation"},  # a required field missing
        {**RB, "from": "two"},  # a required field that does not parse
        {**RB, "to": None},
    ],
)
def test_rollback_that_does_not_parse_is_absent(raw: Any) -> None:
    st = RolloutState.from_status({"stableVersion": 1, "rollback": raw})
    assert st.rollback is None
    assert not hold_active(st, 1) and not rollback_current(st, 1)
    assert st.to_status()["rollback"] is None  # the block's writer removes it


def test_rollback_field_that_does_not_parse_is_left_out() -> None:
    raw = {**RB, "message": {"not": "text"}, "scores": {"v2": "high", "v1": 0.1}, "extra": 1}
    st = RolloutState.from_status({"stableVersion": 1, "rollback": raw})
    assert st.rollback is not None
    assert st.rollback.message is None and st.rollback.scores == {"v1": 0.1}
    assert hold_active(st, 1) and rollback_current(st, 1) and not hold_active(st, 2)


@pytest.mark.parametrize(
    "raw",
    [
        42,
        {**LAST, "verdict": "Maybe"},  # an unknown verdict
        {k: v for k, v in LAST.items() if k != "at"},
        {**LAST, "step": -1},
    ],
)
def test_last_analysis_that_does_not_parse_is_absent(raw: Any) -> None:
    st = RolloutState.from_status({"stableVersion": 1, "canaryVersion": 2, "lastAnalysis": raw})
    assert st.last_analysis is None
    assert st.to_status()["lastAnalysis"] is None


def test_last_analysis_unknown_phase_is_left_out() -> None:
    st = RolloutState.from_status({"lastAnalysis": {**LAST, "phase": "Dark"}})
    assert st.last_analysis is not None and st.last_analysis.phase is None
    assert st.last_analysis.message == LAST["message"]


def _reconcile(status: dict[str, Any]) -> ir.IsvcPlan:
    obj = isvc(gen=1, status=status, rollout={"steps": [{"weight": 25, "pause": "1h"}], "bakeTime": "1h"})
    mvs = [mv(1), mv(2)]
    first = ir.reconcile(obj, mvs, [], settings=Settings(), now=T0)
    observed = [ready(c) if c["kind"] == "Deployment" else c for c in first.children]
    return ir.reconcile(obj, mvs, observed, settings=Settings(), now=T0)


@pytest.mark.parametrize("bad", [{"from": 2}, "x", {**RB, "generation": "one"}])
def test_reconcile_reads_a_broken_rollback_as_none(bad: Any) -> None:
    # v2 is what spec (latest) asks for; a stored rollback that does not parse holds nothing back
    plan = _reconcile({"stableVersion": 1, "promotedAt": "2026-01-01T10:00:00Z", "rollback": bad})
    assert plan.status["phase"] == "Progressing" and plan.status["canaryVersion"] == 2
    assert not cond.is_true(plan.status["conditions"], cond.DEGRADED)
    assert plan.status_patch["rollback"] is None  # removed by its writer


def test_reconcile_with_a_held_rollback_keeps_the_stored_block() -> None:
    plan = _reconcile({"stableVersion": 1, "promotedAt": "2026-01-01T10:00:00Z", "rollback": RB})
    assert plan.status["phase"] == "Degraded" and plan.status["canaryVersion"] is None
    assert plan.status["reason"] == "DriftDetected"
    assert "rolled back v2 -> v1: psi 0.6" in plan.status["message"]
    assert "rollback" not in plan.status_patch  # unchanged: nothing written


def test_reconcile_with_a_broken_last_analysis_does_not_crash() -> None:
    status = {
        "stableVersion": 1,
        "canaryVersion": 2,
        "canaryWeight": 25,
        "currentStep": 0,
        "stepStartedAt": "2026-01-01T11:59:30Z",
        "inconclusiveChecks": 1,
        "lastAnalysis": {**LAST, "verdict": 7, "phase": None},
    }
    plan = _reconcile(status)
    assert plan.status["canaryVersion"] == 2
    assert "held: analysis inconclusive ()" in plan.status["message"]
    assert plan.status_patch["lastAnalysis"] is None


def test_read_list_leaves_out_entries_that_do_not_parse() -> None:
    entries = [RB, {"from": 3}, "x", {**RB, "from": 4, "message": 5}]
    got = read_list(RollbackRecord, entries)
    assert got is not None and [e.from_version for e in got] == [2, 4]
    assert got[1].message is None
    assert read_list(RollbackRecord, {"from": 2}) is None and read_list(RollbackRecord, None) is None
    assert read_block(RollbackRecord, None) is None
