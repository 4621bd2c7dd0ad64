"""Regression tests for review findings on the controller, kube client helpers, reconcilers and builders."""

from __future__ import annotations

from typing import Any

import pytest

from onnxops.kube.apply import ensure
from onnxops.kube.client import ApiError


class FakeClient:
    """The slice of KubeClient that ensure() uses, backed by a dict."""

    def __init__(self, objects: dict[tuple[str, str, str], dict[str, Any]] | None = None) -> None:
        self.objects = objects or {}
        self.patches: list[dict[str, Any]] = []
        self.create_conflicts = False

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        md = body["metadata"]
        key = (body["kind"], md.get("namespace"), md["name"])
        if self.create_conflicts or key in self.objects:
            raise ApiError(409, "AlreadyExists", "exists")
        self.objects[key] = body
        return body

    async def get(self, api: str, kind: str, ns: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, ns, name))  # type: ignore[arg-type]

    async def merge_patch(
        self, api: str, kind: str, ns: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.patches.append(patch)
        return self.objects[(kind, ns, name)]  # type: ignore[index]


def svc(owner_uid: str | None = "uid-1", port: int = 80) -> dict[str, Any]:
    md: dict[str, Any] = {"name": "s", "namespace": "default", "labels": {"a": "b"}}
    if owner_uid:
        md["ownerReferences"] = [
            {"apiVersion": "onnxops.dev/v1alpha1", "kind": "InferenceService", "name": "o", "uid": owner_uid,
             "controller": True}
        ]
    return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": {"ports": [{"port": port}]}}


async def test_ensure_conflict_then_gone_raises_409_not_runtime_error() -> None:
    c = FakeClient()
    c.create_conflicts = True  # create says 409, the get finds nothing (deleted in between)
    with pytest.raises(ApiError) as e:
        await ensure(c, svc())  # type: ignore[arg-type]
    assert e.value.status == 409
