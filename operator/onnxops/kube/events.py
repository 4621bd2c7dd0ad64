"""Kubernetes Events (core/v1) for every transition; messages are scrubbed of anything credential-like."""

from __future__ import annotations

import logging
import socket
from typing import Any

from onnxops.api.conditions import now_rfc3339
from onnxops.objects.text import short

from .client import ApiError
from .protocol import KubeApi

log = logging.getLogger(__name__)
COMPONENT = "onnxops-operator"


def scrub(message: str, limit: int = 1024) -> str:
    """Remove anything credential-like (see ``onnxops.objects.text.scrub``) and cap the length."""
    return short(message, limit)


def event_body(obj: dict[str, Any], type_: str, reason: str, message: str) -> dict[str, Any]:
    md = obj["metadata"]
    ts = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{md['name']}.", "namespace": md.get("namespace", "default")},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": md["name"],
            "namespace": md.get("namespace", "default"),
            "uid": md.get("uid"),
            "resourceVersion": md.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": scrub(message),
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
    }


async def post(client: KubeApi, obj: dict[str, Any], events: list[tuple[str, str, str]]) -> None:
    """Post events; a failure to post is logged, never raised (events are best effort)."""
    for type_, reason, message in events:
        try:
            await client.create(event_body(obj, type_, reason, message))
        except (ApiError, OSError) as e:
            log.warning("could not post event %s for %s: %s", reason, obj["metadata"].get("name"), e)
