"""apps/v1 Deployment serving one ModelVersion of an InferenceService."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.modelversion import ParsedModelVersion
from onnxops.drift.names import SERVICE_ENV
from onnxops.settings import Settings

from . import capture, labels, names
from .job import SERVING_COMMAND
from .pod import (
    apply_overrides,
    base_env,
    container_security_context,
    pod_security_context,
    resources,
    storage_access,
    user_env,
    volumes_for,
)

SHUTDOWN_DELAY_SECONDS = 5.0
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}}


def deployment(
    isvc: ParsedInferenceService | Mapping[str, Any],
    mv: ParsedModelVersion | Mapping[str, Any],
    replicas: int | None,
    settings: Settings,
    *,
    mirror: tuple[str, float] | None = None,
    shadow: bool = False,
) -> dict[str, Any]:
    """Deployment ``<isvc>-v<N>``. ``replicas=None`` leaves the count to the HPA. ``mirror`` = (shadow URL,
    sample rate): these pods mirror answered requests to a shadow phase's Service (serving/mirror.py).
    ``shadow``: the shadow phase's own Deployment ``<isvc>-v<N>-shadow``, whose pods no Service of the
    InferenceService selects (they answer mirrored requests only).

    ``isvc``: parsed (a dict is parsed first). What the user gives the pods (resources, env, scheduling)
    is embedded from ``raw_spec`` exactly as stored. ``mv``: the ModelVersion served, parsed (a dict is
    parsed first)."""
    isvc = ParsedInferenceService.of(isvc)
    md, spec = isvc.meta, isvc.spec
    name, model = md.name, spec.model
    mv = ParsedModelVersion.of(mv)
    version, art, prof = mv.spec.version, mv.spec.artifact, mv.spec.profile
    secret = art.credentials_secret.to_dict() if art.credentials_secret is not None else None
    prof_uri = prof.uri if prof is not None else None
    template = isvc.raw_spec.get("template") or {}  # the user's pod overrides, as stored
    overrides = spec.template
    port = settings.serving_port
    volumes, mounts = volumes_for([art.uri, prof_uri], read_only=True)
    sink = capture.capture_sink(isvc, settings)
    if sink is not None:
        capture.mount_writable(volumes, mounts, sink.uri)
    env = [
        *base_env(len(volumes) > 1),
        {"name": "ONNXOPS_MODEL_NAME", "value": model},
        {"name": "ONNXOPS_MODEL_VERSION", "value": str(version)},
        {"name": SERVICE_ENV, "value": name},  # the `inferenceservice` label of its metrics
        {"name": "ONNXOPS_MODEL_URI", "value": art.uri},
        {"name": "ONNXOPS_MODEL_SHA256", "value": art.sha256},
        {"name": "ONNXOPS_PORT", "value": str(port)},
        {"name": "ONNXOPS_GRPC_PORT", "value": str(settings.serving_grpc_port)},  # 0: no gRPC listener
        # a removed pod keeps serving (not ready) until Services stopped sending to it: no failed request
        # when a rollout scales a version down
        {"name": "ONNXOPS_SHUTDOWN_DELAY_SECONDS", "value": f"{SHUTDOWN_DELAY_SECONDS:g}"},
    ]
    if prof is not None and prof.uri:
        env += [
            {"name": "ONNXOPS_PROFILE_URI", "value": prof.uri},
            {"name": "ONNXOPS_PROFILE_SHA256", "value": prof.sha256},
        ]
    s3_env, env_from = storage_access(
        [
            (art.uri, secret),
            (prof_uri, secret),
            *([(sink.uri, sink.credentials_secret)] if sink else []),
        ],
        settings,
    )
    if mirror is not None:
        env += [
            {"name": "ONNXOPS_MIRROR_URL", "value": mirror[0]},
            {"name": "ONNXOPS_MIRROR_SAMPLE_RATE", "value": f"{mirror[1]:g}"},
        ]
    env += s3_env + (sink.env if sink else []) + user_env(template)
    container: dict[str, Any] = {
        "name": "server",
        "image": (overrides.image if overrides else None) or settings.serving_image,
        "imagePullPolicy": (overrides.image_pull_policy if overrides else None) or settings.image_pull_policy,
        "command": list(SERVING_COMMAND),
        "env": env,
        "ports": [
            {"name": "http", "containerPort": port, "protocol": "TCP"},
            *(
                [{"name": "grpc", "containerPort": settings.serving_grpc_port, "protocol": "TCP"}]
                if settings.serving_grpc_port
                else []
            ),
        ],
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": resources(
            isvc.raw_spec.get("resources"),  # the user's quantities, as stored
            template.get("resources"),
            DEFAULT_RESOURCES if settings.serving_resources is None else settings.serving_resources,
        ),
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
    }
    if env_from:
        container["envFrom"] = env_from
    lbl = labels.shadow(name, model, version) if shadow else labels.serving(name, model, version)
    selector = labels.shadow_selector(name, version) if shadow else labels.version_selector(name, version)
    pod_spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    }
    apply_overrides(pod_spec, template)
    dep_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {
                "labels": dict(lbl),
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(port),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": pod_spec,
        },
    }
    if replicas is not None:
        dep_spec["replicas"] = int(replicas)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": names.shadow(name, version) if shadow else names.deployment(name, version),
            "namespace": md.namespace,
            # a shadow's own: found by the InferenceService's label, no version label (never a served one)
            "labels": _shadow_meta(lbl, name) if shadow else lbl,
            "ownerReferences": [labels.owner_of("InferenceService", md)],
        },
        "spec": dep_spec,
    }


def _shadow_meta(lbl: dict[str, str], isvc: str) -> dict[str, str]:
    return {**{k: v for k, v in lbl.items() if k != labels.VERSION}, labels.INFERENCE_SERVICE: isvc}
