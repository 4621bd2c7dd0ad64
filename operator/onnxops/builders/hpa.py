"""autoscaling/v2 HorizontalPodAutoscaler for one served version's Deployment."""

from __future__ import annotations

from typing import Any

from . import labels, names


def hpa(
    isvc: dict[str, Any], version: int, min_replicas: int, max_replicas: int, target_cpu: int
) -> dict[str, Any]:
    md = isvc["metadata"]
    name = md["name"]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": names.hpa(name, version),
            "namespace": md.get("namespace", "default"),
            "labels": labels.serving(name, isvc["spec"]["model"], version),
            "ownerReferences": [labels.owner_reference(isvc)],
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
