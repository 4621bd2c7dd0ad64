"""A TrainingJob's stored status is read once as ``TrainingJobStatus`` (``ParsedTrainingJob.observed``)
and the reconcile compares its new status with the stored dict as before; what does not parse is read as
unset, never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from _operator_fixtures import SHA_A, tj
from test_reconcile_training import OK, _job, _pod

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.trainingjob import ParsedTrainingJob, TrainingJobStatus
from onnxops.reconcile import trainingjob as tjr
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()
READY = {
    "type": "Ready",
    "status": "False",
    "reason": "GateNotMet",
    "message": "accuracy 0.5 < 0.9",
    "lastTransitionTime": "2026-01-01T11:00:00Z",
    "observedGeneration": 1,
}
STORED: dict[str, Any] = {
    "observedGeneration": 1,
    "phase": "Succeeded",
    "message": "training succeeded; registering the ModelVersion",
    "jobName": "iris-train",
    "attempts": 1,
    "startTime": "2026-01-01T10:00:00Z",
    "completionTime": "2026-01-01T11:00:00Z",
    "metrics": {"accuracy": 0.9667},
    "primaryMetric": "accuracy=0.9667",
    "artifact": {"uri": "pvc://artifacts/models/iris/r/model.onnx", "sha256": SHA_A, "sizeBytes": 10},
    "conditions": [{k: v for k, v in READY.items() if k != "observedGeneration"}],
}


def test_stored_status_reads_typed() -> None:
    st = ParsedTrainingJob.parse({**tj(), "status": STORED}).observed
    assert st.phase == "Succeeded" and st.observed_generation == 1 and st.attempts == 1
    assert st.artifact is not None and st.artifact.sha256 == SHA_A and st.artifact.size_bytes == 10
    assert st.metrics == {"accuracy": 0.9667} and st.model_version is None
    assert st.ready_reason() == "GateNotMet"
    # the conditions go to the helpers exactly as stored (no field added)
    assert json.dumps(st.conditions_as_stored()) == json.dumps(STORED["conditions"])


@pytest.mark.parametrize(
    "raw,check",
    [
        ("Succeeded", lambda st: st == TrainingJobStatus()),
        ({**STORED, "phase": "Exploded"}, lambda st: st.phase is None and st.attempts == 1),
        ({**STORED, "artifact": {"uri": "x", "sha256": "nope"}}, lambda st: st.artifact is None),
        ({**STORED, "metrics": {"accuracy": "high", "f1": 0.5}}, lambda st: st.metrics == {"f1": 0.5}),
        (
            {**STORED, "conditions": ["Ready", READY, {**READY, "status": 1}]},
            lambda st: len(st.conditions) == 1,
        ),
        ({**STORED, "observedGeneration": -3}, lambda st: st.observed_generation is None),
        ({**STORED, "surprise": True}, lambda st: st.phase == "Succeeded"),
    ],
)
def test_what_does_not_parse_is_read_as_unset(raw: Any, check: Any) -> None:
    assert check(TrainingJobStatus.read(raw))


def test_a_failed_training_with_a_broken_ready_condition_keeps_failed() -> None:
    stored = {
        "phase": "Failed",
        "message": "GateNotMet: accuracy",
        "conditions": [{**READY, "reason": "bad reason!"}],
    }
    plan = tjr.reconcile({**tj(), "status": stored}, None, [], registered=None, settings=S, now=T0)
    assert plan.status["phase"] == "Failed" and plan.job is None
    ready = cond.find(plan.status["conditions"], cond.READY)
    assert ready is not None and ready["reason"] == "TrainingFailed"  # the reason that could not be read
    assert plan.status["message"] == "GateNotMet: accuracy"


def test_a_job_gone_before_registration_finishes_from_the_typed_status() -> None:
    plan = tjr.reconcile({**tj(), "status": STORED}, None, [], registered=None, settings=S, now=T0)
    assert plan.status["phase"] == "Succeeded" and plan.register is not None
    assert plan.register["spec"]["artifact"]["sha256"] == SHA_A
    assert plan.status["completionTime"] == "2026-01-01T11:00:00Z"


def test_a_broken_artifact_in_status_is_not_registered_and_the_job_runs_again() -> None:
    stored = {**STORED, "artifact": {"uri": "x", "sha256": "nope"}}
    plan = tjr.reconcile({**tj(), "status": stored}, None, [], registered=None, settings=S, now=T0)
    assert plan.register is None and plan.job is not None  # read as "no artifact": the training runs


def test_garbage_status_does_not_crash_the_reconcile() -> None:
    stored = {"phase": 7, "message": ["x"], "conditions": "Ready", "startTime": 5, "observedGeneration": "x"}
    pods = [_pod(json.dumps(OK))]
    plan = tjr.reconcile(
        {**tj(), "status": stored},
        _job(succeeded=1, cond_type="Complete"),
        pods,
        registered=None,
        settings=S,
        now=T0,
    )
    assert plan.status["phase"] == "Succeeded" and plan.register is not None
    assert plan.status_patch["conditions"] == plan.status["conditions"]  # written anew
