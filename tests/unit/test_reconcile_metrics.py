"""The default metrics provider's parsing: request stats from /metrics pages written by prometheus_client."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from onnxops.controller.metrics import promql, stats_from_expositions
from onnxops.drift import names as N


def page(ok: int, err: int, latency_s: float, version: str = "2", service: str = "iris") -> str:
    reg = CollectorRegistry()
    req = Counter(N.REQUESTS.removesuffix("_total"), "requests", list(N.REQUESTS_LABELS), registry=reg)
    dur = Histogram(
        N.REQUEST_DURATION,
        "latency",
        list(N.REQUEST_DURATION_LABELS),
        buckets=N.LATENCY_BUCKETS,
        registry=reg,
    )
    req.labels("iris", version, service, "v2", "200").inc(ok)
    req.labels("iris", version, service, "v2", "503").inc(err)
    req.labels("other", version, service, "v2", "500").inc(1000)  # another model: ignored
    for _ in range(ok + err):
        dur.labels("iris", version, service, "v2").observe(latency_s)
    return generate_latest(reg).decode()


def test_stats_sum_over_pods_and_p99():
    s = stats_from_expositions(
        [page(60, 0, 0.003), page(35, 5, 0.003), page(9, 9, 9.0, "1")], "iris", 2, "iris"
    )
    assert (s.requests, s.errors) == (100, 5)
    # all 100 observations fall in (0.0025, 0.005]: p99 = 0.0025 + 0.0025 * 99/100 s (linear interpolation)
    assert s.p99_ms == pytest.approx((0.0025 + 0.0025 * 0.99) * 1000)


def test_no_traffic_has_no_latency():
    s = stats_from_expositions([page(0, 0, 0.1)], "iris", 2)
    assert s.requests == 0 and s.p99_ms is None


def test_stats_keep_only_the_service_asked_for():
    # another InferenceService of the same model and version (same namespace) fails every request: its
    # series on a page must not reach this service's analysis
    pages = [page(90, 0, 0.003), page(10, 10, 9.0, service="iris-b")]
    mine = stats_from_expositions(pages, "iris", 2, "iris")
    assert (mine.requests, mine.errors) == (90, 0)
    theirs = stats_from_expositions(pages, "iris", 2, "iris-b")
    assert (theirs.requests, theirs.errors) == (20, 10)


def test_promql_selects_namespace_service_model_and_version():
    q = promql("iris", 3, 60, "team-a", "iris")
    sel = '{model="iris",version="3",namespace="team-a",inferenceservice="iris"}'

    def inc(s: str) -> str:  # the window's increase, series born inside the window counted whole
        return f"((increase({s}[60s]) and {s} offset 60s) or ({s} unless {s} offset 60s))"

    req = f"onnxops_requests_total{sel}"
    assert q["requests"] == f"sum {inc(req)}"
    err = req.replace('"iris"}', '"iris",code=~"5.."}')
    assert q["errors"] == f"sum {inc(err)}"
    bucket = f"onnxops_request_duration_seconds_bucket{sel}"
    assert q["p99"] == f"histogram_quantile(0.99, sum by (le) {inc(bucket)})"
    # a hostile name cannot widen the selector: it stays one quoted, escaped label value
    q = promql("iris", 3, 60, "team-a", 'x",namespace=~".*')
    assert r'inferenceservice="x\",namespace=~\".*"}' in q["requests"]
