"""core/v1 Services: one selecting every served version, and per-version ones for HTTPRoute weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService

from . import labels, names

SERVICE_PORT = 80
GRPC_SERVICE_PORT = 8081  # the port named `grpc`: the Open Inference Protocol's gRPC form (HTTP/2, no TLS)


def _service(
    isvc: ParsedInferenceService,
    name: str,
    selector: dict[str, str],
    extra: dict[str, str],
    target_port: int,
    grpc_port: int,
) -> dict[str, Any]:
    md = isvc.meta
    ports: list[dict[str, Any]] = [
        {"name": "http", "port": SERVICE_PORT, "targetPort": target_port, "protocol": "TCP"}
    ]
    if grpc_port:
        ports.append(
            {
                "name": "grpc",
                "port": GRPC_SERVICE_PORT,
                "targetPort": grpc_port,
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": md.namespace,
            "labels": {**labels.base("serving"), labels.INFERENCE_SERVICE: md.name, **extra},
            "ownerReferences": [labels.owner_of("InferenceService", md)],
        },
        "spec": {
            "selector": selector,
            "ports": ports,
        },
    }


def service(
    isvc: ParsedInferenceService | Mapping[str, Any], target_port: int = 8080, grpc_port: int = 0
) -> dict[str, Any]:
    """Service ``<isvc>``: port 80 (``http``) -> the server's port, and with ``grpc_port`` port 8081
    (``grpc``) -> the server's gRPC port, on every served version's pods. ``isvc``: parsed (a dict is
    parsed first)."""
    isvc = ParsedInferenceService.of(isvc)
    name = isvc.meta.name
    return _service(isvc, names.service(name), labels.serving_selector(name), {}, target_port, grpc_port)


def version_service(
    isvc: ParsedInferenceService | Mapping[str, Any],
    version: int,
    target_port: int = 8080,
    grpc_port: int = 0,
) -> dict[str, Any]:
    """Service ``<isvc>-v<N>`` for one version (an HTTPRoute backend with an exact weight)."""
    isvc = ParsedInferenceService.of(isvc)
    name = isvc.meta.name
    return _service(
        isvc,
        names.version_service(name, version),
        labels.version_selector(name, version),
        {labels.VERSION: str(version)},
        target_port,
        grpc_port,
    )


def shadow_service(
    isvc: ParsedInferenceService | Mapping[str, Any],
    version: int,
    target_port: int = 8080,
    grpc_port: int = 0,
) -> dict[str, Any]:
    """Service ``<isvc>-v<N>-shadow``: the shadow phase's pods, the target of mirrored requests (the stable
    pods' mirror or an HTTPRoute RequestMirror filter). No version label: it is never a weighted backend."""
    isvc = ParsedInferenceService.of(isvc)
    name = isvc.meta.name
    return _service(
        isvc,
        names.shadow(name, version),
        labels.shadow_selector(name, version),
        {labels.SHADOW_OF: name},
        target_port,
        grpc_port,
    )
