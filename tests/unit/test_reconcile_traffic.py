"""Replicas per version during a rollout (surge: capacity never drops, issue 23 §6) and the traffic share the
canary really gets without an HTTPRoute (issue 22), with the status pieces an on-call reader sees."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from _operator_fixtures import isvc, mv, ready

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec
from onnxops.builders.deployment import deployment
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile.state import RolloutState
from onnxops.reconcile.traffic import effective_weight, inexact_steps, replicas_for, replicas_plan
from onnxops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
S = Settings()
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
CANARY_50 = RolloutState(stable=1, canary=2, weight=50, step=0)


@pytest.mark.parametrize(
    "state,total,ready,plan",
    [
        # the canary starts: the stable keeps all its pods until canary pods are Ready
        (CANARY_50, 2, {1: 2}, {1: 2, 2: 1}),
        (CANARY_50, 2, {1: 2, 2: 1}, {1: 1, 2: 1}),
        (CANARY_50, 4, {1: 4, 2: 0}, {1: 4, 2: 2}),
        (CANARY_50, 4, {1: 4, 2: 1}, {1: 3, 2: 2}),
        (CANARY_50, 4, {1: 3, 2: 2}, {1: 2, 2: 2}),
        # the next step (20 % -> 50 % of 4): one more canary pod, the stable waits for it
        (RolloutState(stable=1, canary=2, weight=50, step=1), 4, {1: 3, 2: 1}, {1: 3, 2: 2}),
        # promoted: the previous version keeps what the promoted one does not run yet, at least one pod
        (RolloutState(stable=2, previous=1), 4, {2: 2, 1: 2}, {2: 4, 1: 2}),
        (RolloutState(stable=2, previous=1), 4, {2: 4, 1: 2}, {2: 4, 1: 1}),
        # nothing observed: the final split (as before)
        (CANARY_50, 4, None, {1: 2, 2: 2}),
        (RolloutState(stable=2, previous=1), 4, None, {2: 4, 1: 1}),
    ],
)
def test_surge_plan(
    state: RolloutState, total: int, ready: dict[int, int] | None, plan: dict[int, int]
) -> None:
    assert replicas_plan(state, total, ready) == plan


def test_stable_keeps_its_pods_until_the_canary_is_ready() -> None:
    obj = isvc(replicas=2, status={"stableVersion": 1}, rollout={"steps": [{"weight": 50, "pause": "5s"}]})
    running = [ready(deployment(obj, mv(1), 2, S))]
    plan = ir.reconcile(obj, [mv(1), mv(2)], running, settings=S, now=T0)
    reps = {d["metadata"]["name"]: d["spec"]["replicas"] for d in plan.children if d["kind"] == "Deployment"}
    assert reps == {"iris-v1": 2, "iris-v2": 1}
    obj["status"] = {k: v for k, v in plan.status.items() if v is not None}
    running.append(ready(deployment(obj, mv(2), 1, S)))
    plan = ir.reconcile(obj, [mv(1), mv(2)], running, settings=S, now=T0)
    reps = {d["metadata"]["name"]: d["spec"]["replicas"] for d in plan.children if d["kind"] == "Deployment"}
    assert reps == {"iris-v1": 1, "iris-v2": 1}


@pytest.mark.parametrize(
    "total,weight,share",
    [
        (2, 10, 50.0),
        (10, 10, 10.0),
        (4, 25, 25.0),
        (5, 20, 20.0),
        (3, 33, 100 / 3),
        (2, 50, 50.0),
        (1, 50, 50.0),
    ],
)
def test_effective_weight(total: int, weight: int, share: float) -> None:
    # pods: canary = max(1, round(total * w / 100)), stable = the rest (>= 1); share = canary / all pods
    assert effective_weight(total, weight) == pytest.approx(share)


@pytest.mark.parametrize(
    "weights,start,need",
    [([10, 50], 2, 10), ([25, 50], 2, 4), ([20, 50], 1, 10), ([50], 1, 1), ([20], 6, 10)],
)
def test_replicas_that_express_the_steps(weights: list[int], start: int, need: int) -> None:
    assert replicas_for(weights, start) == need


def _spec(spec: dict[str, Any]) -> InferenceServiceSpec:
    return InferenceServiceSpec.model_validate(spec)


def test_inexact_steps() -> None:
    # the iris example before issue 22: 2 replicas, steps of 10 % and 50 %
    spec = {"model": "iris", "replicas": 2, "rollout": {"steps": [{"weight": 10}, {"weight": 50}]}}
    warning = inexact_steps(_spec(spec), 2)
    assert warning is not None and "10% -> 50%" in warning and "10 replicas" in warning
    routed = {**spec, "rollout": {**spec["rollout"], "httpRoute": {"name": "web"}}}
    assert inexact_steps(_spec(routed), 2) is None
    assert inexact_steps(_spec(spec), 10) is None


def test_the_iris_example_expresses_its_steps() -> None:
    spec = yaml.safe_load((ROOT / "examples/inferenceservice-iris.yaml").read_text())["spec"]
    assert inexact_steps(_spec(spec), int(spec["replicas"])) is None


def test_status_reports_effective_weight_and_warns() -> None:
    obj = isvc(replicas=2, status={"stableVersion": 1}, rollout={"steps": [{"weight": 10, "pause": "1m"}]})
    plan = ir.reconcile(obj, [mv(1), mv(2)], [ready(deployment(obj, mv(1), 2, S))], settings=S, now=T0)
    st = plan.status
    assert (st["canaryWeight"], st["effectiveCanaryWeight"]) == (10, 50)
    c = cond.find(st["conditions"], cond.TRAFFIC_SPLIT_INEXACT)
    assert c and c["status"] == "True" and "10 replicas" in c["message"]
    routed = isvc(
        replicas=2,
        status={"stableVersion": 1},
        rollout={"steps": [{"weight": 10}], "httpRoute": {"name": "web"}},
    )
    st = ir.reconcile(routed, [mv(1), mv(2)], [], settings=S, now=T0).status
    assert (
        st["effectiveCanaryWeight"] == 10 and cond.find(st["conditions"], cond.TRAFFIC_SPLIT_INEXACT) is None
    )


def test_reduced_capacity_is_reported() -> None:
    obj = isvc(replicas=2, status={"stableVersion": 6}, rollout={"steps": [{"weight": 50}]})
    half = ready(deployment(obj, mv(6), 2, S), 1)
    st = ir.reconcile(obj, [mv(6)], [half], settings=S, now=T0).status
    assert st["phase"] == "Ready" and st["reason"] == "CapacityReduced"
    assert st["capacity"] == [{"version": 6, "role": "Stable", "desired": 2, "ready": 1}]
    c = cond.find(st["conditions"], cond.CAPACITY_REDUCED)
    assert c and c["status"] == "True" and "1/2" in c["message"] and "1/2" in st["message"]
    full = ready(deployment(obj, mv(6), 2, S))
    st = ir.reconcile(obj, [mv(6)], [full], settings=S, now=T0).status
    assert st["reason"] == "Available" and cond.find(st["conditions"], cond.CAPACITY_REDUCED) is None


def test_a_child_already_being_deleted_is_not_deleted_again() -> None:
    """Pods drain for a few seconds after a scale-down or delete: a converged reconcile meanwhile writes
    nothing (no second DELETE of the Deployment that is going)."""
    obj = isvc(replicas=2, status={"stableVersion": 2})
    going = ready(deployment(obj, mv(1), 1, S))
    going["metadata"]["deletionTimestamp"] = "2026-01-01T11:59:59Z"
    plan = ir.reconcile(obj, [mv(1), mv(2)], [ready(deployment(obj, mv(2), 2, S)), going], settings=S, now=T0)
    assert plan.delete == []
    del going["metadata"]["deletionTimestamp"]
    plan = ir.reconcile(obj, [mv(1), mv(2)], [ready(deployment(obj, mv(2), 2, S)), going], settings=S, now=T0)
    assert plan.delete == [("apps/v1", "Deployment", "iris-v1")]
