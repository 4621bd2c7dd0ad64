"""Metadata helpers and the server-side defaults of the built-in kinds that clients rely on."""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from typing import Any

from .registry import ResourceInfo

_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what the real name generator uses
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generated_name(prefix: str) -> str:
    return prefix + "".join(random.choice(_SUFFIX_CHARS) for _ in range(5))


def name_problem(name: str, *, label: bool) -> str | None:
    """Why `name` is not a valid object name (DNS-1123 subdomain, or label for namespaces), or None."""
    limit, pattern = (63, _LABEL_RE) if label else (253, _SUBDOMAIN_RE)
    if not name:
        return "Required value: name or generateName is required"
    if len(name) > limit:
        return f'Invalid value: "{name}": must be no more than {limit} characters'
    if not pattern.match(name):
        return (
            f'Invalid value: "{name}": a lowercase RFC 1123 {"label" if label else "subdomain"} must '
            "consist of lower case alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character"
        )
    return None


def _job(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
    labels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    if not spec.get("manualSelector"):
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
    _pod_spec(spec.setdefault("template", {}).setdefault("spec", {}), restart="Never")


def _pod_spec(spec: dict[str, Any], restart: str = "Always") -> None:
    spec.setdefault("restartPolicy", restart)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    for container in spec.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", "IfNotPresent")


def _deployment(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    )
    _pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))


_cluster_ip = [0]


def _service(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if "clusterIP" not in spec:
        _cluster_ip[0] += 1
        n = _cluster_ip[0]
        spec["clusterIP"] = f"10.96.{(n // 250) % 250}.{n % 250 + 1}"
    if spec["clusterIP"] != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def apply_update_defaults(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """The pod-spec defaults the real API server fills in on every write (update, patch), so a patch that
    replaces a container list does not change a stored pod template (and restart every pod)."""
    if not info.builtin:
        return
    key = (info.group, info.plural)
    if key == ("", "pods"):
        _pod_spec(obj.setdefault("spec", {}))
    elif key in (("batch", "jobs"), ("apps", "deployments")):
        template = (obj.get("spec") or {}).get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            _pod_spec(template["spec"], "Never" if key[1] == "jobs" else "Always")


def apply_create_defaults(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Defaults the real API server fills in on create, for the built-in kinds (mutates `obj`)."""
    if not info.builtin:
        return
    key = (info.group, info.plural)
    if key == ("", "pods"):
        _pod_spec(obj.setdefault("spec", {}))
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif key == ("", "namespaces"):
        obj["status"] = {"phase": "Active"}
    elif key == ("batch", "jobs"):
        _job(obj)
    elif key == ("apps", "deployments"):
        _deployment(obj)
    elif key == ("", "services"):
        _service(obj)
