"""The operator's Kubernetes client: the one client of ``onnxops/k8s/client.py`` (shared with the local
runtime), under its kube/ name: all of the operator's Kubernetes API I/O goes through kube/."""

from onnxops.k8s.client import (
    FIELD_MANAGER,
    PLURALS,
    SA_DIR,
    WRITE_VERBS,
    ApiError,
    Gone,
    KubeClient,
    api_error,
    resource_path,
)

__all__ = [
    "FIELD_MANAGER",
    "PLURALS",
    "SA_DIR",
    "WRITE_VERBS",
    "ApiError",
    "Gone",
    "KubeClient",
    "api_error",
    "resource_path",
]
