"""Webhook delivery of notifications: asynchronous, bounded, retried with backoff, never in the way of a
reconcile.

``Notifier.publish`` only puts the notifications on a bounded queue (full: dropped and counted) and
returns; a worker task resolves the sinks (the chart's global ones, whose URLs are in the operator's
environment from Secrets, and the InferenceService's ``spec.notifications``, whose URLs it reads from
Secrets by name) and posts each notification to each sink that wants it, at most ``CONCURRENCY`` posts at a
time; the notifications of one reconcile reach a sink one after the other, in their order. A failed post
(connection error, timeout, 408, 429, 5xx) is retried ``settings.notify_retries`` times,
waiting ``notify_backoff_seconds`` doubled each time (at most 60 s); any other answer is permanent. Every
failed attempt is counted in ``onnxops_operator_notification_failures`` and logged with the sink's name and
the URL's scheme, host and port only (a Slack hook's token is its path; user info and query are dropped);
the end result in ``onnxops_operator_notifications``.

Hand-written on aiohttp (already the operator's HTTP client): the retry policy is a loop of a few lines and
the metrics need the per-attempt outcome, which a retry library would hide.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from onnxops import API_VERSION
from onnxops.api.v1alpha1.common import SecretKeySelector
from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.notifications import NotificationSink
from onnxops.kube.client import ApiError
from onnxops.kube.protocol import KubeApi
from onnxops.reconcile.notifications import Notification, body, redact_url, wants
from onnxops.settings import Settings

from . import opmetrics

log = logging.getLogger(__name__)


def service_sinks(isvc: Mapping[str, Any] | None, namespace: str, service: str) -> list[NotificationSink]:
    """The webhooks of the service's ``spec.notifications``, parsed (name, format and events with the
    API's defaults); none while its stored spec does not parse (its reconcile reports that)."""
    if isvc is None:
        return []
    parsed = ParsedInferenceService.parse_or_problem(isvc)
    if isinstance(parsed, str):
        log.warning("notification sinks of %s/%s not read: %s", namespace, service, parsed)
        return []
    return list(parsed.spec.notifications or [])


QUEUE_SIZE = 1000
CONCURRENCY = 16
TIMEOUT_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 60.0
RETRIABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Sink:
    name: str
    scope: str  # global | service
    format: str
    events: tuple[str, ...]
    url: str | None  # None: could not be resolved (counted as secret_unavailable)


