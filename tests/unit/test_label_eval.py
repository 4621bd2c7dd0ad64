"""The batch path as an operator-run Job (spec.monitoring.performance.source: LabelFiles): admission, the
Job builder, the step decision (create / wait / evaluate, never twice), and the Job's result read as one
evaluation that the same policy acts on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sklearn.metrics import accuracy_score, f1_score
from test_validation_invalid import CRDS, IS, example, mutate

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.builders import labels
from onnxops.builders.label_eval import label_evaluation_job
from onnxops.drift.live import Inconclusive
from onnxops.drift.performance import PerfValues, metric_value
from onnxops.drift.performance_policy import PerfPolicySpec, PerfPrior, ServedPerf, decide_performance
from onnxops.drift.performance_source import Performance, from_label_job
from onnxops.reconcile.label_eval import label_eval_step
from onnxops.settings import Settings
from onnxops.validate import validate_manifest

PERF = "spec.monitoring.performance"
FILES = {"uri": "pvc://warehouse/labels/iris/", "target": "species"}
T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def isvc(**perf: Any) -> dict[str, Any]:
    obj = example(IS)
    mutate(obj, "spec.logging", {"flushInterval": "30s"})
    mutate(obj, PERF, {"source": "LabelFiles", "labelFiles": dict(FILES), **perf})
    return obj


# ---- admission ---------------------------------------------------------------------------------------
def test_label_files_source_is_accepted_with_capture_on() -> None:
    assert validate_manifest(CRDS, isvc()) == []


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        (
            {"labelFiles": None},
            f"{PERF}.labelFiles",
            "labelFiles (uri and target of the label files) is required",
        ),
        ({"source": "Live"}, f"{PERF}.labelFiles", "only read when source is LabelFiles"),
        (
            {"labelFiles": {"uri": "pvc://w/l/", "target": "prediction"}},
            f"{PERF}.labelFiles.target",
            "not a target",
        ),
        ({"labelFiles": {"uri": "http://warehouse/x.csv", "target": "y"}}, f"{PERF}.labelFiles.uri", ""),
        ({"source": "Warehouse"}, f"{PERF}.source", "LabelFiles"),
    ],
    ids=["no-files", "files-without-source", "reserved-target", "bad-uri", "unknown-source"],
)
def test_bad_label_files_spec_is_refused_naming_the_field(
    change: dict[str, Any], field: str, text: str
) -> None:
    obj = isvc()
    perf = obj["spec"]["monitoring"]["performance"]
    for k, v in change.items():
        if v is None:
            perf.pop(k)
        else:
            perf[k] = v
    shown = "\n".join(map(str, validate_manifest(CRDS, obj)))
    assert field in shown and text in shown, shown


def test_label_files_need_the_captured_rows() -> None:
    obj = isvc()
    obj["spec"].pop("logging")
    shown = "\n".join(map(str, validate_manifest(CRDS, obj)))
    assert "spec.logging" in shown and "joined by id with the captured rows" in shown, shown
    obj["spec"]["logging"] = {"enabled": False}
    assert "joined by id" in "\n".join(map(str, validate_manifest(CRDS, obj)))


# ---- the Job ------------------------------------------------------------------------------------------
def test_the_job_runs_the_trainer_image_read_only_with_the_window_end() -> None:
    obj = isvc(window="2h")
    obj["metadata"].update(namespace="ml", uid="u-1")
    obj["apiVersion"], obj["kind"] = "onnxops.dev/v1alpha1", "InferenceService"
    settings = Settings(trainer_image="reg/trainer:1", default_storage_uri="pvc://onnxops-artifacts/models")
    job = label_evaluation_job(
        ParsedInferenceService.parse(obj), settings, T0 + timedelta(microseconds=5), 30.0
    )
    md, spec = job["metadata"], job["spec"]
    assert md["name"] == f"iris-labels-{int(T0.timestamp())}" and md["namespace"] == "ml"
    assert md["annotations"][labels.WINDOW_END] == "2026-05-01T12:00:00Z"
    assert md["ownerReferences"][0]["uid"] == "u-1" and md["ownerReferences"][0]["kind"] == "InferenceService"
    assert md["labels"][labels.LABEL_EVALUATION] == "iris" and labels.INFERENCE_SERVICE not in md["labels"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] >= 90
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert spec["template"]["metadata"]["labels"] == md["labels"]
    [c] = pod["containers"]
    assert c["image"] == "reg/trainer:1"
    assert c["command"] == ["python", "-m", "onnxops.trainer.evaluate_labels"]
    args = dict(zip(c["args"][::2], c["args"][1::2], strict=True))
    assert args == {
        "--sink-uri": "pvc://onnxops-artifacts/models/ml/iris/traffic/",
        "--labels-uri": FILES["uri"],
        "--target": "species",
        "--window": "2h",
        "--now": "2026-05-01T12:00:00Z",
        "--task": "classification",
    }
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"onnxops-artifacts": True, "warehouse": True}
    assert all(m.get("readOnly") for m in c["volumeMounts"] if m["name"] != "tmp")


def test_s3_label_files_get_their_secret_by_reference_only() -> None:
    obj = isvc(
        labelFiles={"uri": "s3://wh/labels/", "target": "y", "credentialsSecret": {"name": "wh-creds"}}
    )
    obj["metadata"].update(uid="u")
    obj["apiVersion"], obj["kind"] = "onnxops.dev/v1alpha1", "InferenceService"
    job = label_evaluation_job(ParsedInferenceService.parse(obj), Settings(), T0, 30.0)
    [c] = job["spec"]["template"]["spec"]["containers"]
    assert {"secretRef": {"name": "wh-creds"}} in c["envFrom"]
    assert "wh-creds" not in str(c["env"])


# ---- the step ----------------------------------------------------------------------------------------
def job(end: datetime, state: str | None = None, name: str = "j") -> dict[str, Any]:
    reason = "BackoffLimitExceeded" if state == "Failed" else None
    conds = (
        [
            {
                "type": state,
                "status": "True",
                "reason": reason,
                "message": "Job has reached the specified backoff limit",
            }
        ]
        if state
        else []
    )
    end_s = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": name, "annotations": {labels.WINDOW_END: end_s}},
        "status": {"conditions": conds},
    }


def pod(message: str) -> dict[str, Any]:
    return {
        "status": {
            "containerStatuses": [
                {
                    "name": "evaluate",
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "finishedAt": "2026-05-01T12:00:05Z",
                            "message": message,
                        }
                    },
                }
            ]
        }
    }


RESULT = (
    '{"ok":true,"task":"classification","versions":{"1":{"labels":120,"accuracy":0.9,"f1":0.8}},"labels":130}'
)


@pytest.mark.parametrize(
    ("jobs", "pods", "last", "now", "kind", "wait"),
    [
        ([], [], None, T0, "create", 0.0),
        ([job(T0)], [], None, T0 + timedelta(seconds=3), "wait", 5.0),
        ([job(T0, "Complete")], [pod(RESULT)], None, T0 + timedelta(seconds=6), "evaluate", 0.0),
        (
            [job(T0, "Complete")],
            [pod(RESULT)],
            T0 + timedelta(seconds=7),
            T0 + timedelta(seconds=8),
            "wait",
            22.0,
        ),
        (
            [job(T0 - timedelta(seconds=60), "Complete", "old"), job(T0, "Complete")],
            [pod(RESULT)],
            T0 + timedelta(seconds=7),
            T0 + timedelta(seconds=31),
            "create",
            0.0,
        ),
        ([job(T0, "Failed")], [], T0 - timedelta(seconds=30), T0 + timedelta(seconds=6), "evaluate", 0.0),
    ],
    ids=["first", "running", "finished", "applied-not-due", "applied-due", "failed-no-result"],
)
def test_step_table(
    jobs: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    last: datetime | None,
    now: datetime,
    kind: str,
    wait: float,
) -> None:
    step = label_eval_step(jobs, pods, last, now, 30.0)
    assert step.kind == kind and step.wait_s == pytest.approx(wait)
    if kind == "evaluate" and pods:
        assert step.result is not None and step.result["versions"]["1"]["labels"] == 120 and step.job == "j"
    if kind == "evaluate" and not pods:
        assert step.result is None and step.failure == (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )


# ---- the result as one evaluation, acted on by the same policy -----------------------------------------
def test_the_job_result_gives_the_same_numbers_and_the_same_decision() -> None:
    """The Job reports what scikit-learn gives on the joined rows (trainer/evaluate_labels.py, tested against
    it in test_serving_feedback.py); read back, the policy sees those numbers and acts as on live counts."""
    truth = [0, 0, 1, 1, 2, 2, 1, 0] * 20
    pred = [0, 1, 1, 1, 2, 0, 1, 0] * 20
    acc, f1 = accuracy_score(truth, pred), f1_score(truth, pred, average="macro")
    perf = from_label_job(
        {
            "ok": True,
            "task": "classification",
            "labels": 200,
            "versions": {"3": {"labels": 160, "accuracy": acc, "f1": f1}},
        }
    )
    assert isinstance(perf, Performance) and perf.unresolved == 40
    pv = perf.versions["3"]
    assert isinstance(pv, PerfValues) and pv.n == 160
    assert metric_value("accuracy", pv) == acc and metric_value("f1", pv) == f1
    assert metric_value("rmse", pv) is None
    spec = PerfPolicySpec(
        metric="accuracy",
        min_labels=100,
        failure_limit=1,
        on_concept_drift="Retrain",
        retrain_configured=True,
    )
    served = [ServedPerf("3", "stable", pv, {"accuracy": 0.97}, "classification")]
    d = decide_performance(served, spec, PerfPrior(), T0, "NoDrift")
    assert d.action == "Retrain" and d.reason == "ConceptDrift" and d.values["3"] == pytest.approx(acc)
    assert d.labels["3"] == 160


def test_a_failed_evaluation_is_inconclusive() -> None:
    got = from_label_job({"ok": False, "reason": "DataError", "message": "no captured traffic in the window"})
    assert isinstance(got, Inconclusive) and got.reason == "DataError" and "no captured" in got.message
    got = from_label_job(None, ("DeadlineExceeded", "Job was active longer than specified deadline"))
    assert isinstance(got, Inconclusive) and got.reason == "DeadlineExceeded"


def test_captured_predictions_as_text_keep_their_task() -> None:
    """The captured rows keep ``prediction`` as text (versions with other output types read together): the
    evaluation still tells a regressor from a classifier, and its numbers are scikit-learn's."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    from onnxops.trainer.evaluate_labels import infer_task, join_counts, summary

    pred = [3.5, 1.25, 7.0, 2.0]
    truth = [3.0, 1.0, 8.0, 2.5]
    captured = pd.DataFrame({"id": list("abcd"), "version": [2] * 4, "prediction": [str(p) for p in pred]})
    labels = pd.DataFrame({"id": list("abcdx"), "y": [*truth, 9.0]})
    assert infer_task(captured["prediction"]) == "regression"
    assert infer_task(pd.Series(["0", "2", "1"])) == infer_task(pd.Series(["setosa"])) == "classification"
    counts, task = join_counts(captured, labels, "y")
    got = summary(counts, task)["versions"]["2"]
    assert task == "regression" and got["labels"] == 4
    assert got["mae"] == pytest.approx(mean_absolute_error(truth, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truth, pred)))
    # the operator names the task (from the metric): integral regression predictions stay regression
    captured["prediction"] = ["3", "1", "7", "2"]
    assert join_counts(captured, labels, "y", "regression")[1] == "regression"


