"""Prometheus metrics of the server, exposed from plain counters and numpy arrays by one Collector.

Names and labels come from ``onnxops.drift.names`` (the contract with the drift monitor); every family
carries ``model``, ``version`` and ``inferenceservice`` (``N.SCOPE_LABELS``). The drift families (feature
histograms whose buckets are exactly the profile's edges, category/missing/prediction counters) are
pre-created at 0 from the profile, so a scrape right after start already shows every bucket. Server-only
extras: ``onnxops_inference_duration_seconds`` (ONNX Runtime run latency), ``onnxops_model_ready`` (1/0),
``onnxops_drift_psi{feature}`` (PSI of the sliding window vs the profile, NaN without rows) and
``onnxops_drift_window_rows``.

``onnxops_requests_total`` and ``onnxops_request_duration_seconds`` count inference endpoints only
(``/v2/models/...`` as ``v2``, ``/v1/models/...`` as ``v1``); health probes and scrapes are not counted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from onnxops.drift import names as N

from .drift_state import DriftState

LATENCY_BUCKETS = (0.0001, 0.00025, *N.LATENCY_BUCKETS)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INFERENCE_DURATION = "onnxops_inference_duration_seconds"
MODEL_READY = "onnxops_model_ready"
DRIFT_PSI = "onnxops_drift_psi"
DRIFT_WINDOW_ROWS = "onnxops_drift_window_rows"
MV = list(N.SCOPE_LABELS)


def le(value: float) -> str:
    """Prometheus' text form of a bucket bound (as prometheus_client writes it)."""
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    return repr(float(value))


class LatencyHistogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = list(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


def buckets(edges: Sequence[float], counts: Sequence[int] | np.ndarray) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs ending with ``+Inf``; ``counts`` has ``len(edges)+1`` bins."""
    cum = np.cumsum(np.asarray(counts, dtype=np.int64)).tolist()
    return [(le(e), c) for e, c in zip(edges, cum, strict=False)] + [("+Inf", cum[-1])]


class ServerMetrics:
    """All the server's metrics; the HTTP loop updates them, ``exposition()`` renders them."""

    def __init__(self, model: str, version: str, service: str = "") -> None:
        self.model, self.version, self.service = model, version, service
        self.requests: dict[tuple[str, int], int] = {}
        self.request_latency: dict[str, LatencyHistogram] = {}
        self.inference_latency = LatencyHistogram()
        self.rows = 0
        self.ready = False
        self.drift: DriftState | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def record_request(self, protocol: str, code: int, seconds: float) -> None:
        if protocol not in N.PROTOCOLS:
            return
        key = (protocol, code)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.request_latency.get(protocol)
        if hist is None:
            hist = self.request_latency[protocol] = LatencyHistogram()
        hist.observe(seconds)

    def record_inference(self, seconds: float, rows: int) -> None:
        self.inference_latency.observe(seconds)
        self.rows += rows

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # -- Collector protocol -------------------------------------------------------------------
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        mv = [self.model, self.version, self.service]
        req = CounterMetricFamily(
            N.REQUESTS, "Inference requests by protocol and HTTP status code.", labels=list(N.REQUESTS_LABELS)
        )
        for (protocol, code), n in sorted(self.requests.items()):
            req.add_metric([*mv, protocol, str(code)], n)
        yield req
        lat = HistogramMetricFamily(
            N.REQUEST_DURATION,
            "Inference request latency in the server.",
            labels=list(N.REQUEST_DURATION_LABELS),
        )
        for protocol, h in sorted(self.request_latency.items()):
            lat.add_metric([*mv, protocol], buckets(h.bounds, h.counts), h.total)
        yield lat
        inf = HistogramMetricFamily(INFERENCE_DURATION, "ONNX Runtime run latency.", labels=MV)
        h = self.inference_latency
        inf.add_metric(mv, buckets(h.bounds, h.counts), h.total)
        yield inf
        rows = CounterMetricFamily(N.ROWS, "Rows (batch items) inferred.", labels=list(N.ROWS_LABELS))
        rows.add_metric(mv, self.rows)
        yield rows
        ready = GaugeMetricFamily(MODEL_READY, "1 when the model is loaded and verified.", labels=MV)
        ready.add_metric(mv, 1.0 if self.ready else 0.0)
        yield ready
        if self.drift is not None:
            yield from self._drift_families(self.drift, mv)

    def _drift_families(self, d: DriftState, mv: list[str]) -> Iterator[Metric]:
        d.flush()
        fv = HistogramMetricFamily(
            N.FEATURE_VALUE,
            "Feature values; buckets are the profile's bin edges.",
            labels=list(N.FEATURE_VALUE_LABELS),
        )
        for j, f in enumerate(d.numeric):
            fv.add_metric([*mv, f.name], buckets(f.edges, d.feature_bins(j)), float(d.sums[j]))
        yield fv
        cat = CounterMetricFamily(
            N.FEATURE_CATEGORY,
            "Categorical feature values by category.",
            labels=list(N.FEATURE_CATEGORY_LABELS),
        )
        for name, counter in d.categories.items():
            for key, n in counter.known.items():
                cat.add_metric([*mv, name, key], n)
        yield cat
        miss = CounterMetricFamily(
            N.FEATURE_MISSING,
            "Missing feature values (NaN, null, empty).",
            labels=list(N.FEATURE_MISSING_LABELS),
        )
        for name, n in d.missing.items():
            miss.add_metric([*mv, name], n)
        yield miss
        if d.pred_classes is not None:
            pc = CounterMetricFamily(
                N.PREDICTION_CLASS, "Predicted classes.", labels=list(N.PREDICTION_CLASS_LABELS)
            )
            for key, n in d.pred_classes.known.items():
                pc.add_metric([*mv, key], n)
            yield pc
        if d.pred_edges is not None:
            pv = HistogramMetricFamily(
                N.PREDICTION_VALUE,
                "Predicted values; buckets are the profile's edges.",
                labels=list(N.PREDICTION_VALUE_LABELS),
            )
            pv.add_metric(mv, buckets(d.pred_edges.tolist(), d.pred_counts), d.pred_sum)
            yield pv
        rows, psis = d.window_psi()
        g = GaugeMetricFamily(
            DRIFT_PSI, "PSI of the recent window against the profile.", labels=[*MV, N.LABEL_FEATURE]
        )
        for name, value in psis.items():
            g.add_metric([*mv, name], value)
        yield g
        wr = GaugeMetricFamily(DRIFT_WINDOW_ROWS, "Rows in the PSI window.", labels=MV)
        wr.add_metric(mv, rows)
        yield wr
