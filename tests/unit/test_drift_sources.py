"""Live-count sources: bucket differencing, reset handling, window deltas, and failure -> Inconclusive."""

from __future__ import annotations

import asyncio
import json
import socket

import numpy as np
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from onnxops.drift import names as N
from onnxops.drift.assemble import Sample, assemble, cumulative_to_bins, histogram_quantile
from onnxops.drift.live import Inconclusive, LiveCounts
from onnxops.drift.prometheus import fetch_prometheus, label_value, queries
from onnxops.drift.scrape import (
    Snapshot,
    Target,
    advance,
    fetch_scrape,
    parse_exposition,
    state_from_json,
    state_to_json,
    step_delta,
    window_delta,
)
from onnxops.profile import Profile, bin_counts

EDGES = [0.5, 1.0, 2.5]
PROFILE = Profile.model_validate(
    {
        "formatVersion": 1,
        "task": "classification",
        "rows": 8,
        "features": [
            {"name": "x", "index": 0, "kind": "numeric", "edges": EDGES, "counts": [2, 2, 2, 2]},
            {"name": "c", "index": 1, "kind": "categorical", "categories": ["a", "b"], "counts": [4, 4]},
        ],
        "prediction": {"kind": "class", "classes": ["0", "1"], "counts": [4, 4]},
    }
)


def test_cumulative_buckets_sorted_numerically_and_differenced() -> None:
    # lexical order would put "10.0" before "2.5"; +Inf last
    bounds, bins = cumulative_to_bins([("+Inf", 20), ("10.0", 15), ("2.5", 9), ("0.5", 3)])
    assert bounds == [0.5, 2.5, 10.0]
    assert bins == [3, 6, 6, 5]
    with pytest.raises(ValueError, match=r"\+Inf"):
        cumulative_to_bins([("1", 3)])


def test_histogram_quantile_hand_computed() -> None:
    # 100 observations: 50 in (0, 0.1], 40 in (0.1, 0.5], 10 in (0.5, +Inf)
    b = [("0.1", 50), ("0.5", 90), ("+Inf", 100)]
    assert histogram_quantile(0.5, b) == pytest.approx(0.1)
    assert histogram_quantile(0.7, b) == pytest.approx(0.1 + 0.4 * (20 / 40))
    assert histogram_quantile(0.99, b) == pytest.approx(0.5)  # in the +Inf bucket: the last finite bound
    assert histogram_quantile(0.25, b) == pytest.approx(0.05)
    assert histogram_quantile(0.5, [("0.1", 0), ("+Inf", 0)]) is None


def test_assemble_aligns_with_profile_and_flags_mismatch() -> None:
    mv = {"model": "m", "version": "1"}
    samples = [
        *(
            Sample(N.FEATURE_VALUE + "_bucket", {**mv, "feature": "x", "le": le}, v)
            for le, v in [("0.5", 1), ("1.0", 3), ("2.5", 6), ("+Inf", 10)]
        ),
        Sample(N.FEATURE_CATEGORY, {**mv, "feature": "c", "category": "a"}, 4),
        Sample(N.FEATURE_CATEGORY, {**mv, "feature": "c", "category": "zz"}, 2),
        Sample(N.FEATURE_MISSING, {**mv, "feature": "x"}, 1),
        Sample(N.PREDICTION_CLASS, {**mv, "class": "1"}, 11),
        Sample(N.REQUESTS, {**mv, "code": "200", "protocol": "v2"}, 9),
        Sample(N.REQUESTS, {**mv, "code": "503", "protocol": "v2"}, 1),
        Sample(N.FEATURE_VALUE + "_bucket", {"model": "m", "version": "2", "feature": "x", "le": "7"}, 1),
        Sample(N.FEATURE_VALUE + "_bucket", {"model": "m", "version": "2", "feature": "x", "le": "+Inf"}, 1),
    ]
    out = assemble(samples, {"1": PROFILE, "2": PROFILE, "3": PROFILE})
    lc = out["1"]
    assert isinstance(lc, LiveCounts)
    assert lc.numeric["x"] == [1, 2, 3, 4]
    assert lc.categorical["c"] == {"a": 4, "zz": 2}
    assert lc.missing["x"] == 1 and lc.prediction_classes == {"1": 11}
    assert lc.rows == 11  # no rows counter: busiest feature incl. missing
    assert lc.error_rate == pytest.approx(0.1)
    assert isinstance(out["2"], Inconclusive) and out["2"].reason == "BucketMismatch"
    assert isinstance(out["3"], Inconclusive) and out["3"].reason == "NoData"


