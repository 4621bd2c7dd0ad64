"""core/v1 Services: one selecting every served version, and per-version ones for HTTPRoute weights."""

from __future__ import annotations

from typing import Any

from . import labels, names

SERVICE_PORT = 80


def _service(
    isvc: dict[str, Any], name: str, selector: dict[str, str], extra: dict[str, str], target_port: int
) -> dict[str, Any]:
    md = isvc["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": md.get("namespace", "default"),
            "labels": {**labels.base("serving"), labels.INFERENCE_SERVICE: md["name"], **extra},
            "ownerReferences": [labels.owner_reference(isvc)],
        },
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": target_port, "protocol": "TCP"}],
        },
    }


def service(isvc: dict[str, Any], target_port: int = 8080) -> dict[str, Any]:
    """Service ``<isvc>``: port 80 -> the server's port on every served version's pods."""
    name = isvc["metadata"]["name"]
    return _service(isvc, names.service(name), labels.serving_selector(name), {}, target_port)


def version_service(isvc: dict[str, Any], version: int, target_port: int = 8080) -> dict[str, Any]:
    """Service ``<isvc>-v<N>`` for one version (an HTTPRoute backend with an exact weight)."""
    name = isvc["metadata"]["name"]
    return _service(
        isvc,
        names.version_service(name, version),
        labels.version_selector(name, version),
        {labels.VERSION: str(version)},
        target_port,
    )
