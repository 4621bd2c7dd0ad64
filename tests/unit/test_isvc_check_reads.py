"""The periodic checks after an InferenceService's reconcile (drift, performance, capture) read what the
reconcile read in the same loop turn while no status write has followed it, and GET the object otherwise:
a converged service with monitoring on costs one GET per turn instead of four, and a check never decides on
a status this process has since rewritten."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _operator_fixtures import ClientStub, isvc

from onnxops.controller import capture as capture_loop
from onnxops.controller import drift as drift_loop
from onnxops.controller import handlers
from onnxops.controller import serving as serving_loop
from onnxops.controller.context import Context
from onnxops.reconcile import inferenceservice as ir
from onnxops.settings import Settings

MONITORED = {"monitoring": {"drift": {"method": "psi"}}}
SERVING = {"stableVersion": 1, "phase": "Ready", "observedGeneration": 1, "message": "serving v1"}


class _Client(ClientStub):
    """One stored InferenceService; counts its GETs and records status patches; every LIST is empty."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.isvc_gets = 0
        self.status_patches: list[dict[str, Any]] = []

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        if kind == "Model":
            return None
        assert kind == "InferenceService", kind
        self.isvc_gets += 1
        return {**self.obj, "metadata": dict(self.obj["metadata"]), "status": dict(self.obj["status"])}

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: dict[str, str] | str | None = None,
    ) -> list[dict[str, Any]]:
        return []

    async def patch_status(
        self, api_version: str, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status_patches.append(status)
        self.obj["status"] = {**self.obj["status"], **status}
        return self.obj


def _ctx(client: _Client) -> Context:
    return Context(client=client, settings=Settings(), provider=None)


def _plan(status_patch: dict[str, Any]) -> ir.IsvcPlan:
    return ir.IsvcPlan(status={**SERVING, **status_patch}, status_patch=status_patch)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any] | None]:
    """The checks replaced by ones that only read the object the way the real ones do (ctx.read_isvc)."""
    seen: list[dict[str, Any] | None] = []

    async def read(ctx: Context, ns: str, name: str) -> float | None:
        obj = await ctx.read_isvc(ns, name)
        seen.append(obj)
        if obj is not None:
            obj["status"]["touched"] = True  # a check may add to what it reads: never to the snapshot
        return 30.0

    async def nothing() -> None:
        return None

    monkeypatch.setattr(drift_loop, "evaluate_if_due", read)
    monkeypatch.setattr(capture_loop, "check_capture_if_due", read)
    monkeypatch.setattr(handlers, "drift_modules", nothing)
    return seen


def _turn(ctx: Context, plan: ir.IsvcPlan, monkeypatch: pytest.MonkeyPatch) -> float | None:
    """One loop turn: the reconcile (its decision replaced by ``plan``), then the checks."""
    monkeypatch.setattr(serving_loop.ir, "reconcile", lambda *a, **k: plan)

    async def turn() -> float | None:
        await serving_loop.reconcile_inference_service(ctx, "ml", "iris")
        return await handlers.isvc_checks(ctx, "ml", "iris")

    return asyncio.run(turn())


def test_a_converged_turn_reads_the_object_once(
    checks: list[dict[str, Any] | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _Client(isvc(status=dict(SERVING), **MONITORED))
    ctx = _ctx(client)
    assert _turn(ctx, _plan({}), monkeypatch) == 30.0
    assert client.isvc_gets == 1  # the reconcile's; both checks read its copy
    assert len(checks) == 2 and all(c is not None and c["status"]["stableVersion"] == 1 for c in checks)
    assert checks[0] is not checks[1]  # each check gets its own copy
    assert ctx.unwritten == {}  # kept for this turn's checks only
    # the next turn reads anew
    _turn(ctx, _plan({}), monkeypatch)
    assert client.isvc_gets == 2


def test_after_a_status_write_the_checks_read_the_stored_object(
    checks: list[dict[str, Any] | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _Client(isvc(status=dict(SERVING), **MONITORED))
    ctx = _ctx(client)
    _turn(ctx, _plan({"message": "rolled"}), monkeypatch)
    assert client.status_patches == [{"message": "rolled"}]
    assert client.isvc_gets == 3  # the reconcile's, then one per check
    assert all(c is not None and c["status"]["message"] == "rolled" for c in checks)


def test_a_check_that_writes_makes_the_next_check_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _Client(isvc(status=dict(SERVING), **MONITORED))
    ctx = _ctx(client)
    seen: list[str] = []

    async def drift(c: Context, ns: str, name: str) -> float | None:
        obj = await c.read_isvc(ns, name)
        assert obj is not None
        seen.append(obj["status"]["message"])
        await serving_loop.apply_plan(c, obj, _plan({"message": "drift decided"}), [])
        return None

    async def capture(c: Context, ns: str, name: str) -> float | None:
        obj = await c.read_isvc(ns, name)
        assert obj is not None
        seen.append(obj["status"]["message"])
        return None

    async def nothing() -> None:
        return None

    monkeypatch.setattr(drift_loop, "evaluate_if_due", drift)
    monkeypatch.setattr(capture_loop, "check_capture_if_due", capture)
    monkeypatch.setattr(handlers, "drift_modules", nothing)
    _turn(ctx, _plan({}), monkeypatch)
    assert seen == ["serving v1", "drift decided"]
    assert client.isvc_gets == 2  # the reconcile's, and the capture check's after the drift write


def test_the_snapshot_is_dropped_when_a_check_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _Client(isvc(status=dict(SERVING), **MONITORED))
    ctx = _ctx(client)

    async def broken(c: Context, ns: str, name: str) -> float | None:
        raise RuntimeError("source down")

    async def nothing() -> None:
        return None

    monkeypatch.setattr(drift_loop, "evaluate_if_due", broken)
    monkeypatch.setattr(handlers, "drift_modules", nothing)
    with pytest.raises(RuntimeError):
        _turn(ctx, _plan({}), monkeypatch)
    assert ctx.unwritten == {}


def test_read_isvc_without_a_reconcile_gets_the_object() -> None:
    client = _Client(isvc(status=dict(SERVING), **MONITORED))
    ctx = _ctx(client)
    obj = asyncio.run(ctx.read_isvc("ml", "iris"))
    assert obj is not None and obj["status"] == SERVING and client.isvc_gets == 1


def test_the_capture_check_leaves_a_service_whose_spec_does_not_parse_alone() -> None:
    """Its reconcile reports the spec (InvalidSpec); the check neither lists its pods nor writes its status,
    not even to remove a CaptureHealthy condition it had before."""
    healthy = {"type": "CaptureHealthy", "status": "True", "reason": "SinkWritable", "message": ""}
    obj = isvc(status={**SERVING, "conditions": [healthy]}, logging={"enabled": True, "sampleRate": 2})
    client = _Client(obj)
    listed: list[str] = []

    async def no_list(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        listed.append(str(args[1]))
        return []

    client.list = no_list  # type: ignore[method-assign]
    assert asyncio.run(capture_loop.check_capture_if_due(_ctx(client), "ml", "iris")) is None
    assert client.status_patches == [] and listed == [] and client.isvc_gets == 1
