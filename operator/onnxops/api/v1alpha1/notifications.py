"""Webhook notifications of an InferenceService (spec.notifications); the chart adds global sinks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import KubeModel, SecretKeySelector

NotificationEvent = Literal[
    "Promoted",
    "StepAdvanced",
    "AwaitingPromotion",
    "RolledBack",
    "RetrainStarted",
    "RetrainFinished",
    "DriftBreach",
    "PerformanceBreach",
    "ApprovalNeeded",
]
NOTIFICATION_EVENTS: tuple[str, ...] = NotificationEvent.__args__  # type: ignore[attr-defined]


class NotificationSink(KubeModel):
    """One webhook. The URL is read from a Secret (it often carries a token: a Slack webhook's path); the
    operator never writes it to status, events or logs."""

    name: str | None = Field(
        None,
        description="A name for logs and metrics (default: sink-<index>).",
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    )
    url_secret_ref: SecretKeySelector = Field(
        description="The Secret key holding the webhook URL (http or https). The operator may read only the "
        "Secret names the chart lists in notifications.serviceSecretNames."
    )
    format: Literal["JSON", "CloudEvents", "Slack"] = Field(
        "JSON",
        description="JSON (onnxops' own object), CloudEvents (1.0, structured HTTP mode) or Slack (an "
        "incoming webhook's {text, blocks} body, which Slack-compatible hooks accept too).",
    )
    events: list[NotificationEvent] | None = Field(
        None, description="Which events to send (default: all).", max_length=len(NOTIFICATION_EVENTS)
    )
