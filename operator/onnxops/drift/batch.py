"""Coalesces the drift evaluations of many InferenceServices into batched Prometheus queries.

Each InferenceService's evaluation asks :meth:`PrometheusBatcher.fetch` for its live counts; requests for
the same Prometheus, namespace and window that arrive within ``linger_s`` of each other go out together as
one query per metric family (:func:`onnxops.drift.prometheus.fetch_prometheus_batch`, grouped by
``inferenceservice`` and ``model``), and each caller gets its own service's part. Evaluations of services
with the same ``monitoring.interval`` fall due together, so a round of N services costs a handful of
queries instead of 8 N.

Batches never cross namespaces (tenant isolation: a namespace's queries only ever name its own services, and
only go to the Prometheus URL its services name).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from onnxops.drift.prometheus import (
    BATCH_MAX_SERVICES,
    DEFAULT_TIMEOUT_S,
    BatchRequest,
    BatchResult,
    fetch_prometheus_batch,
)
from onnxops.profile import Profile

LINGER_S = 0.5
BatchKey = tuple[str, str, str]  # (prometheus url, namespace, window)


@dataclass
class _Pending:
    requests: dict[str, BatchRequest] = field(default_factory=dict)
    waiters: dict[str, list[asyncio.Future[BatchResult]]] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


class PrometheusBatcher:
    def __init__(
        self,
        linger_s: float = LINGER_S,
        max_services: int = BATCH_MAX_SERVICES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.linger_s, self.max_services, self.timeout_s = linger_s, max_services, timeout_s
        self._pending: dict[BatchKey, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.queries = 0  # batches sent (tests, benchmarks)

    async def fetch(
        self,
        url: str,
        namespace: str,
        service: str,
        model: str,
        profiles: Mapping[str, Profile | None],
        window: str,
    ) -> BatchResult:
        """This service's live counts per version (as :func:`fetch_prometheus` scoped to it returns)."""
        loop = asyncio.get_running_loop()
        key = (url, namespace, window)
        p = self._pending.setdefault(key, _Pending())
        fut: asyncio.Future[BatchResult] = loop.create_future()
        p.requests[service] = BatchRequest(service, model, dict(profiles))
        p.waiters.setdefault(service, []).append(fut)
        if len(p.requests) >= self.max_services:
            self._flush(key)
        elif p.timer is None:
            p.timer = loop.call_later(self.linger_s, self._flush, key)
        return await fut

    def _flush(self, key: BatchKey) -> None:
        p = self._pending.pop(key, None)
        if p is None:
            return
        if p.timer is not None:
            p.timer.cancel()
        task = asyncio.ensure_future(self._run(key, p))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: BatchKey, p: _Pending) -> None:
        url, namespace, window = key
        try:
            self.queries += 1
            results = await fetch_prometheus_batch(
                url,
                namespace,
                list(p.requests.values()),
                window,
                timeout_s=self.timeout_s,
                max_services=self.max_services,
            )
        except BaseException as exc:
            for futs in p.waiters.values():
                for f in futs:
                    if not f.done():
                        f.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for service, futs in p.waiters.items():
            for f in futs:
                if not f.done():
                    f.set_result(results[service])

    async def close(self) -> None:
        for key in list(self._pending):
            self._flush(key)
        for t in list(self._tasks):
            with contextlib.suppress(Exception):
                await t