def test_step_delta_and_reset() -> None:
    assert step_delta({"a": 5, "b": 1}, {"a": 7, "b": 1, "c": 2}) == {"a": 2, "b": 0, "c": 2}
    # a restarted pod: counters went down -> the new values are the increase
    assert step_delta({"a": 50, "b": 10}, {"a": 3, "b": 12}) == {"a": 3, "b": 12}


def test_window_delta_sums_steps_across_a_reset_and_advance_prunes() -> None:
    snaps = [Snapshot(0, {"a": 10}), Snapshot(30, {"a": 20}), Snapshot(60, {"a": 2})]  # reset before t=60
    cur = Snapshot(90, {"a": 7})
    # window 60 s: base is the newest snapshot >= 60 s old (t=30): (20->2 reset: 2) + (2->7: 5)
    assert window_delta(snaps, cur, 60) == {"a": 7}
    # window 100 s: base t=0: 10 + 2 + 5
    assert window_delta(snaps, cur, 100) == {"a": 17}
    assert window_delta([], cur, 60) is None
    kept = advance(snaps, cur, 60)
    assert [s.at for s in kept] == [30, 60, 90]
    assert [s.at for s in advance(snaps, cur, 60, max_keep=2)] == [60, 90]
    state = {"pod-a": kept}
    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state


def _exporter(version: str, values: list[float], cats: list[str], service: str = "svc") -> bytes:
    reg = CollectorRegistry()
    h = Histogram(N.FEATURE_VALUE, "x", list(N.FEATURE_VALUE_LABELS), buckets=EDGES, registry=reg)
    c = Counter(N.FEATURE_CATEGORY, "c", list(N.FEATURE_CATEGORY_LABELS), registry=reg)
    rows = Counter(N.ROWS, "rows", list(N.ROWS_LABELS), registry=reg)
    for v in values:
        h.labels("m", version, service, "x").observe(v)
    for k in cats:
        c.labels("m", version, service, "c", k).inc()
    rows.labels("m", version, service).inc(len(values))
    return generate_latest(reg)


def test_parse_exposition_keeps_only_our_model() -> None:
    text = _exporter("1", [0.1, 3.0], ["a"]).decode() + '\nonnxops_rows_total{model="other",version="1"} 5\n'
    parsed = parse_exposition(text, "m")
    assert all('"model","m"' in k for k in parsed)
    assert any("onnxops_rows_total" in k for k in parsed)


def test_parse_exposition_keeps_only_the_service_asked_for() -> None:
    # one page with the same model and version under two InferenceServices: only the one asked for counts
    text = _exporter("1", [0.1, 3.0], ["a"]).decode() + _exporter("1", [0.2] * 7, ["b"], "other").decode()
    mine, theirs = parse_exposition(text, "m", "svc"), parse_exposition(text, "m", "other")
    assert mine and theirs and not set(mine) & set(theirs)
    assert all('["inferenceservice","svc"]' in k for k in mine)
    rows = [v for k, v in mine.items() if k.startswith('["onnxops_rows_total"')]
    assert rows == [2.0]
    assert [v for k, v in theirs.items() if k.startswith('["onnxops_rows_total"')] == [7.0]
    assert parse_exposition(text, "m", "nobody") == {}


