"""The PromQL path against a REAL Prometheus scraping real processes that expose our metric names.

The exporter is a small prometheus_client process (the same names, labels and bucket layout as the model
server). The test compares what ``fetch_prometheus`` computes with the exposition itself, parsed
independently with prometheus_client's parser, and checks counter-reset handling by restarting the
exporter. Queries are evaluated exactly at a scrape's timestamp over a window reaching back before the
series were created, so Prometheus' ``increase()`` has nothing to extrapolate and the counts are exact.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_drift_prometheus_support import (
    Prometheus,
    assert_same,
    free_port,
    from_exposition,
    get,
    stop_process,
    wait,
)

from onnxops.drift.assemble import histogram_quantile
from onnxops.drift.live import LiveCounts
from onnxops.drift.prometheus import fetch_prometheus
from onnxops.drift.scrape import Snapshot, Target, fetch_scrape
from onnxops.profile import Profile

pytestmark = pytest.mark.timeout(90)

EDGES = [-1.0, 0.0, 0.5, 1.0, 2.5]
MODEL = "m"

EXPORTER = textwrap.dedent("""
    import sys, time, pathlib, random
    from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
    from onnxops.drift import names as N
    port, ctl, seed = int(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
    edges = [float(e) for e in sys.argv[4].split(",")]
    reg = CollectorRegistry()
    fv = Histogram(N.FEATURE_VALUE, "v", list(N.FEATURE_VALUE_LABELS), buckets=edges, registry=reg)
    cat = Counter(N.FEATURE_CATEGORY, "c", list(N.FEATURE_CATEGORY_LABELS), registry=reg)
    miss = Counter(N.FEATURE_MISSING, "m", list(N.FEATURE_MISSING_LABELS), registry=reg)
    pc = Counter(N.PREDICTION_CLASS, "p", list(N.PREDICTION_CLASS_LABELS), registry=reg)
    rows = Counter(N.ROWS, "r", list(N.ROWS_LABELS), registry=reg)
    req = Counter(N.REQUESTS, "q", list(N.REQUESTS_LABELS), registry=reg)
    dur = Histogram(N.REQUEST_DURATION, "d", list(N.REQUEST_DURATION_LABELS), buckets=N.LATENCY_BUCKETS,
                    registry=reg)
    for v in ("1", "2"):  # pre-create every series at 0
        for f in ("x", "y"):
            fv.labels("m", v, "svc", f); miss.labels("m", v, "svc", f)
        for k in ("a", "b"):
            cat.labels("m", v, "svc", "c", k)
        for k in ("0", "1"):
            pc.labels("m", v, "svc", k)
        rows.labels("m", v, "svc")
        req.labels("m", v, "svc", "v2", "200"); req.labels("m", v, "svc", "v2", "500")
        dur.labels("m", v, "svc", "v2")
    start_http_server(port, addr="127.0.0.1", registry=reg)
    (ctl / "ready").write_text("1")
    while not (ctl / "go").exists():
        time.sleep(0.05)
    rnd = random.Random(seed)
    for i in range(400):
        v = "1" if i % 4 else "2"
        shift = 0.0 if v == "1" else 1.0
        fv.labels("m", v, "svc", "x").observe(rnd.gauss(shift, 1))
        fv.labels("m", v, "svc", "y").observe(rnd.choice(edges))  # exactly on an edge: right-closed bins
        if i % 10 == 0:
            miss.labels("m", v, "svc", "y").inc()
        cat.labels("m", v, "svc", "c", rnd.choice("ab" if v == "1" else "abz")).inc()
        pc.labels("m", v, "svc", rnd.choice("01")).inc()
        rows.labels("m", v, "svc").inc()
        req.labels("m", v, "svc", "v2", "500" if i % 50 == 0 else "200").inc()
        dur.labels("m", v, "svc", "v2").observe(rnd.expovariate(1 / 0.02))
    (ctl / "done").write_text("1")
    while True:
        time.sleep(1)
""")


class Exporter:
    def __init__(self, tmp: Path, port: int, seed: int) -> None:
        self.ctl = tmp / f"ctl-{seed}"
        self.ctl.mkdir()
        script = tmp / "exporter.py"
        script.write_text(EXPORTER)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(port), str(self.ctl), str(seed), ",".join(map(str, EDGES))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait(lambda: (self.ctl / "ready").exists() or self._dead(), 20, "the exporter")
        except BaseException:
            self.stop()
            raise

    def _dead(self) -> bool:
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"exporter died: {err}")
        return False

    def go(self) -> None:
        (self.ctl / "go").write_text("1")
        wait(lambda: (self.ctl / "done").exists(), 20, "the exporter's observations")

    def exposition(self) -> str:
        return get(self.url).decode()

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Prometheus, int, Path]]:
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus server is not installed (Debian package `prometheus`)")
    port = free_port()
    prom = Prometheus(tmp_path, [port], MODEL)
    try:
        yield prom, port, tmp_path
    finally:
        prom.stop()


def _profile() -> Profile:
    return Profile.model_validate(
        {
            "formatVersion": 1,
            "task": "classification",
            "rows": 10,
            "features": [
                {"name": "x", "index": 0, "kind": "numeric", "edges": EDGES, "counts": [1] * 6},
                {"name": "y", "index": 1, "kind": "numeric", "edges": EDGES, "counts": [1] * 6},
                {"name": "c", "index": 2, "kind": "categorical", "categories": ["a", "b"], "counts": [5, 5]},
            ],
            "prediction": {"kind": "class", "classes": ["0", "1"], "counts": [5, 5]},
        }
    )


async def test_promql_counts_equal_the_exposition_and_survive_a_restart(stack) -> None:
    prom, port, tmp = stack
    profiles = {"1": _profile(), "2": _profile()}
    exp = Exporter(tmp, port, seed=1)
    try:
        # Prometheus has seen the zero-valued series before any observation
        start = prom.zero_window_start()
        before = exp.exposition()
        exp.go()
        text = exp.exposition()
        t1 = prom.last_sample(400.0)
        live = await fetch_prometheus(prom.url, MODEL, profiles, t1 - start, at=t1, timeout_s=5)
        assert isinstance(live, dict)
        for v in ("1", "2"):
            lc = live[v]
            assert isinstance(lc, LiveCounts), lc
            ref = from_exposition(text, v)
            assert_same(lc, ref)
            # Prometheus' own histogram_quantile over the window = ours over the exposition's buckets
            assert lc.latency_p99_s == pytest.approx(histogram_quantile(0.99, ref["lat"]), rel=1e-9)
        assert set(live["2"].categorical["c"]) == {"a", "b", "z"}  # z: unseen in training, created live
        # the direct-scrape path computes the same window from the two expositions
        now = time.time()
        state = {"p": [Snapshot(now - 10, _parse(before))]}
        scraped, _ = await fetch_scrape(
            [Target("p", "1", exp.url), Target("p2", "2", exp.url)],
            MODEL,
            profiles,
            {**state, "p2": state["p"]},
            60,
            now,
        )
        for v in ("1", "2"):
            lc = scraped[v]
            assert isinstance(lc, LiveCounts), lc
            assert_same(lc, from_exposition(text, v))
    finally:
        exp.stop()
    # counter reset: a new process on the same port counts from 0 again; increase() adds both lives
    exp2 = Exporter(tmp, port, seed=2)
    try:
        prom.last_sample(0.0)
        exp2.go()
        text2 = exp2.exposition()
        t2 = prom.last_sample(400.0)
        # the window reaches back into the first life: increase() must add the counts before the reset
        live = await fetch_prometheus(prom.url, MODEL, profiles, t2 - start, at=t2, timeout_s=5)
        assert isinstance(live, dict)
        for v in ("1", "2"):
            first, second = from_exposition(text, v), from_exposition(text2, v)
            lc = live[v]
            assert isinstance(lc, LiveCounts)
            for f in ("x", "y"):
                expected = [a + b for a, b in zip(first["bins"][f], second["bins"][f], strict=True)]
                assert list(lc.numeric[f]) == pytest.approx(expected, abs=1e-9)
            assert lc.rows == pytest.approx(first["rows"] + second["rows"], abs=1e-9)
    finally:
        exp2.stop()


def _parse(text: str) -> dict[str, float]:
    from onnxops.drift.scrape import parse_exposition

    return parse_exposition(text, MODEL)
