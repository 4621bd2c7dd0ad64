"""Shadow traffic without a service mesh: the stable server mirrors a sample of its answered requests to a
shadow (the new version's Service) and compares the shadow's predictions with its own.

Never in the way of the original request: :meth:`Mirror.record` runs after the answer was computed, only
decides the sample (a deterministic accumulator: exactly ``sample_rate`` of the requests) and, when fewer
than ``max_in_flight`` mirrored requests are open, starts a task; otherwise the request is dropped from the
sample and counted. The task posts the same body to the shadow with a timeout, on a small pool of
keep-alive connections, and counts the outcome (``ok``, ``error``: a non-200 answer, ``unreachable``:
connection error or timeout), the shadow's latency, and the agreement of its predictions with ours: rows
compared, rows with the same label (classifiers) and the sum of absolute differences (regressors). A
failure of the shadow is only counted: the client got its answer already.

Mirrored: JSON requests of the v1 (``:predict``) and v2 (``/infer``) HTTP protocols (a version in the v2
path is dropped: the shadow serves another version). Not mirrored (counted as ``unsupported``): requests
with the binary tensor extension, and gRPC.

Hand-written HTTP/1.1 client on asyncio streams: the serving image carries no HTTP client library (its
aiohttp is removed), and the shadow is always an onnxops server, which answers with Content-Length.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

from onnxops.drift import names as N

log = logging.getLogger(__name__)
RESULTS = ("ok", "error", "unreachable", "dropped", "unsupported")
SHADOW_HEADER = "X-Onnxops-Shadow"  # on every mirrored request
LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class MirrorStats:
    results: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    rows_compared: int = 0
    rows_agreed: int = 0
    abs_diff_sum: float = 0.0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    latency_sum: float = 0.0

    def observe_latency(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.latency_sum += seconds


# ---- pure ---------------------------------------------------------------------------------------------


def is_mirrored(headers: dict[str, str]) -> bool:
    """A mirrored copy (a shadow receiving it): the shadow answers it, but its payload capture and feedback
    skip it, so rows captured for ``fromServing`` training data are not doubled."""
    return SHADOW_HEADER.lower() in headers or SHADOW_HEADER in headers


def shadow_path(path: str) -> str | None:
    """The path to post to the shadow, or None when the request is not mirrored."""
    p = path.split("?", 1)[0]
    if p.startswith("/v1/models/") and p.endswith(":predict"):
        return p
    if p.startswith("/v2/models/") and p.endswith("/infer"):
        parts = p.split("/")  # ['', 'v2', 'models', name, ('versions', v,) 'infer']
        if len(parts) == 7 and parts[4] == "versions":
            return "/".join([*parts[:4], "infer"])
        return p if len(parts) == 5 else None
    return None


def shadow_prediction(doc: Any, output_name: str | None) -> np.ndarray | None:
    """The shadow's first output from its JSON answer (v1 ``predictions``, v2 ``outputs``)."""
    if not isinstance(doc, dict):
        return None
    if "predictions" in doc:
        return np.asarray(doc["predictions"])
    outs = doc.get("outputs")
    if isinstance(outs, list) and outs:
        chosen = next((o for o in outs if o.get("name") == output_name), outs[0])
        if isinstance(chosen, dict) and "data" in chosen:
            return np.asarray(chosen["data"])
    return None


def agreement(ours: np.ndarray, theirs: np.ndarray, classification: bool) -> tuple[int, int, float]:
    """(rows compared, rows equal, sum of |ours - theirs|); (0, 0, 0) when the shapes do not match."""
    a = np.asarray(ours).reshape(-1)
    b = np.asarray(theirs).reshape(-1)
    if a.size != b.size or a.size == 0:
        return 0, 0, 0.0
    if a.dtype == object or b.dtype.kind in "US" or a.dtype.kind in "USO":
        a = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in a.tolist()])
        b = b.astype(str)
        return int(a.size), int(np.sum(a == b)), 0.0
    af, bf = a.astype(np.float64), b.astype(np.float64)
    equal = int(np.sum(af == bf)) if classification else int(np.sum(np.isclose(af, bf, rtol=1e-6, atol=0)))
    return int(a.size), equal, 0.0 if classification else float(np.sum(np.abs(af - bf)))


# ---- the mirror ---------------------------------------------------------------------------------------


