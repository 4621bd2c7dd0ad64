"""Notifications (issue 15): which decisions notify, the three bodies (CloudEvents checked by parsing it
back with the SDK's own reader, as a receiver would), and delivery to a local 127.0.0.1 receiver in each
format, retried after the receiver fails twice, with failures counted and URLs logged without their
secret parts."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest
from aiohttp import web

from onnxops.controller import opmetrics
from onnxops.controller.notify import Notifier
from onnxops.reconcile.notifications import Notification, body, from_events, redact_url, retrain_finished
from onnxops.settings import Settings

AT = "2026-01-01T12:00:00Z"
ISVC = {"metadata": {"name": "iris", "namespace": "ml"}, "spec": {"model": "iris"}}
ROLLED_BACK = {
    "stableVersion": 1,
    "rollback": {
        "from": 2,
        "to": 1,
        "reason": "AnalysisFailed",
        "message": "errors 9%",
        "scores": {"errorRate": 0.09},
    },
}


def test_decisions_become_notifications() -> None:
    events = [
        ("Normal", "CanaryStep", "canary v2 at 50%"),
        ("Normal", "BakeEnded", "x"),
        ("Warning", "RolledBack", "rollout of v2 aborted"),
        ("Normal", "AwaitingPromotion", "gate"),
        ("Normal", "AwaitingApproval", "v3 awaits approval"),
        ("Warning", "DriftDetected", "psi 0.4"),
        ("Warning", "ConceptDrift", "acc 0.6"),
        ("Warning", "Retraining", "created TrainingJob"),
    ]
    notes = from_events(ISVC, events, ROLLED_BACK, AT)
    assert [n.type for n in notes] == [
        "StepAdvanced",
        "RolledBack",
        "AwaitingPromotion",
        "ApprovalNeeded",
        "DriftBreach",
        "PerformanceBreach",
        "RetrainStarted",
    ]
    rb = notes[1]
    assert rb.version == 2 and rb.reason == "AnalysisFailed" and rb.severity == "warning"
    assert rb.to_dict()["rollback"]["scores"] == {"errorRate": 0.09}
    tj = {
        "metadata": {"name": "iris-retrain-1", "namespace": "ml"},
        "spec": {"model": "iris"},
        "status": {"modelVersion": "iris-v3"},
    }
    [done] = retrain_finished(tj, [("Normal", "TrainingSucceeded", "ok")], AT, "iris")
    assert done.type == "RetrainFinished" and done.to_dict()["retrain"]["modelVersion"] == "iris-v3"


def test_bodies_in_each_format() -> None:
    from cloudevents.core.bindings.http import HTTPMessage, from_structured_event

    [note] = from_events(ISVC, [("Warning", "RolledBack", "m")], ROLLED_BACK, AT)
    headers, data = body("CloudEvents", note)
    assert headers["Content-Type"] == "application/cloudevents+json"
    ev = from_structured_event(HTTPMessage(headers={"content-type": headers["Content-Type"]}, body=data))
    assert ev.get_specversion() == "1.0" and ev.get_type() == "dev.onnxops.inferenceservice.rolledBack"
    assert ev.get_source() == "/apis/onnxops.dev/v1alpha1/namespaces/ml/inferenceservices/iris"
    assert ev.get_id() == note.id and ev.get_data()["rollback"]["reason"] == "AnalysisFailed"
    _, data = body("JSON", note)
    generic = json.loads(data)
    assert generic["type"] == "RolledBack"
    assert generic["inferenceService"] == {"namespace": "ml", "name": "iris"}
    _, data = body("Slack", note)
    slack = json.loads(data)
    assert slack["text"].startswith(":rotating_light: *RolledBack* `ml/iris` v2")
    assert slack["blocks"][0]["type"] == "section"
    assert "errorRate=0.09" in slack["blocks"][1]["elements"][0]["text"]


@pytest.mark.parametrize(
    "url,shown",
    [
        ("https://hooks.slack.com/services/T0/B0/SECRET", "https://hooks.slack.com/..."),
        ("http://user:pw@127.0.0.1:8080/hook?token=SECRET", "http://127.0.0.1:8080/..."),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


class FakeClient:
    def __init__(self, secrets: dict[str, dict[str, str]]) -> None:
        self.secrets = secrets

    async def get(self, api: str, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        assert (api, kind) == ("v1", "Secret")
        data = self.secrets.get(name)
        return (
            None
            if data is None
            else {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
        )


def _count(metric: Any, **labels: str) -> float:
    for m in metric.collect():
        for s in m.samples:
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def _receiver(fail_first: int) -> tuple[web.AppRunner, str, list[tuple[dict[str, str], bytes]]]:
    got: list[tuple[dict[str, str], bytes]] = []
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        data = await request.read()
        if calls["n"] <= fail_first:
            return web.Response(status=503)
        got.append((dict(request.headers), data))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook/{token}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook/SECRET-TOKEN", got


@pytest.mark.parametrize("fmt", ["JSON", "CloudEvents", "Slack"])
def test_delivery_retries_after_two_failures(fmt: str, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[tuple[dict[str, str], bytes]]:
        runner, url, got = await _receiver(fail_first=2)
        settings = Settings(
            notify_retries=3,
            notify_backoff_seconds=0.05,
            notify_sinks=({"name": "ops", "format": "JSON", "events": ["Promoted"], "urlEnv": "HOOK"},),
        )
        isvc = {
            **ISVC,
            "spec": {
                "model": "iris",
                "notifications": [
                    {"name": "team", "format": fmt, "urlSecretRef": {"name": "hook", "key": "url"}}
                ],
            },
        }
        notifier = Notifier(FakeClient({"hook": {"url": url}}), settings, env={})  # the global URL unset
        try:
            notes = from_events(isvc, [("Warning", "RolledBack", "rollout of v2 aborted")], ROLLED_BACK, AT)
            notifier.publish("ml", "iris", isvc, notes)  # returns at once
            await notifier.drain(timeout=10)
        finally:
            await notifier.close()
            await runner.cleanup()
        return got

    before = _count(opmetrics.NOTIFICATION_FAILURES, scope="service", format=fmt, error="http_503")
    with caplog.at_level(logging.WARNING, logger="onnxops.controller.notify"):
        got = asyncio.run(scenario())
    assert len(got) == 1, got  # the global sink wants only Promoted; the service's got it on the 3rd try
    headers, data = got[0]
    if fmt == "CloudEvents":
        assert headers["Content-Type"] == "application/cloudevents+json"
        assert json.loads(data)["specversion"] == "1.0"
    elif fmt == "Slack":
        assert json.loads(data)["text"].startswith(":rotating_light:")
    else:
        assert json.loads(data)["type"] == "RolledBack"
    after = _count(opmetrics.NOTIFICATION_FAILURES, scope="service", format=fmt, error="http_503")
    assert after == before + 2
    assert "attempt 2/4, retrying" in caplog.text and "http://127.0.0.1:" in caplog.text
    assert "SECRET-TOKEN" not in caplog.text


def test_gives_up_after_the_retries_and_never_blocks() -> None:
    async def scenario() -> int:
        runner, url, got = await _receiver(fail_first=100)
        settings = Settings(notify_retries=1, notify_backoff_seconds=0.01)
        isvc = {
            **ISVC,
            "spec": {
                "model": "iris",
                "notifications": [
                    {"urlSecretRef": {"name": "hook", "key": "url"}},
                    {"urlSecretRef": {"name": "missing", "key": "url"}},
                ],
            },
        }
        notifier = Notifier(FakeClient({"hook": {"url": url}}), settings, env={})
        notifier.publish("ml", "iris", isvc, [Notification("Promoted", "ml", "iris", "iris", "v2", at=AT)])
        queued = notifier.queue.qsize()  # publish is synchronous: it only queued, nothing was sent yet
        assert not got
        await notifier.drain(timeout=10)
        await notifier.close()
        await runner.cleanup()
        assert not got
        return queued

    failed = _count(opmetrics.NOTIFICATIONS, scope="service", format="JSON", result="failed")
    missing = _count(
        opmetrics.NOTIFICATION_FAILURES, scope="service", format="JSON", error="secret_unavailable"
    )
    assert asyncio.run(scenario()) == 1
    assert _count(opmetrics.NOTIFICATIONS, scope="service", format="JSON", result="failed") == failed + 2
    assert (
        _count(opmetrics.NOTIFICATION_FAILURES, scope="service", format="JSON", error="secret_unavailable")
        == missing + 1
    )


def test_service_sinks_come_parsed_and_a_spec_that_does_not_parse_gives_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from onnxops.controller.notify import service_sinks

    hook = {"urlSecretRef": {"name": "hook", "key": "url"}}
    isvc = {**ISVC, "spec": {"model": "iris", "notifications": [hook]}}
    [sink] = service_sinks(isvc, "ml", "iris")
    assert (sink.name, sink.format, sink.events) == (None, "JSON", None)  # the API's defaults: all events
    assert (sink.url_secret_ref.name, sink.url_secret_ref.key) == ("hook", "url")
    assert service_sinks({**ISVC, "spec": {"model": "iris"}}, "ml", "iris") == []
    broken = {**ISVC, "spec": {"model": "iris", "notifications": [{**hook, "format": "Teams"}]}}
    with caplog.at_level(logging.WARNING, logger="onnxops.controller.notify"):
        assert service_sinks(broken, "ml", "iris") == []
    assert "notification sinks of ml/iris not read: spec.notifications.0.format" in caplog.text
