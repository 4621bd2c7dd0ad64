"""autoscaling/v2 HorizontalPodAutoscaler for one served version's Deployment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService

from . import labels, names


def hpa(
    isvc: ParsedInferenceService | Mapping[str, Any],
    version: int,
    min_replicas: int,
    max_replicas: int,
    target_cpu: int,
) -> dict[str, Any]:
    """HPA ``<isvc>-v<N>``. ``isvc``: parsed (a dict is parsed first)."""
    isvc = ParsedInferenceService.of(isvc)
    md = isvc.meta
    name = md.name
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": names.hpa(name, version),
            "namespace": md.namespace,
            "labels": labels.serving(name, isvc.spec.model, version),
            "ownerReferences": [labels.owner_of("InferenceService", md)],
        },
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": names.deployment(name, version),
            },
            "minReplicas": max(1, int(min_replicas)),
            "maxReplicas": max(int(max_replicas), int(min_replicas), 1),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": int(target_cpu)},
                    },
                }
            ],
        },
    }