class Mirror:
    def __init__(
        self,
        url: str,
        *,
        sample_rate: float,
        max_in_flight: int,
        timeout: float,
        model: str,
        version: str,
        inference_service: str,
    ) -> None:
        u = urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(
                f"mirror URL must be http://host[:port][/prefix] (the shadow Service), got {u.scheme}://"
            )
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")  # a gateway routing by path (the local runtime's): prepended
        self.sample_rate = min(1.0, max(0.0, sample_rate))
        self.max_in_flight = max(1, max_in_flight)
        self.timeout = timeout
        self.labels = [model, version, inference_service]
        self.stats = MirrorStats()
        self.in_flight = 0
        self._acc = 0.0
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # called on the event loop right after a request was answered: never raises, never waits
    def record(
        self,
        path: str,
        headers: dict[str, str],
        body: bytes,
        ours: np.ndarray | None,
        output_name: str | None,
        classification: bool,
    ) -> None:
        self._acc += self.sample_rate
        if self._acc < 1.0:
            return
        self._acc -= 1.0
        target = shadow_path(path)
        if target is None or "inference-header-content-length" in {k.lower() for k in headers}:
            self.stats.results["unsupported"] += 1
            return
        if self.in_flight >= self.max_in_flight:
            self.stats.results["dropped"] += 1
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the loop (a test calling the handlers directly): nothing to do
            self.stats.results["unsupported"] += 1
            return
        self.in_flight += 1
        task = loop.create_task(self._send(target, body, ours, output_name, classification))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, path: str, body: bytes, ours: np.ndarray | None, output_name: str | None, classification: bool
    ) -> None:
        t0 = time.perf_counter()
        try:
            status, data = await asyncio.wait_for(self._post(path, body), self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            self.stats.results["unreachable"] += 1
            return
        finally:
            self.in_flight -= 1
        self.stats.observe_latency(time.perf_counter() - t0)
        if status != 200:
            self.stats.results["error"] += 1
            return
        self.stats.results["ok"] += 1
        if ours is None:
            return
        try:
            theirs = shadow_prediction(orjson.loads(data), output_name)
        except orjson.JSONDecodeError:
            return
        if theirs is not None:
            n, equal, diff = agreement(ours, theirs, classification)
            self.stats.rows_compared += n
            self.stats.rows_agreed += equal
            self.stats.abs_diff_sum += diff

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        conn = self._idle.pop() if self._idle else await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        try:
            head = (
                f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"{SHADOW_HEADER}: 1\r\n\r\n"
            ).encode()
            writer.write(head + body)
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            pairs = (ln.partition(":") for ln in lines[1:] if ln)
            fields = {k.strip().lower(): v.strip() for k, _, v in pairs}
            data = await reader.readexactly(int(fields.get("content-length", "0")))
        except BaseException:
            writer.close()
            raise
        if fields.get("connection", "").lower() == "close" or len(self._idle) >= self.max_in_flight:
            writer.close()
        else:
            self._idle.append(conn)
        return status, data

    async def close(self, timeout: float = 2.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        for t in list(self._tasks):
            t.cancel()
        for _, w in self._idle:
            w.close()
        self._idle.clear()

    # prometheus_client Collector
    def collect(self) -> Iterator[Metric]:
        mv = list(N.SCOPE_LABELS)
        req = CounterMetricFamily(
            "onnxops_shadow_requests",
            "Mirrored requests to the shadow version, by "
            "result (ok, error, unreachable, dropped, unsupported).",
            labels=[*mv, "result"],
        )
        for r, n in self.stats.results.items():
            req.add_metric([*self.labels, r], n)
        yield req
        rows = CounterMetricFamily(
            "onnxops_shadow_rows_compared",
            "Rows whose shadow prediction was compared with this server's.",
            labels=mv,
        )
        rows.add_metric(self.labels, self.stats.rows_compared)
        yield rows
        agreed = CounterMetricFamily(
            "onnxops_shadow_rows_agreed",
            "Compared rows where the shadow predicted the same (label, or value within 1e-6 relative).",
            labels=mv,
        )
        agreed.add_metric(self.labels, self.stats.rows_agreed)
        yield agreed
        diff = CounterMetricFamily(
            "onnxops_shadow_abs_diff",
            "Sum over compared rows of |ours - shadow's| (regressors; divide by rows compared for the mean).",
            labels=mv,
        )
        diff.add_metric(self.labels, self.stats.abs_diff_sum)
        yield diff
        lat = HistogramMetricFamily(
            "onnxops_shadow_request_duration_seconds",
            "Latency of mirrored requests as this server saw it.",
            labels=mv,
        )
        cum, buckets = 0, []
        for bound, n in zip([*LATENCY_BOUNDS, float("inf")], self.stats.latency_counts, strict=True):
            cum += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cum))
        lat.add_metric(self.labels, buckets, self.stats.latency_sum)
        yield lat
