"""TrainingJob and ModelVersion reconcile, version resolution and numbering (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from _operator_fixtures import SHA_A, SHA_B, mv, tj

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.termination import TrainerSuccess
from onnxops.reconcile import modelversion as mvr
from onnxops.reconcile import trainingjob as tjr
from onnxops.reconcile.status import status_patch
from onnxops.reconcile.versions import next_version, resolve
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()


@pytest.mark.parametrize(
    "spec_version,mvs,expected,reason",
    [
        ("latest", [mv(1), mv(2), mv(3, phase="Verifying")], 2, "Available"),
        # the ModelVersion's rejected mark is informative: `latest` skips only what THIS service rejected
        ("latest", [mv(1), mv(2, rejected=True)], 2, "Available"),
        ("latest", [mv(1, phase="Failed"), mv(2, phase="Pending")], None, "VersionNotFound"),
        ("latest", [mv(5, model="other")], None, "VersionNotFound"),
        (2, [mv(1), mv(2, rejected=True)], 2, "Available"),  # an explicit pin ignores the rejection
        (3, [mv(3, phase="Verifying")], None, "VersionNotReady"),
        (3, [mv(3, phase="Failed")], None, "VerificationFailed"),
        (4, [mv(1)], None, "VersionNotFound"),
    ],
)
def test_resolve(spec_version, mvs, expected, reason):
    r = resolve(spec_version, "iris", mvs)
    assert (r.mv.spec.version if r.mv else None) == expected
    assert r.reason == reason


@pytest.mark.parametrize(
    "spec_version,rejected,expected",
    [("latest", {2}, 1), ("latest", {1, 2}, None), ("latest", {1}, 2), (2, {2}, 2)],  # a pin wins
)
def test_resolve_skips_this_services_rejections(spec_version, rejected, expected):
    r = resolve(spec_version, "iris", [mv(1), mv(2)], rejected)
    assert (r.mv.spec.version if r.mv else None) == expected


@pytest.mark.parametrize("versions,expected", [([], 1), ([1], 2), ([1, 7, 3], 8)])
def test_next_version(versions, expected):
    assert next_version([mv(v) for v in versions] + [mv(99, model="other")], "iris") == expected


def _job(*, active=0, failed=0, succeeded=0, cond_type=None, reason=None):
    st: dict = {
        "active": active,
        "failed": failed,
        "succeeded": succeeded,
        "startTime": "2026-01-01T11:59:00Z",
    }
    if cond_type:
        st["conditions"] = [
            {
                "type": cond_type,
                "status": "True",
                "reason": reason or "",
                "lastTransitionTime": "2026-01-01T12:00:00Z",
                "message": "m",
            }
        ]
        if cond_type == "Complete":
            st["completionTime"] = "2026-01-01T12:00:00Z"
    return {"metadata": {"name": "iris-train"}, "status": st}


def _pod(message: str, container: str = "trainer", finished: str = "2026-01-01T12:00:00Z"):
    return {
        "status": {
            "containerStatuses": [
                {
                    "name": container,
                    "state": {"terminated": {"exitCode": 1, "message": message, "finishedAt": finished}},
                }
            ]
        }
    }


OK = {
    "ok": True,
    "artifact": {"uri": "pvc://a/m/iris/uid-1/model.onnx", "sha256": SHA_A, "sizeBytes": 10},
    "profile": {"uri": "pvc://a/m/iris/uid-1/profile.json", "sha256": SHA_B},
    "metrics": {"accuracy": 0.9667, "f1_macro": 0.96},
    "signature": {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
    },
    "dataset": {"uri": "sklearn://iris"},
    "codeVersion": "0.1.0",
}


def test_training_pending_creates_job():
    plan = tjr.reconcile(tj(), None, [], registered=None, settings=S, now=T0)
    assert plan.job and plan.job["metadata"]["name"] == "iris-train"
    assert plan.status["phase"] == "Pending" and cond.is_true(plan.status["conditions"], cond.RECONCILING)


def test_training_running_attempts():
    plan = tjr.reconcile(tj(), _job(active=1, failed=1), [], registered=None, settings=S, now=T0)
    assert plan.status["phase"] == "Running" and plan.status["attempts"] == 2


def test_training_suspended():
    plan = tjr.reconcile(tj(suspend=True), _job(), [], registered=None, settings=S, now=T0)
    assert plan.status["phase"] == "Suspended" and plan.job["spec"]["suspend"] is True


def test_training_gate_failure_message():
    msg = json.dumps(
        {
            "ok": False,
            "reason": "GateNotMet",
            "message": "accuracy 0.61 < 0.9",
            "metrics": {"accuracy": 0.61, "f1_macro": 0.5},
        }
    )
    plan = tjr.reconcile(
        tj(),
        _job(failed=3, cond_type="Failed", reason="BackoffLimitExceeded"),
        [_pod(msg)],
        registered=None,
        settings=S,
        now=T0,
    )
    st = plan.status
    assert st["phase"] == "Failed" and st["message"] == "GateNotMet: accuracy 0.61 < 0.9"
    assert cond.is_true(st["conditions"], cond.STALLED) and not cond.is_true(st["conditions"], cond.READY)
    assert st["attempts"] == 3
    assert st["metrics"] == {"accuracy": 0.61, "f1_macro": 0.5} and st["primaryMetric"] == "accuracy=0.61"


def test_training_crash_backoff_uses_log_tail():
    plan = tjr.reconcile(
        tj(),
        _job(failed=3, cond_type="Failed", reason="BackoffLimitExceeded"),
        [_pod("Traceback ...\nMemoryError")],
        registered=None,
        settings=S,
        now=T0,
    )
    assert plan.status["message"].startswith("BackoffLimitExceeded after 3 attempts: Traceback")


def test_training_deadline():
    plan = tjr.reconcile(
        tj(),
        _job(failed=1, cond_type="Failed", reason="DeadlineExceeded"),
        [],
        registered=None,
        settings=S,
        now=T0,
    )
    assert plan.status["phase"] == "Failed"
    assert cond.find(plan.status["conditions"], cond.READY)["reason"] == "DeadlineExceeded"


def test_training_success_registers_then_terminal_and_idempotent():
    pods = [_pod(json.dumps(OK))]
    plan = tjr.reconcile(
        tj(), _job(succeeded=1, cond_type="Complete"), pods, registered=None, settings=S, now=T0
    )
    assert plan.status["phase"] == "Succeeded" and plan.register is not None
    body = plan.register
    assert body["metadata"]["labels"]["onnxops.dev/training-job-uid"] == "uid-1"
    assert "ownerReferences" not in body["metadata"]
    assert body["spec"]["artifact"]["sha256"] == SHA_A and body["spec"]["profile"]["sha256"] == SHA_B
    assert body["spec"]["lineage"]["trainingJob"] == "ml/iris"
    assert plan.status["primaryMetric"] == "accuracy=0.9667"
    # registered -> modelVersion recorded, Ready
    plan = tjr.reconcile(
        tj(), _job(succeeded=1, cond_type="Complete"), pods, registered="iris-v4", settings=S, now=T0
    )
    assert plan.status["modelVersion"] == "iris-v4" and plan.register is None
    assert cond.is_true(plan.status["conditions"], cond.READY)
    obj = {**tj(), "status": {k: v for k, v in plan.status.items() if v is not None}}
    # terminal: no Job wanted (TTL may delete it), nothing to write
    again = tjr.reconcile(obj, None, [], registered="iris-v4", settings=S, now=T0)
    assert again.job is None and again.status_patch == {} and again.register is None


def test_training_complete_without_result_fails_clearly():
    plan = tjr.reconcile(
        tj(), _job(succeeded=1, cond_type="Complete"), [], registered=None, settings=S, now=T0
    )
    assert plan.status["phase"] == "Failed" and "termination message" in plan.status["message"]


def test_model_version_verification_paths():
    m = mv(2, phase=None)
    plan = mvr.reconcile(m, None, [], served_by=[], settings=S, now=T0)
    assert plan.job["metadata"]["name"] == "iris-v2-verify" and plan.status["phase"] == "Verifying"
    ok = {
        "status": {
            "conditions": [{"type": "Complete", "status": "True"}],
            "completionTime": "2026-01-01T12:00:00Z",
        }
    }
    plan = mvr.reconcile(m, ok, [], served_by=[], settings=S, now=T0)
    assert plan.status["phase"] == "Ready" and plan.status["verifiedAt"] == "2026-01-01T12:00:00Z"
    assert cond.is_true(plan.status["conditions"], cond.VERIFIED)
    bad = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    pod = _pod(
        json.dumps({"ok": False, "reason": "SignatureMismatch", "message": "input shape [-1, 5]"}),
        container="verify",
    )
    plan = mvr.reconcile(m, bad, [pod], served_by=[], settings=S, now=T0)
    assert plan.status["phase"] == "Failed" and "SignatureMismatch" in plan.status["message"]
    assert cond.find(plan.status["conditions"], cond.VERIFIED)["status"] == "False"


def test_model_version_served_by_and_deletion_block():
    m = mv(2)
    plan = mvr.reconcile(m, None, [], served_by=["ml/b", "ml/a"], settings=S, now=T0)
    assert plan.status["servedBy"] == ["ml/a", "ml/b"] and plan.job is None
    assert mvr.deletion_block(m, [], T0) is None
    patch = mvr.deletion_block(m, ["ml/a"], T0)
    assert patch and cond.find(patch["conditions"], "DeletionBlocked")["status"] == "True"


def test_status_patch_only_changes():
    assert status_patch({"a": 1, "b": 2}, {"a": 1, "b": 2}) == {}
    assert status_patch({"a": 1, "b": 2}, {"a": 1, "b": None, "c": 3}) == {"b": None, "c": 3}
    assert status_patch({}, {"x": None}) == {}


def test_model_version_is_built_from_the_spec_the_job_ran():
    """Edits after the Job was created (params, even the model of an object admitted before spec.model
    became immutable) never reach the trainer, so they must not reach the registered ModelVersion."""
    from onnxops.builders import job as job_builder

    ran = job_builder.training_job(tj(), S)
    ran["status"] = _job(succeeded=1, cond_type="Complete")["status"]
    params = {"className": "LogisticRegression", "params": {"max_iter": 5}}
    edited = tj(gen=2, model="other", estimator=params)
    plan = tjr.reconcile(edited, ran, [_pod(json.dumps(OK))], registered=None, settings=S, now=T0)
    body = plan.register
    assert body is not None
    assert body["spec"]["model"] == "iris" and body["metadata"]["labels"]["onnxops.dev/model"] == "iris"
    assert body["spec"]["lineage"]["estimator"]["params"] == {"max_iter": 200}
    assert body["spec"]["lineage"]["image"] == S.trainer_image
    assert plan.status["observedGeneration"] == 1 and tjr.NOT_APPLIED in plan.status["message"]
    # without a readable Job (e.g. deleted by its TTL) the TrainingJob's spec is all there is
    assert tjr.model_version_body(edited, TrainerSuccess.model_validate(OK), S)["spec"]["model"] == "other"


def _waiting_pod(reason: str, message: str, name: str = "iris-train-abc", container: str = "trainer") -> dict:
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T11:59:30Z"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": container, "state": {"waiting": {"reason": reason, "message": message}}}
            ],
        },
    }


def test_a_stuck_training_pod_is_reported_in_status_and_an_event():
    pod = _waiting_pod("CreateContainerConfigError", 'secret "s3-creds" not found')
    plan = tjr.reconcile(tj(), _job(active=1), [pod], registered=None, settings=S, now=T0)
    st = plan.status
    msg = (
        "CreateContainerConfigError: training pod iris-train-abc: container trainer: "
        'secret "s3-creds" not found'
    )
    assert st["phase"] == "Pending" and st["message"] == msg
    ready = cond.find(st["conditions"], cond.READY)
    assert (ready["status"], ready["reason"]) == ("False", "CreateContainerConfigError")
    assert ("Warning", "CreateContainerConfigError", msg) in plan.events
    # the same state again: no second Event
    again = tjr.reconcile({**tj(), "status": st}, _job(active=1), [pod], registered=None, settings=S, now=T0)
    assert not [e for e in again.events if e[1] == "CreateContainerConfigError"]
    # a pod that is just starting is not stuck
    starting = _waiting_pod("ContainerCreating", "")
    plan = tjr.reconcile(tj(), _job(active=1), [starting], registered=None, settings=S, now=T0)
    assert plan.status["phase"] == "Running"


def test_a_stuck_verification_pod_is_reported():
    pod = _waiting_pod(
        "ImagePullBackOff",
        'Back-off pulling image "x/serving:9"',
        name="iris-v3-verify-x",
        container="verify",
    )
    plan = mvr.reconcile(mv(3, phase="Verifying"), _job(active=1), [pod], served_by=[], settings=S, now=T0)
    assert plan.status["phase"] == "Verifying"
    assert plan.status["message"] == (
        "ImagePullBackOff: verification pod iris-v3-verify-x: container verify: "
        'Back-off pulling image "x/serving:9"'
    )
    assert any(e[:2] == ("Warning", "ImagePullBackOff") for e in plan.events)


# ---- dataset.fromServing: the service it names ---------------------------------------------------------
FS = {
    "target": "species",
    "fromServing": {"service": "shop", "window": "1h", "labels": {"uri": "pvc://labels/shop/"}},
}


def _isvc(logging: dict | None) -> dict:
    spec: dict = {"model": "iris"}
    if logging is not None:
        spec["logging"] = logging
    return {"metadata": {"name": "shop", "namespace": "ml"}, "spec": spec}


def _sink_env(plan: tjr.TrainingPlan) -> str:
    [c] = plan.job["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    return next(e["value"] for e in c["env"] if e["name"] == "ONNXOPS_FROM_SERVING_SINK_URI")


@pytest.mark.parametrize(
    ("service", "reason", "words"),
    [
        (None, "ServiceNotFound", "InferenceService 'shop' not found in namespace 'ml'"),
        (_isvc(None), "CaptureNotEnabled", "InferenceService 'shop' has no spec.logging enabled"),
        (_isvc({"enabled": False}), "CaptureNotEnabled", "captures no traffic to train on"),
    ],
)
def test_from_serving_waits_for_a_capturing_service_with_a_reason_naming_the_field(service, reason, words):
    t = tj(dataset=FS)
    plan = tjr.reconcile(t, None, [], registered=None, settings=S, now=T0, service=service)
    assert plan.job is None and plan.register is None  # not started
    st = plan.status
    assert st["phase"] == "Pending" and st["message"].startswith("spec.dataset.fromServing.service: ")
    assert words in st["message"]
    ready = cond.find(st["conditions"], cond.READY)
    assert ready is not None and ready["status"] == "False" and ready["reason"] == reason
    assert cond.is_true(st["conditions"], cond.STALLED)
    assert plan.events == [("Warning", reason, st["message"])] and plan.requeue_after
    # the same problem again: no new event (status unchanged)
    again = tjr.reconcile({**t, "status": st}, None, [], registered=None, settings=S, now=T0, service=service)
    assert again.events == [] and again.status_patch == {}


def test_from_serving_starts_once_the_service_captures_and_reads_its_sink():
    t = tj(dataset=FS)
    stuck = tjr.reconcile(t, None, [], registered=None, settings=S, now=T0, service=None)
    custom = _isvc(
        {
            "enabled": True,
            "sink": {"uri": "s3://traffic/shop/", "credentialsSecret": {"name": "traffic-reader"}},
        }
    )
    plan = tjr.reconcile(
        {**t, "status": stuck.status}, None, [], registered=None, settings=S, now=T0, service=custom
    )
    assert plan.job is not None and plan.status["phase"] == "Pending" and plan.requeue_after is None
    assert not cond.is_true(plan.status["conditions"], cond.STALLED)
    assert _sink_env(plan) == "s3://traffic/shop/"  # the service's own sink, with its credentials
    [c] = plan.job["spec"]["template"]["spec"]["containers"]
    assert {"secretRef": {"name": "traffic-reader"}} in c["envFrom"]
    default = tjr.reconcile(t, None, [], registered=None, settings=S, now=T0, service=_isvc({}))
    assert _sink_env(default) == "pvc://onnxops-artifacts/models/ml/shop/traffic/"


def test_from_serving_service_whose_spec_does_not_parse_waits_naming_its_field():
    t = tj(dataset=FS)
    bad = _isvc({"enabled": True, "sampleRate": 2})  # stored before the API refused it
    plan = tjr.reconcile(t, None, [], registered=None, settings=S, now=T0, service=bad)
    assert plan.job is None and plan.register is None  # not started: where it captures is unknown
    st = plan.status
    assert st["phase"] == "Pending" and st["message"].startswith(
        "spec.dataset.fromServing.service: InferenceService 'shop' cannot be read (spec.logging.sampleRate: "
    )
    assert cond.find(st["conditions"], cond.READY)["reason"] == "InvalidSpec"
    assert cond.is_true(st["conditions"], cond.STALLED)
    assert plan.events == [("Warning", "InvalidSpec", st["message"])] and plan.requeue_after
    # fromServing.sinkUri names the files: the service's spec is not read
    named = tj(dataset={**FS, "fromServing": {**FS["fromServing"], "sinkUri": "pvc://old/traffic/"}})
    plan = tjr.reconcile(named, None, [], registered=None, settings=S, now=T0, service=bad)
    assert plan.job is not None and _sink_env(plan) == "pvc://old/traffic/"


def test_from_serving_with_an_explicit_sink_needs_no_capture_and_a_started_job_is_not_stopped():
    t = tj(dataset={**FS, "fromServing": {**FS["fromServing"], "sinkUri": "pvc://old/traffic/"}})
    plan = tjr.reconcile(t, None, [], registered=None, settings=S, now=T0, service=_isvc(None))
    assert plan.job is not None and _sink_env(plan) == "pvc://old/traffic/"
    running = tjr.reconcile(
        tj(dataset=FS), _job(active=1), [], registered=None, settings=S, now=T0, service=None
    )  # the service went away after the training started
    assert running.status["phase"] == "Running" and running.job is not None
