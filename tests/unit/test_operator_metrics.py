"""The operator's own metrics (onnxops.controller.opmetrics): a reconcile loop moves the counters, the
latency histogram and the watched-objects gauge; a plan's new rollback/promotion moves the decisions
counter; the endpoint serves them in Prometheus' text format (parsed by prometheus_client)."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from typing import Any

from _operator_fixtures import ClientStub
from prometheus_client.parser import text_string_to_metric_families

from onnxops.controller import opmetrics
from onnxops.kube.client import ApiError


def value(name: str, **labels: str) -> float:
    return opmetrics.REGISTRY.get_sample_value(name, labels) or 0.0


class _Client(ClientStub):
    """What run_loop's error reporting and apply_plan touch."""

    def __init__(self) -> None:
        self.status_patches: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        return {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "uid": "u"},
            "spec": {},
            "status": {},
        }

    async def patch_status(
        self, api_version: str, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status_patches.append(status)
        return {}

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.created.append(obj)
        return obj


async def test_a_reconcile_loop_moves_the_counters() -> None:
    from onnxops.controller import handlers
    from onnxops.controller.context import Context
    from onnxops.settings import Settings

    kind = "TrainingJob"
    before = {
        "ok": value("onnxops_operator_reconciles_total", kind=kind, result="success"),
        "conflict": value("onnxops_operator_reconciles_total", kind=kind, result="conflict"),
        "error": value("onnxops_operator_reconciles_total", kind=kind, result="error"),
        "value_error": value("onnxops_operator_reconcile_errors_total", kind=kind, error="ValueError"),
        "api_403": value("onnxops_operator_reconcile_errors_total", kind=kind, error="api_403"),
        "count": value("onnxops_operator_reconcile_duration_seconds_count", kind=kind),
        "objects": value("onnxops_operator_watched_objects", kind=kind),
    }
    outcomes: list[Any] = [
        None,
        ApiError(409, "Conflict", "c"),
        ValueError("kaput"),
        ApiError(403, "Forbidden", "f"),
        None,
    ]
    seen_objects: list[float] = []

    class Stopped:
        def __bool__(self) -> bool:
            return not outcomes

        async def wait(self) -> None:
            await asyncio.sleep(3600)

    async def step(ctx: Context, ns: str, name: str) -> float | None:
        seen_objects.append(value("onnxops_operator_watched_objects", kind=kind))
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return 0.01

    ctx = Context(_Client(), Settings.from_env())
    handlers.MAX_BACKOFF = 0.01  # keep the retry delays of the test short
    try:
        await asyncio.wait_for(
            handlers.run_loop(kind, step, ctx, "default", "x", Stopped()),  # type: ignore[arg-type]
            timeout=30,
        )
    finally:
        handlers.MAX_BACKOFF = 60.0
    assert value("onnxops_operator_reconciles_total", kind=kind, result="success") == before["ok"] + 2
    assert value("onnxops_operator_reconciles_total", kind=kind, result="conflict") == before["conflict"] + 1
    assert value("onnxops_operator_reconciles_total", kind=kind, result="error") == before["error"] + 2
    assert (
        value("onnxops_operator_reconcile_errors_total", kind=kind, error="ValueError")
        == before["value_error"] + 1
    )
    assert (
        value("onnxops_operator_reconcile_errors_total", kind=kind, error="api_403") == before["api_403"] + 1
    )
    # a conflict is retried at once, not an error: no errors series for 409
    assert value("onnxops_operator_reconcile_errors_total", kind=kind, error="api_409") == 0
    assert value("onnxops_operator_reconcile_duration_seconds_count", kind=kind) == before["count"] + 5
    assert seen_objects and set(seen_objects) == {before["objects"] + 1}  # counted while the loop runs
    assert value("onnxops_operator_watched_objects", kind=kind) == before["objects"]  # and not after


def test_new_decisions_counts_only_added_history_entries() -> None:
    old = [{"action": "Promoted", "version": 1, "at": "2026-01-01T00:00:00Z"}]
    new = [
        *old,
        {"action": "Deployed", "version": 2, "at": "t2"},
        {"action": "RolledBack", "version": 2, "at": "t3", "reason": "AnalysisFailed"},
    ]
    assert opmetrics.new_decisions(old, new) == [("RolledBack", "AnalysisFailed")]
    assert opmetrics.new_decisions(new, new) == []
    assert opmetrics.new_decisions(None, old) == [("Promoted", "")]


async def test_applying_a_rollback_plan_counts_the_decision() -> None:
    from onnxops.controller.context import Context
    from onnxops.controller.serving import apply_plan
    from onnxops.reconcile.inferenceservice import IsvcPlan
    from onnxops.settings import Settings

    isvc = {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u"},
        "spec": {"model": "iris"},
        "status": {"stableVersion": 1, "canaryVersion": 2, "history": []},
    }
    entry = {"action": "RolledBack", "version": 2, "at": "2026-01-01T00:00:00Z", "reason": "DriftDetected"}
    status = {"stableVersion": 1, "canaryVersion": None, "history": [entry]}
    plan = IsvcPlan(status=status, status_patch={"canaryVersion": None, "history": [entry]})
    labels = {"kind": "InferenceService", "decision": "RolledBack", "reason": "DriftDetected"}
    before = value("onnxops_operator_decisions_total", **labels)
    client = _Client()
    ctx = Context(client, Settings.from_env())
    await apply_plan(ctx, isvc, plan, [])
    assert value("onnxops_operator_decisions_total", **labels) == before + 1
    # the same status seen again (the next reconcile writes nothing) is not a new decision
    await apply_plan(ctx, {**isvc, "status": status}, IsvcPlan(status=status, status_patch={}), [])
    assert value("onnxops_operator_decisions_total", **labels) == before + 1


def test_the_endpoint_serves_the_families() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opmetrics.RECONCILES.labels(kind="ModelVersion", result="success").inc()
    server = opmetrics.serve(port, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["onnxops_operator_build_info"].samples[0].value == 1
    assert families["onnxops_operator_reconciles"].type == "counter"
    assert families["onnxops_operator_reconcile_duration_seconds"].type == "histogram"
    assert {
        "onnxops_operator_decisions",
        "onnxops_operator_watched_objects",
        "onnxops_operator_reconcile_errors",
    } <= set(families)
