"""Object factories shared by the builder and reconcile unit tests."""

from __future__ import annotations

from typing import Any


class ClientStub:
    """A Kubernetes client (``kube/protocol.KubeApi``) for tests: any verb the test did not expect fails.
    In-memory fakes subclass it and implement the verbs the code under test uses."""

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        raise AssertionError(f"unexpected GET {kind} {namespace}/{name}")

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: dict[str, str] | str | None = None,
    ) -> list[dict[str, Any]]:
        raise AssertionError(f"unexpected LIST {kind} in {namespace}")

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError(f"unexpected POST {obj.get('kind')}")

    async def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        raise AssertionError(f"unexpected apply of {obj.get('kind')}")

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        raise AssertionError(f"unexpected PATCH {kind} {namespace}/{name}")

    async def patch_status(
        self, api_version: str, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        raise AssertionError(f"unexpected status PATCH {kind} {namespace}/{name}")

    async def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
    ) -> bool:
        raise AssertionError(f"unexpected DELETE {kind} {namespace}/{name}")

    async def close(self) -> None:
        return None


SHA_A = "a" * 64
SHA_B = "b" * 64


def tj(name: str = "iris", *, uid: str = "uid-1", gen: int = 1, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "iris",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "LogisticRegression", "params": {"max_iter": 200}},
        "backoffLimit": 2,
    }
    body.update(spec)
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": "ml", "uid": uid, "generation": gen},
        "spec": body,
    }


def mv(
    version: int,
    *,
    model: str = "iris",
    phase: str | None = "Ready",
    rejected: bool | str = False,
    uri: str = "pvc://artifacts/models/iris/x/model.onnx",
    **status: Any,
) -> dict[str, Any]:
    st: dict[str, Any] = dict(status)
    if phase:
        st["phase"] = phase
    if rejected:  # True: rejected by the InferenceService `iris`; a string names the service
        by = "iris" if rejected is True else rejected
        st["rejected"] = True
        st["rejectedBy"] = {by: {"reason": "DriftDetected", "at": "2026-01-01T00:00:00Z"}}
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {
            "name": f"{model}-v{version}",
            "namespace": "ml",
            "uid": f"mv-{version}",
            "generation": 1,
        },
        "spec": {
            "model": model,
            "version": version,
            "artifact": {"uri": uri, "sha256": SHA_A},
            "profile": {"uri": uri.replace("model.onnx", "profile.json"), "sha256": SHA_B},
            "signature": {
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
                "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
            },
            "metrics": {"accuracy": 0.95},
        },
        "status": st,
    }


def isvc(
    name: str = "iris", *, gen: int = 1, status: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "iris", "version": "latest", "replicas": 4}
    body.update(spec)
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "ml", "uid": "isvc-uid", "generation": gen},
        "spec": body,
        "status": status or {},
    }


def ready(obj: dict[str, Any], n: int | None = None) -> dict[str, Any]:
    """An observed Deployment with ``n`` (default: its replicas) ready pods."""
    out = {**obj, "status": {"readyReplicas": obj["spec"].get("replicas", 1) if n is None else n}}
    return out