class _Pods:
    """Two pods of v1 and one of v2 served by aiohttp on 127.0.0.1; bodies can be swapped."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.fail: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        pod = request.match_info["pod"]
        if pod in self.fail:
            return web.Response(status=500, text="boom")
        return web.Response(body=self.bodies[pod], content_type="text/plain")


async def test_fetch_scrape_sums_pods_and_windows() -> None:
    pods = _Pods()
    app = web.Application()
    app.router.add_get("/{pod}/metrics", pods.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        base = f"http://127.0.0.1:{port}"
        targets = [
            Target("a", "1", f"{base}/a/metrics"),
            Target("b", "1", f"{base}/b/metrics"),
            Target("c", "2", f"{base}/c/metrics"),
        ]
        rng = np.random.default_rng(0)
        first = {p: list(rng.normal(1, 1, 20)) for p in "abc"}
        more = {p: list(rng.normal(1, 1, 30)) for p in "abc"}
        for p in "abc":
            pods.bodies[p] = _exporter("1" if p != "c" else "2", first[p], ["a"] * 3)
        res, state = await fetch_scrape(targets, "m", {"1": PROFILE, "2": PROFILE}, {}, 60, now=0)
        assert all(isinstance(r, Inconclusive) and r.reason == "WarmingUp" for r in res.values())
        for p in "abc":
            pods.bodies[p] = _exporter("1" if p != "c" else "2", first[p] + more[p], ["a"] * 3 + ["b"] * 2)
        pods.fail = {"b"}
        res, state = await fetch_scrape(targets, "m", {"1": PROFILE, "2": PROFILE}, state, 60, now=30)
        lc1, lc2 = res["1"], res["2"]
        assert isinstance(lc1, LiveCounts) and isinstance(lc2, LiveCounts)
        assert list(lc1.numeric["x"]) == list(bin_counts(EDGES, more["a"]))  # pod b failed: only a
        assert list(lc2.numeric["x"]) == list(bin_counts(EDGES, more["c"]))
        assert lc1.rows == 30 and lc1.categorical["c"] == {"a": 0, "b": 2}
        assert [s.at for s in state["b"]] == [0]  # the failed pod keeps its snapshot
        pods.fail = set()
        res, state = await fetch_scrape(targets, "m", {"1": PROFILE, "2": PROFILE}, state, 60, now=60)
        lc1 = res["1"]
        assert isinstance(lc1, LiveCounts)
        # window 60 s: pod a from t=0 (no increase since t=30) + pod b from t=0 (its only snapshot)
        assert list(lc1.numeric["x"]) == list(bin_counts(EDGES, more["a"]) + bin_counts(EDGES, more["b"]))
        pods.fail = {"a", "b", "c"}
        res, _ = await fetch_scrape(targets, "m", {"1": PROFILE, "2": PROFILE}, state, 60, now=90)
        assert all(isinstance(r, Inconclusive) and r.reason == "ScrapeFailed" for r in res.values())
    finally:
        await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_prometheus_unreachable_is_inconclusive() -> None:
    res = await fetch_prometheus(f"http://127.0.0.1:{_free_port()}", "m", {"1": PROFILE}, "5m", timeout_s=2)
    assert isinstance(res, Inconclusive) and res.reason == "PrometheusUnavailable"


@pytest.mark.parametrize("mode", ["500", "timeout", "garbage", "error-status"])
async def test_prometheus_bad_answers_are_inconclusive(mode: str) -> None:
    async def handle(request: web.Request) -> web.Response:
        if mode == "500":
            return web.Response(status=500, text="internal")
        if mode == "timeout":
            await asyncio.sleep(1.5)
        if mode == "garbage":
            return web.Response(text="not json")
        return web.json_response({"status": "error", "error": "parse error"})

    app = web.Application()
    app.router.add_get("/api/v1/query", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        res = await fetch_prometheus(f"http://127.0.0.1:{port}", "m", {"1": PROFILE}, "5m", timeout_s=0.3)
        assert isinstance(res, Inconclusive) and res.reason == "PrometheusUnavailable", res
    finally:
        await runner.cleanup()


def test_queries_are_batched_and_escaped() -> None:
    qs = queries('we"ird', "300s", {"namespace": "prod"})
    assert len(qs) == 8
    sel = 'onnxops_feature_value_bucket{model="we\\"ird",namespace="prod"}'
    assert qs[N.FEATURE_VALUE + "_bucket"] == (
        f"sum by (version, feature, le) ((increase({sel}[300s]) and {sel} offset 300s)"
        f" or ({sel} unless {sel} offset 300s))"
    )
    assert qs["p99"].startswith("histogram_quantile(0.99, sum by (version, le) ((increase(")
    assert label_value("a\\b") == '"a\\\\b"'
