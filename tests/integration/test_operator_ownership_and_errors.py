"""Against the API emulator: a reconcile error lands in status (Stalled, scrubbed), and ensure() never
rewrites a user's object that carries our child's name."""

from __future__ import annotations

from typing import Any

import pytest

from onnxops.controller import handlers
from onnxops.controller.context import API, TJ, Context
from onnxops.kube.apply import ensure
from onnxops.kube.client import KubeClient
from onnxops.reconcile.errors import NameConflict
from onnxops.settings import Settings


def service(owner_uid: str | None, port: int) -> dict[str, Any]:
    md: dict[str, Any] = {
        "name": "iris",
        "namespace": "default",
        "labels": {"onnxops.dev/inference-service": "iris"},
    }
    if owner_uid:
        md["ownerReferences"] = [
            {
                "apiVersion": API,
                "kind": "InferenceService",
                "name": "iris",
                "uid": owner_uid,
                "controller": True,
            }
        ]
    return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": {"ports": [{"port": port}]}}


async def test_ensure_does_not_rewrite_a_users_service(client: KubeClient) -> None:
    await client.create(service(None, 8080))
    with pytest.raises(NameConflict, match="Service default/iris"):
        await ensure(client, service("uid-1", 80))
    got = await client.get("v1", "Service", "default", "iris")
    assert got is not None and got["spec"]["ports"][0]["port"] == 8080


async def test_reconcile_error_is_written_to_status(client: KubeClient) -> None:
    body = {
        "apiVersion": API,
        "kind": TJ,
        "metadata": {"name": "iris", "namespace": "default"},
        "spec": {
            "model": "iris",
            "dataset": {"uri": "sklearn://iris"},
            "estimator": {"className": "LogisticRegression"},
        },
    }
    await client.create(body)
    ctx = Context(client, Settings.from_env())
    await handlers.report_error(ctx, TJ, "default", "iris", RuntimeError("boom password=hunter2"))
    tj = await client.get(API, TJ, "default", "iris")
    assert tj is not None
    conds = {c["type"]: c for c in tj["status"]["conditions"]}
    assert conds["Stalled"]["status"] == "True" and conds["Stalled"]["reason"] == "ReconcileError"
    assert conds["Ready"]["status"] == "False"
    assert "hunter2" not in conds["Stalled"]["message"] and "boom" in conds["Stalled"]["message"]
    assert tj["status"]["observedGeneration"] == tj["metadata"]["generation"]
    events = await client.list("v1", "Event", "default")
    assert any(e["reason"] == "ReconcileError" for e in events)
