"""A ModelVersion's and a Model's stored status are read once as ``ModelVersionStatus`` / ``ModelStatus``
(``Parsed*.observed``); the new status is compared with the stored dict as before; what does not parse
is read as unset, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from _operator_fixtures import mv

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.model import ModelStatus, ParsedModel
from onnxops.api.v1alpha1.modelversion import ModelVersionStatus, ParsedModelVersion
from onnxops.reconcile import governance as gr
from onnxops.reconcile import modelversion as mvr
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()
BLOCKED = {
    "type": "DeletionBlocked",
    "status": "True",
    "reason": "ServedByInferenceService",
    "message": "deletion waits: served by ml/a",
    "lastTransitionTime": "2026-01-01T11:00:00Z",
    "observedGeneration": 1,
}


def _mv(**status: Any) -> dict[str, Any]:
    m = mv(2, phase=None)
    return {**m, "status": status}


def test_model_version_status_reads_typed() -> None:
    p = ParsedModelVersion.parse(
        _mv(phase="Ready", message="verified", conditions=[BLOCKED], servedBy=["ml/a"])
    )
    st = p.observed
    assert st.phase == "Ready" and st.message == "verified" and st.served_by == ["ml/a"]
    assert st.condition("DeletionBlocked") is not None and st.condition("Ready") is None
    assert st.conditions_as_stored() == [BLOCKED]
    assert p.observed is st  # read once


@pytest.mark.parametrize(
    "raw,phase,conds",
    [
        ("Ready", None, 0),
        ({"phase": "Exploded", "conditions": [BLOCKED]}, None, 1),
        ({"phase": "Ready", "conditions": [{**BLOCKED, "status": "Sure"}, BLOCKED]}, "Ready", 1),
        ({"phase": "Failed", "conditions": "none", "servedBy": 3}, "Failed", 0),
    ],
)
def test_model_version_status_that_does_not_parse(raw: Any, phase: str | None, conds: int) -> None:
    st = ModelVersionStatus.read(raw)
    assert st.phase == phase and len(st.conditions) == conds


def test_a_ready_version_stays_ready_and_a_broken_phase_is_verified_again() -> None:
    ready = mvr.reconcile(_mv(phase="Ready", message="verified"), None, [], served_by=[], settings=S, now=T0)
    assert ready.status["phase"] == "Ready" and ready.job is None and ready.status["message"] == "verified"
    broken = mvr.reconcile(_mv(phase=["Ready"], message=5), None, [], served_by=[], settings=S, now=T0)
    assert broken.status["phase"] == "Verifying" and broken.job is not None  # read as unset: verify


def test_a_deletion_block_that_does_not_parse_is_not_kept() -> None:
    good = mvr.reconcile(_mv(phase="Ready", conditions=[BLOCKED]), None, [], served_by=[], settings=S, now=T0)
    assert cond.find(good.status["conditions"], "DeletionBlocked") is None  # nobody serves it: removed
    kept = mvr.reconcile(
        _mv(phase="Ready", conditions=[BLOCKED]), None, [], served_by=["ml/a"], settings=S, now=T0
    )
    assert cond.find(kept.status["conditions"], "DeletionBlocked") == BLOCKED  # as stored
    bad = {**BLOCKED, "lastTransitionTime": None}
    plan = mvr.reconcile(
        _mv(phase="Ready", conditions=[bad]), None, [], served_by=["ml/a"], settings=S, now=T0
    )
    assert cond.find(plan.status["conditions"], "DeletionBlocked") is None
    assert cond.is_true(plan.status["conditions"], cond.READY)


def _model(status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "iris", "generation": 1}, "spec": {}, "status": status}


def test_model_status_reads_typed_and_a_broken_condition_is_rewritten() -> None:
    ready = {
        **BLOCKED,
        "type": "Ready",
        "reason": "Consistent",
        "message": "1 version(s), 0 approved, 0 archived",
    }
    st = ParsedModel.parse(_model({"latestVersion": 1, "conditions": [ready]})).observed
    assert st.latest_version == 1 and st.conditions_as_stored() == [ready]
    assert ModelStatus.read({"latestVersion": "one", "approvedVersions": [1, "x"]}) == ModelStatus(
        approved_versions=[1]
    )
    plan = gr.plan(
        ParsedModel.parse(_model({"latestVersion": 1, "conditions": [ready]})), [mv(1)], now_text="t"
    )
    assert cond.find(plan.status["conditions"], cond.READY) == ready  # unchanged: as stored
    broken = _model({"conditions": [{**ready, "status": 1}, "x"], "message": {"a": 1}})
    plan = gr.plan(ParsedModel.parse(broken), [mv(1)], now_text="t", now=T0)
    assert [c["type"] for c in plan.status["conditions"]] == ["Ready"]
    assert cond.is_true(plan.status["conditions"], cond.READY)
