"""InferenceServices are parsed once, where the handler reads them: a spec that does not parse is reported
in status (field and problem) and one Warning Event, and nothing else is written: the running versions'
Deployments, Services and HPAs are neither changed nor deleted (a serving pod never drops the working
version); the periodic checks skip it. A parsed one carries the API's defaults and its spec as stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from _operator_fixtures import ClientStub, isvc
from pydantic import ValidationError

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.controller.context import Context
from onnxops.controller.handlers import isvc_checks
from onnxops.controller.serving import reconcile_inference_service
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile.rollout import RolloutConfig
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()


def _broken(status: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stored before the API refused it: canary weights that do not fit 1..100, replicas below 0."""
    obj = isvc(replicas=-1, rollout={"steps": [{"weight": 0}, {"weight": 150}]}, status=status)
    return obj


SERVING = {"stableVersion": 1, "phase": "Ready", "observedGeneration": 1, "message": "serving v1"}


class _Client(ClientStub):
    """Answers only the InferenceService's GET: any LIST, apply, PATCH of a child or DELETE fails."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.status_patches: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        assert kind == "InferenceService", f"nothing else is read for a bad spec, not {kind}"
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
        assert kind == "InferenceService"
        self.status_patches.append(status)
        self.obj = {**self.obj, "status": {**(self.obj.get("status") or {}), **status}}
        return self.obj


async def test_a_serving_service_whose_spec_does_not_parse_keeps_serving_and_is_reported() -> None:
    client = _Client(_broken(dict(SERVING)))
    ctx = Context(client, S)
    assert await reconcile_inference_service(ctx, "ml", "iris") is None  # an edit of the spec wakes it
    [patch] = client.status_patches
    stalled = cond.find(patch["conditions"], cond.STALLED)
    assert stalled is not None and stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    # the fields and the problems, in the words of the API
    assert "spec.replicas" in stalled["message"] and "spec.rollout.steps.0.weight" in stalled["message"]
    assert patch["message"] == stalled["message"]
    # the version it serves is still served: Ready is not withdrawn, the rollout state is not touched
    assert cond.find(patch["conditions"], cond.READY) is None
    assert set(patch) == {"conditions", "message"}  # stableVersion, phase, observedGeneration stay
    [event] = client.created
    assert event["type"] == "Warning" and event["reason"] == "InvalidSpec"
    # the periodic checks (drift, capture) skip it: no read, nothing evaluated
    assert await isvc_checks(ctx, "ml", "iris") is None
    # level-triggered: the same state again writes nothing and posts no second Event
    await reconcile_inference_service(ctx, "ml", "iris")
    assert len(client.status_patches) == 1 and len(client.created) == 1


def test_invalid_spec_plan_builds_changes_and_deletes_nothing() -> None:
    obj = _broken()
    with pytest.raises(ValidationError) as info:
        ParsedInferenceService.parse(obj)
    plan = ir.invalid_spec_plan(obj, info.value, T0)
    assert plan.children == [] and plan.delete == [] and plan.reject == [] and plan.readmit == []
    assert plan.route_weights is None and plan.route_mirror is None and not plan.wants_analysis
    # nothing served yet: not Ready, for the same reason
    ready = cond.find(plan.status["conditions"], cond.READY)
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert cond.find(plan.status["conditions"], cond.STALLED)["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert [e[:2] for e in plan.events] == [("Warning", "InvalidSpec")]


def test_parsed_spec_carries_the_api_defaults_and_the_stored_spec() -> None:
    raw = isvc(resources={"requests": {"cpu": 1}}, autoscaling={}, rollout={"steps": [{"weight": 40}]})
    p = ParsedInferenceService.parse(raw)
    assert p.meta.name == "iris" and p.meta.namespace == "ml" and p.meta.generation == 1
    assert p.raw_spec == raw["spec"]  # as stored: the pods embed the user's quantities as given
    assert p.spec.autoscaling is not None and p.spec.autoscaling.max_replicas == 3  # the API's default
    assert ir.total_replicas(p.spec) == 1  # autoscaling: minReplicas (default 1), not replicas
    cfg = RolloutConfig.of(p.spec, p.raw_spec)
    assert cfg.steps == ((40, 0.0),) and cfg.bake_seconds == 120.0 and cfg.progress_deadline == 600.0
    assert ParsedInferenceService.of(p) is p


class _Provider:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def request_stats(self, **kw: Any) -> Any:
        from onnxops.reconcile.analysis import RequestStats

        self.calls.append(kw)
        return RequestStats(requests=200, errors=10, p99_ms=30.0)


async def test_the_canary_is_measured_over_its_step_pause_against_the_thresholds_as_written() -> None:
    from onnxops.controller.serving import analysis_window, measure

    status = {"stableVersion": 1, "canaryVersion": 2, "currentStep": 1}
    steps = [{"weight": 20, "pause": "5s"}, {"weight": 50, "pause": "45s"}]
    p = ParsedInferenceService.parse(
        isvc(rollout={"steps": steps, "analysis": {"maxErrorRate": 0.02}}, status=status)
    )
    assert analysis_window(p) == 45.0
    last = ParsedInferenceService.parse(isvc(rollout={"steps": steps}, status={**status, "currentStep": 0}))
    assert analysis_window(last) == 10.0  # at least 10 s
    none = ParsedInferenceService.parse(isvc(status={**status, "currentStep": 5}))
    assert analysis_window(none) == 60.0  # no such step: 60 s
    provider = _Provider()
    ctx = Context(ClientStub(), S, provider=provider)
    result = await measure(ctx, p, 2)
    assert provider.calls == [
        {"namespace": "ml", "service": "iris", "model": "iris", "version": 2, "window_seconds": 45.0}
    ]
    # 10 errors in 200 requests = 0.05 > maxErrorRate 0.02 (the user's threshold, quoted as written)
    assert result.verdict == "Fail" and "0.02" in result.message
