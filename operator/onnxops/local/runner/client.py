"""The local controllers' client: ``onnxops/k8s/resources.py`` (verbs by ``Resource`` and an informer cache)
on the one REST client of ``onnxops/k8s/client.py``, which the operator uses too. TLS is verified unless the
caller passes ``ssl_context=False``; errors are the shared ``ApiError`` (``Gone`` for 410).
"""

from onnxops.k8s.client import ApiError, Gone
from onnxops.k8s.resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    ENDPOINTS,
    EVENTS,
    JOBS,
    NAMESPACES,
    PODS,
    PVCS,
    SECRETS,
    SERVICES,
    Obj,
    Resource,
    ResourceClient,
    ResourceInformer,
    obj_key,
    rv_newer,
)

__all__ = [
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "ENDPOINTS",
    "EVENTS",
    "JOBS",
    "NAMESPACES",
    "PODS",
    "PVCS",
    "SECRETS",
    "SERVICES",
    "ApiError",
    "Gone",
    "Obj",
    "Resource",
    "ResourceClient",
    "ResourceInformer",
    "obj_key",
    "rv_newer",
]
