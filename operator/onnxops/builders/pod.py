"""Pieces shared by every pod the operator creates: security context, PVC volumes, credentials."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from onnxops.settings import PVC_MOUNT_ROOT, TERMINATION_LOG, Settings

_PVC = re.compile(r"^pvc://([a-z0-9]([-a-z0-9]*[a-z0-9])?)/")
RUN_AS_USER = 10001  # the numeric USER of our images


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


def storage_access(
    locations: Iterable[tuple[str | None, Mapping[str, Any] | None]], settings: Settings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(env, envFrom) a pod needs to reach the artifact locations ``(uri, credentialsSecret)``.

    An s3:// URI without its own credentialsSecret uses the operator's default S3 credentials Secret; any s3://
    URI gets the configured endpoint and region as boto3's standard AWS_ENDPOINT_URL / AWS_REGION.
    """
    secrets: list[str | None] = []
    s3 = False
    for uri, secret in locations:
        name = (secret or {}).get("name")
        if uri and uri.startswith("s3://"):
            s3 = True
            name = name or settings.default_credentials_secret or None
        secrets.append(name)
    env: list[dict[str, Any]] = []
    if s3 and settings.s3_endpoint_url:
        env.append({"name": "AWS_ENDPOINT_URL", "value": settings.s3_endpoint_url})
    if s3 and settings.s3_region:
        env.append({"name": "AWS_REGION", "value": settings.s3_region})
    return env, env_from_secrets(secrets)


def base_env(pvc: bool) -> list[dict[str, Any]]:
    env = [{"name": "ONNXOPS_TERMINATION_LOG", "value": TERMINATION_LOG}]
    if pvc:
        env.append({"name": "ONNXOPS_PVC_ROOT", "value": PVC_MOUNT_ROOT})
    return env


def user_env(template: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [dict(e) for e in (template or {}).get("env") or []]


def apply_overrides(pod_spec: dict[str, Any], template: dict[str, Any] | None) -> None:
    """nodeSelector, tolerations, serviceAccountName from the user's pod overrides.

    Our pods never call the API: without a user-chosen service account no token is mounted."""
    t = template or {}
    if t.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(t["nodeSelector"])
    if t.get("tolerations"):
        pod_spec["tolerations"] = [dict(x) for x in t["tolerations"]]
    if t.get("serviceAccountName"):
        pod_spec["serviceAccountName"] = t["serviceAccountName"]
        pod_spec.pop("automountServiceAccountToken", None)
    else:
        pod_spec["automountServiceAccountToken"] = False


def resources(*sources: dict[str, Any] | None) -> dict[str, Any]:
    """The first resources block that is set."""
    for s in sources:
        if s:
            return {k: dict(v) for k, v in s.items() if v}
    return {}
