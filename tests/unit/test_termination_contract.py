"""The trainer's and verifier's termination-message contract (api/v1alpha1/termination.py): what the writers
put in the file is what the operator's readers take from the pod; a malformed result gets a clear reason."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _operator_fixtures import SHA_A, SHA_B, mv, tj

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.termination import (
    MALFORMED_REASON,
    ArtifactRef,
    DatasetRef,
    FileRef,
    TrainerSuccess,
)
from onnxops.reconcile import modelversion as mvr
from onnxops.reconcile import trainingjob as tjr
from onnxops.serving import verify
from onnxops.settings import Settings
from onnxops.trainer.__main__ import main as trainer_main
from onnxops.trainer.__main__ import write_termination

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()
FAILED = {
    "status": {
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "lastTransitionTime": "2026-01-01T12:00:00Z",
            }
        ],
        "failed": 1,
    }
}
COMPLETE = {
    "status": {
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T12:00:00Z"}],
        "succeeded": 1,
        "completionTime": "2026-01-01T12:00:00Z",
    }
}


def _condition(status: dict[str, Any], type_: str) -> Mapping[str, Any]:
    found = cond.find(status["conditions"], type_)
    assert found is not None, f"no {type_} condition"
    return found


def _pod(message: str, container: str) -> dict:
    term = {"exitCode": 0, "message": message, "finishedAt": "2026-01-01T12:00:00Z"}
    return {"status": {"containerStatuses": [{"name": container, "state": {"terminated": term}}]}}


def _train_status(message: str, job: dict) -> tjr.TrainingPlan:
    return tjr.reconcile(
        tj(),
        {"metadata": {"name": "iris-train"}, **job},
        [_pod(message, "trainer")],
        registered=None,
        settings=S,
        now=T0,
    )


def test_a_trainer_success_written_by_the_trainer_registers_what_it_says(tmp_path: Path) -> None:
    result = TrainerSuccess(
        artifact=ArtifactRef(uri="pvc://a/m/iris/r1/model.onnx", sha256=SHA_A, size_bytes=123),
        profile=FileRef(uri="pvc://a/m/iris/r1/profile.json", sha256=SHA_B),
        metrics={"accuracy": 0.75},
        signature={
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
            "featureNames": [f"f{i}" for i in range(800)],
        },  # over 4 KiB: left out, said so
        dataset=DatasetRef(uri="sklearn://iris", sha256="c" * 64),
        code_version="9.9.9",
    )
    path = tmp_path / "termination-log"
    write_termination(str(path), result)
    text = path.read_text()
    assert len(text.encode()) <= 4000 and json.loads(text)["truncated"] == ["signature.featureNames"]
    plan = _train_status(text, COMPLETE)
    assert plan.status["phase"] == "Succeeded"
    assert plan.status["artifact"] == {
        "uri": "pvc://a/m/iris/r1/model.onnx",
        "sha256": SHA_A,
        "sizeBytes": 123,
        "profileUri": "pvc://a/m/iris/r1/profile.json",
        "profileSha256": SHA_B,
    }
    assert plan.status["metrics"] == {"accuracy": 0.75}
    assert plan.register is not None
    spec = plan.register["spec"]
    assert spec["artifact"] == {
        "uri": "pvc://a/m/iris/r1/model.onnx",
        "sha256": SHA_A,
        "format": "onnx",
        "sizeBytes": 123,
    }
    assert spec["lineage"]["dataset"] == {"uri": "sklearn://iris", "sha256": "c" * 64}
    assert spec["lineage"]["codeVersion"] == "9.9.9"
    assert "featureNames" not in spec["signature"] and spec["signature"]["inputs"][0]["shape"] == [-1, 4]


def test_a_trainer_failure_written_by_the_trainer_is_the_reason_the_operator_reports(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    assert trainer_main(["--spec-json", json.dumps({"model": "iris"}), "--termination-log", str(path)]) == 2
    plan = _train_status(path.read_text(), FAILED)
    st = plan.status
    assert st["phase"] == "Failed"
    assert st["message"].startswith("InvalidSpec: invalid TrainingJob spec: spec.")
    assert _condition(st, cond.READY)["reason"] == "InvalidSpec"


@pytest.mark.parametrize(
    "message,job,names",
    [
        # ok, but the artifact has no digest: never registered, the field named
        ({"ok": True, "artifact": {"uri": "pvc://a/m.onnx"}}, COMPLETE, "artifact.sha256"),
        (
            {"ok": True, "artifact": {"uri": "pvc://a/m.onnx", "sha256": SHA_A}, "metrics": {"acc": "high"}},
            COMPLETE,
            "metrics.acc",
        ),
        ({"ok": False, "message": "no reason given"}, FAILED, "reason"),
    ],
)
def test_a_malformed_trainer_result_fails_with_a_reason_naming_the_field(
    message: dict, job: dict, names: str
) -> None:
    plan = _train_status(json.dumps(message), job)
    st = plan.status
    assert st["phase"] == "Failed" and plan.register is None
    assert st["message"].startswith(f"the trainer's termination message is malformed: {names}: ")
    assert _condition(st, cond.READY)["reason"] == MALFORMED_REASON
    assert cond.is_true(st["conditions"], cond.STALLED)


def test_unknown_fields_of_a_newer_trainer_are_ignored() -> None:
    message = {"ok": True, "artifact": {"uri": "pvc://a/m.onnx", "sha256": SHA_A, "etag": "x"}, "future": 1}
    plan = _train_status(json.dumps(message), COMPLETE)
    assert plan.status["phase"] == "Succeeded" and plan.register is not None
    assert plan.register["spec"]["artifact"]["uri"] == "pvc://a/m.onnx"


def _verify_status(message: str) -> mvr.VersionPlan:
    return mvr.reconcile(
        mv(2, phase=None), FAILED, [_pod(message, "verify")], served_by=[], settings=S, now=T0
    )


def test_a_verifier_failure_written_by_the_verifier_is_the_reason_the_operator_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def mismatch(cfg: object) -> None:
        raise verify.VerifyError("SignatureMismatch", "input 'input' has shape [-1, 5], expected [-1, 4]")

    path = tmp_path / "termination-log"
    monkeypatch.setenv("ONNXOPS_TERMINATION_LOG", str(path))
    monkeypatch.setattr(verify, "run_verification", mismatch)
    assert verify.verify(None) == 1  # type: ignore[arg-type]  # the config only reaches run_verification
    st = _verify_status(path.read_text()).status
    assert st["phase"] == "Failed"
    assert st["message"] == (
        "verification failed: SignatureMismatch: input 'input' has shape [-1, 5], expected [-1, 4]"
    )
    assert _condition(st, cond.VERIFIED)["status"] == "False"


def test_a_malformed_verifier_result_is_reported_naming_the_field() -> None:
    st = _verify_status(json.dumps({"ok": False, "message": "x"})).status
    assert st["phase"] == "Failed"
    assert st["message"].startswith(
        "verification failed: the verifier's termination message is malformed: reason: "
    )
