"""The operator's API client against the API emulator: the 404/409 policy of ensure(), and ModelVersion
registration that stays unique when two registrations race (the API server's create is the lock)."""

from __future__ import annotations

import asyncio
from typing import Any

from onnxops.controller.training import register_model_version
from onnxops.kube.apply import ensure
from onnxops.kube.client import KubeClient


def mv_body(uid: str, model: str = "race") -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {
            "namespace": "default",
            "labels": {"onnxops.dev/training-job-uid": uid, "onnxops.dev/model": model},
        },
        "spec": {"model": model, "artifact": {"uri": "file:///m.onnx", "sha256": "a" * 64}},
    }


async def test_racing_registrations_get_distinct_versions_and_repeat_is_idempotent(
    client: KubeClient,
) -> None:
    names = await asyncio.gather(*(register_model_version(client, mv_body(f"uid-{i}")) for i in range(3)))
    assert sorted(names) == ["race-v1", "race-v2", "race-v3"]
    assert client.requests["POST"] > 3  # at least one create lost the race (409) and retried
    posts = client.requests["POST"]
    assert await register_model_version(client, mv_body("uid-1")) == names[1]
    assert client.requests["POST"] == posts  # found by the uid label: no new version


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default", "labels": {"a": "b"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }


async def test_ensure_creates_patches_only_on_difference(client: KubeClient) -> None:
    action, obj = await ensure(client, deployment(2))
    assert action == "created"
    writes = client.writes
    action, _ = await ensure(client, deployment(2), obj)
    assert action == "unchanged" and client.writes == writes
    action, _ = await ensure(client, deployment(2))  # not observed: create -> 409 -> get -> equal
    assert action == "unchanged"
    action, obj = await ensure(client, deployment(3), obj)
    assert action == "patched" and obj["spec"]["replicas"] == 3
    assert (await client.get("apps/v1", "Deployment", "default", "d"))["spec"]["replicas"] == 3
    assert await client.get("apps/v1", "Deployment", "default", "missing") is None
    assert await client.delete("apps/v1", "Deployment", "default", "d") is True
    assert await client.delete("apps/v1", "Deployment", "default", "d") is False