class Notifier:
    def __init__(self, client: KubeApi, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.settings = settings
        self.env = os.environ if env is None else env
        self.queue: asyncio.Queue[tuple[str, str, dict[str, Any] | None, list[Notification]]] = asyncio.Queue(
            QUEUE_SIZE
        )
        self.worker: asyncio.Task[None] | None = None
        self.deliveries: set[asyncio.Task[None]] = set()
        self.limit = asyncio.Semaphore(CONCURRENCY)
        self.session: aiohttp.ClientSession | None = None

    # ---- the reconcile's side: never waits --------------------------------------------------------------
    def publish(
        self, namespace: str, service: str, isvc: dict[str, Any] | None, notes: list[Notification]
    ) -> None:
        if not notes:
            return
        try:
            self.queue.put_nowait((namespace, service, isvc, notes))
        except asyncio.QueueFull:
            for n in notes:
                opmetrics.NOTIFICATIONS.labels(scope="any", format="any", result="dropped").inc()
                log.warning("notification %s of %s/%s dropped: the queue is full", n.type, namespace, service)
            return
        if self.worker is None or self.worker.done():
            self.worker = asyncio.ensure_future(self._run())

    # ---- the worker --------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            namespace, service, isvc, notes = await self.queue.get()
            try:
                await self._hand_out(namespace, service, isvc, notes)
            except Exception as e:  # never let one bad object stop the worker
                log.warning(
                    "notifications of %s/%s: sinks not resolved (%s)", namespace, service, type(e).__name__
                )
            finally:
                self.queue.task_done()

    async def _hand_out(
        self, namespace: str, service: str, isvc: dict[str, Any] | None, notes: list[Notification]
    ) -> None:
        for sink in await self.sinks(namespace, service, isvc):
            wanted = [note for note in notes if wants({"events": sink.events}, note)]
            if wanted:  # one reconcile's notes reach a sink in their order (e.g. ShadowPassed, CanaryStarted)
                await self.limit.acquire()
                task = asyncio.ensure_future(self._deliver_in_order(sink, wanted))
                self.deliveries.add(task)
                task.add_done_callback(self._done)

    async def _deliver_in_order(self, sink: Sink, notes: list[Notification]) -> None:
        for note in notes:
            await self._deliver(sink, note)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.deliveries.discard(task)
        self.limit.release()

    async def sinks(self, namespace: str, service: str, isvc: dict[str, Any] | None) -> list[Sink]:
        out = [
            Sink(s["name"], "global", s["format"], tuple(s.get("events") or ()), self.env.get(s["urlEnv"]))
            for s in self.settings.notify_sinks
        ]
        if isvc is None:  # a TrainingJob's notification: its service's sinks
            isvc = await self.client.get(API_VERSION, "InferenceService", namespace, service)
        for i, s in enumerate(service_sinks(isvc, namespace, service)):
            name = s.name or f"sink-{i}"
            url = await self._secret_value(namespace, service, name, s.url_secret_ref)
            out.append(Sink(name, "service", s.format, tuple(s.events or ()), url))
        return out

    async def _secret_value(
        self, namespace: str, service: str, sink: str, ref: SecretKeySelector
    ) -> str | None:
        try:
            secret = await self.client.get("v1", "Secret", namespace, ref.name)
        except ApiError as e:
            log.warning(
                "notification sink %s of %s/%s: Secret %s not readable (%s); the chart's "
                "notifications.serviceSecretNames must list it",
                sink,
                namespace,
                service,
                ref.name,
                e.status,
            )
            return None
        raw = ((secret or {}).get("data") or {}).get(ref.key)
        if raw is None:
            log.warning(
                "notification sink %s of %s/%s: Secret %s has no key %s",
                sink,
                namespace,
                service,
                ref.name,
                ref.key,
            )
            return None
        try:
            return base64.b64decode(raw).decode().strip()
        except (ValueError, UnicodeDecodeError):
            return None

    async def _deliver(self, sink: Sink, note: Notification) -> None:
        labels = {"scope": sink.scope, "format": sink.format}
        url = sink.url
        if not url or not url.startswith(("http://", "https://")):
            opmetrics.NOTIFICATION_FAILURES.labels(**labels, error="secret_unavailable").inc()
            opmetrics.NOTIFICATIONS.labels(**labels, result="failed").inc()
            if url:
                log.warning("notification sink %s: the URL is not http(s) (%s)", sink.name, redact_url(url))
            return
        headers, data = body(sink.format, note)
        attempts = 1 + max(0, int(self.settings.notify_retries))
        for attempt in range(1, attempts + 1):
            error, retriable = await self._post(url, headers, data)
            if error is None:
                opmetrics.NOTIFICATIONS.labels(**labels, result="delivered").inc()
                return
            opmetrics.NOTIFICATION_FAILURES.labels(**labels, error=error).inc()
            last = attempt == attempts or not retriable
            log.warning(
                "notification %s of %s/%s to sink %s (%s) failed: %s (attempt %d/%d%s)",
                note.type,
                note.namespace,
                note.service,
                sink.name,
                redact_url(url),
                error,
                attempt,
                attempts,
                "" if last else ", retrying",
            )
            if last:
                opmetrics.NOTIFICATIONS.labels(**labels, result="failed").inc()
                return
            wait = min(MAX_BACKOFF_SECONDS, float(self.settings.notify_backoff_seconds) * 2 ** (attempt - 1))
            await asyncio.sleep(wait)

    async def _post(self, url: str, headers: dict[str, str], data: bytes) -> tuple[str | None, bool]:
        """(None, _) when delivered, else (error label, retriable)."""
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS))
        try:
            async with self.session.post(url, data=data, headers=headers, allow_redirects=False) as r:
                await r.read()
                if 200 <= r.status < 300:
                    return None, False
                return f"http_{r.status}", r.status >= 500 or r.status in RETRIABLE_STATUS
        except (aiohttp.ClientError, TimeoutError, OSError) as e:  # the message may name the URL: not kept
            return type(e).__name__, True

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until every queued notification was handed out and its delivery finished."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        if self.worker is not None and not self.worker.done():
            try:
                await asyncio.wait_for(self.queue.join(), timeout)
            except TimeoutError:
                return
        while self.deliveries and loop.time() < end:
            await asyncio.wait(list(self.deliveries), timeout=max(0.01, end - loop.time()))

    async def close(self, timeout: float = 5.0) -> None:
        await self.drain(timeout)
        if self.worker is not None:
            self.worker.cancel()
        for t in list(self.deliveries):
            t.cancel()
        if self.session is not None:
            await self.session.close()
