"""The default metrics provider's parsing: request stats from /metrics pages written by prometheus_client."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from onnxops.controller.metrics import promql, stats_from_expositions
from onnxops.drift import names as N


def page(ok: int, err: int, latency_s: float, version: str = "2") -> str:
    reg = CollectorRegistry()
    req = Counter(N.REQUESTS.removesuffix("_total"), "requests", list(N.REQUESTS_LABELS), registry=reg)
    dur = Histogram(
        N.REQUEST_DURATION,
        "latency",
        list(N.REQUEST_DURATION_LABELS),
        buckets=N.LATENCY_BUCKETS,
        registry=reg,
    )
    req.labels("iris", version, "v2", "200").inc(ok)
    req.labels("iris", version, "v2", "503").inc(err)
    req.labels("other", version, "v2", "500").inc(1000)  # another model: ignored
    for _ in range(ok + err):
        dur.labels("iris", version, "v2").observe(latency_s)
    return generate_latest(reg).decode()


def test_stats_sum_over_pods_and_p99():
    s = stats_from_expositions([page(60, 0, 0.003), page(35, 5, 0.003), page(9, 9, 9.0, "1")], "iris", 2)
    assert (s.requests, s.errors) == (100, 5)
    # all 100 observations fall in (0.0025, 0.005]: p99 = 0.0025 + 0.0025 * 99/100 s (linear interpolation)
    assert s.p99_ms == pytest.approx((0.0025 + 0.0025 * 0.99) * 1000)


def test_no_traffic_has_no_latency():
    s = stats_from_expositions([page(0, 0, 0.1)], "iris", 2)
    assert s.requests == 0 and s.p99_ms is None


def test_promql_selects_model_and_version():
    q = promql("iris", 3, 60)
    assert q["requests"] == 'sum(increase(onnxops_requests_total{model="iris",version="3"}[60s]))'
    assert 'code=~"5.."' in q["errors"] and "histogram_quantile(0.99" in q["p99"]
