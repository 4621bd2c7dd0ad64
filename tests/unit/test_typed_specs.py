"""TrainingJobs and ModelVersions are parsed once, where the handler reads them: a spec that does not parse
is reported in status (field and problem), never run, and never takes the operator down; a parsed one
carries the API's defaults and its spec as stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from _operator_fixtures import ClientStub, mv, tj
from pydantic import ValidationError

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.modelversion import ParsedModelVersion
from onnxops.api.v1alpha1.termination import TrainerSuccess
from onnxops.api.v1alpha1.trainingjob import ParsedTrainingJob
from onnxops.builders import job as job_builder
from onnxops.controller.context import Context
from onnxops.controller.training import reconcile_model_version, reconcile_training_job
from onnxops.reconcile import modelversion as mvr
from onnxops.reconcile import trainingjob as tjr
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()


def _broken() -> dict[str, Any]:
    """Stored before the API refused it: no data source, and an estimator the trainer does not know."""
    obj = tj(dataset={"format": "csv"}, estimator={"className": "NotAnEstimator"})
    obj["status"] = {"phase": "Pending", "observedGeneration": 1}
    return obj


class _Client(ClientStub):
    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.status_patches: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        assert kind in ("TrainingJob", "ModelVersion"), f"nothing else is read for a bad spec, not {kind}"
        return self.obj

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert obj["kind"] == "Event", (
            f"a spec that does not parse creates nothing but Events, not {obj['kind']}"
        )
        self.created.append(obj)
        return obj

    async def patch_status(
        self, api_version: str, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status_patches.append(status)
        self.obj = {**self.obj, "status": {**(self.obj.get("status") or {}), **status}}
        return self.obj


async def test_a_spec_that_does_not_parse_is_reported_not_run() -> None:
    client = _Client(_broken())
    requeue = await reconcile_training_job(Context(client, S), "ml", "iris")
    assert requeue is None  # no retry loop: an edit of the spec wakes it
    [patch] = client.status_patches
    ready, stalled = cond.find(patch["conditions"], cond.READY), cond.find(patch["conditions"], cond.STALLED)
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert stalled is not None and stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    # the fields and the problems, in the words of the API
    assert "spec.dataset" in ready["message"] and "needs a uri, or fromServing" in ready["message"]
    assert "spec.estimator.className" in ready["message"]
    assert patch["message"] == ready["message"]
    [event] = client.created
    assert event["type"] == "Warning" and event["reason"] == "InvalidSpec"
    # level-triggered: the same state again writes nothing and posts no second Event
    await reconcile_training_job(Context(client, S), "ml", "iris")
    assert len(client.status_patches) == 1 and len(client.created) == 1


def test_invalid_spec_plan_is_pure_and_builds_nothing() -> None:
    obj = _broken()
    with pytest.raises(ValidationError) as info:
        ParsedTrainingJob.parse(obj)
    plan = tjr.invalid_spec_plan(obj, info.value, T0)
    assert plan.job is None and plan.register is None
    assert plan.status["observedGeneration"] == 1
    assert cond.find(plan.status["conditions"], cond.STALLED)["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_parsed_spec_carries_the_api_defaults_and_the_stored_spec() -> None:
    raw = tj()
    del raw["spec"]["backoffLimit"]
    parsed = ParsedTrainingJob.parse(raw)
    assert parsed.spec.backoff_limit == 2 and parsed.spec.suspend is False  # the API's defaults
    assert parsed.spec.dataset.format == "csv"
    assert parsed.meta.namespace == "ml" and parsed.meta.uid == "uid-1" and parsed.meta.generation == 1
    assert ParsedTrainingJob.of(parsed) is parsed
    job = job_builder.training_job(parsed, S)
    assert job["spec"]["backoffLimit"] == 2 and job["spec"]["suspend"] is False
    # the trainer gets the spec as stored (no defaults added): what the running Job's template holds
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert json.loads(args[args.index("--spec-json") + 1]) == raw["spec"]


def test_registration_uses_the_spec_the_job_ran_and_falls_back_when_it_does_not_parse() -> None:
    ran = job_builder.training_job(tj(), S)
    ok = TrainerSuccess.model_validate(
        {"ok": True, "artifact": {"uri": "file:///m.onnx", "sha256": "a" * 64}}
    )
    edited = ParsedTrainingJob.parse(tj(model="other"))
    assert tjr.ran_spec(ran) is not None
    body = tjr.model_version_body(edited, ok, S, tjr.ran_spec(ran))
    assert body["spec"]["model"] == "iris"  # what the Job trained, not the later edit
    # a Job whose --spec-json no longer parses (an older operator's): the TrainingJob's own spec
    container = ran["spec"]["template"]["spec"]["containers"][0]
    i = container["args"].index("--spec-json") + 1
    container["args"][i] = json.dumps({"model": "iris", "unknownField": 1})
    assert tjr.ran_spec(ran) is None
    assert tjr.model_version_body(edited, ok, S, tjr.ran_spec(ran))["spec"]["model"] == "other"


async def test_a_model_version_that_does_not_parse_is_reported_and_not_verified() -> None:
    obj = mv(3, phase="Ready")
    obj["spec"]["artifact"]["sha256"] = "not-a-digest"
    client = _Client(obj)
    assert await reconcile_model_version(Context(client, S), "ml", "iris-v3") is None
    [patch] = client.status_patches
    ready = cond.find(patch["conditions"], cond.READY)
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.artifact.sha256" in ready["message"] and "pattern" in ready["message"]
    assert "phase" not in patch  # a Ready version stays resolvable; its conditions say what is wrong
    [event] = client.created
    assert event["reason"] == "InvalidSpec"
    await reconcile_model_version(Context(client, S), "ml", "iris-v3")
    assert len(client.status_patches) == 1 and len(client.created) == 1


def test_parsed_model_version_keeps_the_stored_signature_for_the_verifier() -> None:
    raw = mv(3, phase="Pending")
    parsed = ParsedModelVersion.parse(raw)
    assert parsed.spec.version == 3 and parsed.spec.artifact.format == "onnx"  # the API's default
    job = job_builder.verification_job(parsed, S)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    # as stored: the model's own defaults (e.g. task) are not added to what the verifier compares
    assert json.loads(env["ONNXOPS_EXPECT_SIGNATURE_JSON"]) == raw["spec"]["signature"]
    assert mvr.reconcile(parsed, None, [], served_by=[], settings=S, now=T0).job == job