def test_the_result_is_a_typed_contract_shared_by_the_job_and_the_operator() -> None:
    """trainer/evaluate_labels writes api/v1alpha1/termination.LabelEvalSuccess; the operator parses it
    with the same model: a result that breaks the contract is inconclusive and names the field."""
    from onnxops.api.v1alpha1.termination import LabelEvalSuccess, parse_label_eval_result
    from onnxops.drift.performance import PerfCounts
    from onnxops.trainer.evaluate_labels import summary

    pc = PerfCounts(confusion={("a", "a"): 3.0, ("b", "a"): 1.0}, labels=4.0)
    wire = summary({"2": pc}, "classification")
    parsed = parse_label_eval_result(wire)
    assert isinstance(parsed, LabelEvalSuccess) and parsed.versions["2"].labels == 4
    assert parsed.versions["2"].accuracy == pytest.approx(accuracy_score(["a", "a", "a", "b"], ["a"] * 4))
    bad = from_label_job({"ok": True, "task": "classification", "versions": {"2": {"accuracy": 0.9}}})
    assert isinstance(bad, Inconclusive) and bad.reason == "MalformedResult"
    assert "versions.2.labels: Field required" in bad.message
    bad = from_label_job({"ok": True, "task": "ranking", "versions": {}})
    assert isinstance(bad, Inconclusive) and "task" in bad.message
