"""Notifications (pure): which operator decisions become a webhook notification, and the three bodies
(generic JSON, CloudEvents 1.0 structured HTTP mode, a Slack-compatible incoming webhook).

The decisions are taken from the Events a reconcile posts (one place every decision already passes
through), so a notification is sent exactly when the Event is: once per transition, never per wake-up.
CloudEvents bodies are made by the ``cloudevents`` SDK (spec attributes, ``specversion``, the structured
JSON format and its content type); JSON and Slack are plain dicts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from onnxops.api.conditions import Reason

# Event reason -> notification type
BY_REASON: dict[str, str] = {
    "Promoted": "Promoted",
    "CanaryStarted": "StepAdvanced",
    "CanaryStep": "StepAdvanced",
    # the shadow phase (spec.rollout.shadow) starting and passing are steps of the rollout; its abort is a
    # RolledBack like any other
    "ShadowStarted": "StepAdvanced",
    "ShadowPassed": "StepAdvanced",
    Reason.AWAITING_PROMOTION: "AwaitingPromotion",
    Reason.ROLLED_BACK: "RolledBack",
    Reason.RETRAINING: "RetrainStarted",
    "TrainingSucceeded": "RetrainFinished",
    "TrainingFailed": "RetrainFinished",
    Reason.DRIFT: "DriftBreach",
    Reason.AWAITING_APPROVAL: "ApprovalNeeded",
    # monitoring.performance decisions (drift/performance_policy.py) that only alert
    "PerformanceDegraded": "PerformanceBreach",
    "ConceptDrift": "PerformanceBreach",
    "DegradedWithDataDrift": "PerformanceBreach",
    "CanaryUnderperformed": "PerformanceBreach",
    "PromotionUnderperformed": "PerformanceBreach",
}
CE_TYPE_PREFIX = "dev.onnxops.inferenceservice."
SLACK_ICON = {
    "Promoted": ":white_check_mark:",
    "RolledBack": ":rotating_light:",
    "DriftBreach": ":warning:",
    "PerformanceBreach": ":warning:",
    "AwaitingPromotion": ":raised_hand:",
    "ApprovalNeeded": ":raised_hand:",
}


@dataclass(frozen=True)
class Notification:
    type: str  # one of api.v1alpha1.notifications.NOTIFICATION_EVENTS
    namespace: str
    service: str
    model: str
    message: str
    severity: str = "info"  # info | warning
    reason: str = ""
    version: int | None = None
    at: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "id": self.id,
            "time": self.at,
            "severity": self.severity,
            "inferenceService": {"namespace": self.namespace, "name": self.service},
            "model": self.model,
            "version": self.version,
            "reason": self.reason,
            "message": self.message,
        }
        out.update(self.details)
        return out


def _severity(event_type: str) -> str:
    return "warning" if event_type == "Warning" else "info"


def from_events(
    isvc: Mapping[str, Any],
    events: Iterable[tuple[str, str, str]],
    status: Mapping[str, Any] | None,
    at: str,
) -> list[Notification]:
    """The notifications of the Events one reconcile of ``isvc`` posts (``status``: its new status)."""
    md, spec = isvc.get("metadata") or {}, isvc.get("spec") or {}
    st = dict(status or {})
    keys = ("stableVersion", "canaryVersion", "canaryWeight", "currentStep", "shadow")
    rollout = {k: st.get(k) for k in keys if st.get(k) is not None}
    out = []
    for type_, reason, message in events:
        kind = BY_REASON.get(reason)
        if kind is None or kind == "RetrainFinished":  # RetrainFinished comes from the TrainingJob
            continue
        details: dict[str, Any] = {"rollout": rollout}
        version = st.get("canaryVersion") or st.get("stableVersion")
        if kind == "Promoted":
            version = st.get("stableVersion")
        elif kind == "RolledBack":
            rb = st.get("rollback") or {}
            version = rb.get("from")
            details["rollback"] = {k: rb[k] for k in ("from", "to", "reason", "message", "scores") if k in rb}
            reason = str(rb.get("reason") or reason)
        elif kind == "RetrainStarted":
            details["retrain"] = dict(st.get("retrain") or {})
        elif kind == "DriftBreach":
            drift = st.get("drift") or {}
            details["drift"] = {
                k: drift[k] for k in ("score", "verdict", "versions", "features") if drift.get(k) is not None
            }
        elif kind == "PerformanceBreach":
            perf = st.get("performance") or {}
            details["performance"] = {
                k: perf[k] for k in ("metric", "value", "verdict", "versions") if perf.get(k) is not None
            }
        out.append(
            Notification(
                type=kind,
                namespace=str(md.get("namespace", "default")),
                service=str(md.get("name")),
                model=str(spec.get("model")),
                message=message,
                severity=_severity(type_),
                reason=reason,
                version=int(version) if version is not None else None,
                at=at,
                details=details,
            )
        )
    return out


def retrain_finished(
    tj: Mapping[str, Any], events: Iterable[tuple[str, str, str]], at: str, service: str
) -> list[Notification]:
    """A retrain TrainingJob (labelled with its InferenceService) that succeeded or failed."""
    md, spec, st = tj.get("metadata") or {}, tj.get("spec") or {}, tj.get("status") or {}
    out = []
    for type_, reason, message in events:
        if reason not in ("TrainingSucceeded", "TrainingFailed"):
            continue
        details = {
            "trainingJob": md.get("name"),
            "succeeded": reason == "TrainingSucceeded",
            "modelVersion": st.get("modelVersion"),
        }
        out.append(
            Notification(
                type="RetrainFinished",
                namespace=str(md.get("namespace", "default")),
                service=service,
                model=str(spec.get("model")),
                message=message,
                severity=_severity(type_),
                reason=reason,
                at=at,
                details={"retrain": details},
            )
        )
    return out


def wants(sink: Mapping[str, Any], note: Notification) -> bool:
    events = sink.get("events")
    return not events or note.type in events


# ---- bodies -------------------------------------------------------------------------------------------


def body(fmt: str, note: Notification) -> tuple[dict[str, str], bytes]:
    """(headers, body) of one POST in ``fmt``: JSON, CloudEvents or Slack."""
    if fmt == "CloudEvents":
        return cloudevent(note)
    if fmt == "Slack":
        return {"Content-Type": "application/json"}, json.dumps(slack(note)).encode()
    return {"Content-Type": "application/json"}, json.dumps(note.to_dict()).encode()


def cloudevent(note: Notification) -> tuple[dict[str, str], bytes]:
    """CloudEvents 1.0, structured content mode over HTTP (the SDK's JSON format)."""
    from cloudevents.core.bindings.http import to_structured
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    attrs: dict[str, Any] = {
        "id": note.id,
        "type": CE_TYPE_PREFIX + note.type[0].lower() + note.type[1:],
        "source": f"/apis/onnxops.dev/v1alpha1/namespaces/{note.namespace}/inferenceservices/{note.service}",
        "subject": note.service,
        "datacontenttype": "application/json",
    }
    if note.at:
        attrs["time"] = datetime.strptime(note.at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    msg = to_structured(CloudEvent(attributes=attrs, data=note.to_dict()), JSONFormat())
    headers = {("Content-Type" if k.lower() == "content-type" else k): v for k, v in msg.headers.items()}
    return headers, bytes(msg.body)


def slack(note: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (the notification fallback) and one mrkdwn section."""
    icon = SLACK_ICON.get(note.type, ":information_source:")
    head = f"{icon} *{note.type}* `{note.namespace}/{note.service}`"
    if note.version is not None:
        head += f" v{note.version}"
    text = f"{head}: {note.message}"
    facts = [f"model `{note.model}`"] + ([f"reason `{note.reason}`"] if note.reason else [])
    scores = ((note.details.get("rollback") or {}).get("scores")) or {}
    if scores:
        facts.append("scores " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(scores.items())))
    return {
        "text": text[:3000],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)[:3000]}]},
        ],
    }


def redact_url(url: str) -> str:
    """What of a webhook URL may be logged: scheme, host and port. User info, path (a Slack hook's token
    is its path) and query are secret parts."""
    try:
        u = urlsplit(url)
        host = u.hostname or "?"
        port = f":{u.port}" if u.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{u.scheme or '?'}://{host}{port}/..."
