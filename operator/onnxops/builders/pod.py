"""Pieces shared by every pod the operator creates: security context, PVC volumes, credentials."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from onnxops.settings import PVC_MOUNT_ROOT, TERMINATION_LOG

_PVC = re.compile(r"^pvc://([a-z0-9]([-a-z0-9]*[a-z0-9])?)/")
RUN_AS_USER = 1000


def pvc_claim(uri: str | None) -> str | None:
    """The claim of a ``pvc://<claim>/<path>`` URI, else None."""
    m = _PVC.match(uri or "")
    return m.group(1) if m else None


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def volumes_for(
    uris: Iterable[str | None], *, read_only: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts): an emptyDir at /tmp (read-only root filesystem) and one mount per PVC claim
    under ``PVC_MOUNT_ROOT/<claim>``, in a stable order."""
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    claims = sorted({c for c in (pvc_claim(u) for u in uris) if c})
    for i, claim in enumerate(claims):
        name = f"pvc-{i}"
        volumes.append({"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}})
        mounts.append({"name": name, "mountPath": f"{PVC_MOUNT_ROOT}/{claim}", "readOnly": read_only})
    return volumes, mounts


def env_from_secrets(names: Iterable[str | None]) -> list[dict[str, Any]]:
    """envFrom entries for credentials Secrets (values never leave the Secret)."""
    return [{"secretRef": {"name": n}} for n in sorted({n for n in names if n})]


def base_env(pvc: bool) -> list[dict[str, Any]]:
    env = [{"name": "ONNXOPS_TERMINATION_LOG", "value": TERMINATION_LOG}]
    if pvc:
        env.append({"name": "ONNXOPS_PVC_ROOT", "value": PVC_MOUNT_ROOT})
    return env


def user_env(template: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [dict(e) for e in (template or {}).get("env") or []]


def apply_overrides(pod_spec: dict[str, Any], template: dict[str, Any] | None) -> None:
    """nodeSelector, tolerations, serviceAccountName from the user's pod overrides."""
    t = template or {}
    if t.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(t["nodeSelector"])
    if t.get("tolerations"):
        pod_spec["tolerations"] = [dict(x) for x in t["tolerations"]]
    if t.get("serviceAccountName"):
        pod_spec["serviceAccountName"] = t["serviceAccountName"]


def resources(*sources: dict[str, Any] | None) -> dict[str, Any]:
    """The first resources block that is set."""
    for s in sources:
        if s:
            return {k: dict(v) for k, v in s.items() if v}
    return {}
