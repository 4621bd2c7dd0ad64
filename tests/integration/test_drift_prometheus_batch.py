"""Batched drift queries against a REAL Prometheus: one query per metric family for many InferenceServices
of one namespace gives every service exactly its own series — the counts written in its exposition, the
same as the per-service query — and never another namespace's service of the same name, nor another
model's series under the same service name.

Two static expositions (one per namespace, as Kubernetes discovery labels each pod's target with its
namespace) hold known counts; the reference is those numbers, not anything the query code computes.
"""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_drift_prometheus_support import Prometheus, wait

from onnxops.drift import names as N
from onnxops.drift.batch import PrometheusBatcher
from onnxops.drift.live import LiveCounts
from onnxops.drift.prometheus import BatchRequest, fetch_prometheus, fetch_prometheus_batch, scope_matchers
from onnxops.profile import Profile

pytestmark = pytest.mark.timeout(90)
EDGES = [0.0, 1.0, 2.0]
PROFILE = Profile.model_validate(
    {
        "formatVersion": 1,
        "task": "classification",
        "rows": 10,
        "features": [{"name": "x", "index": 0, "kind": "numeric", "edges": EDGES, "counts": [1, 1, 1, 1]}],
        "prediction": {"kind": "class", "classes": ["0", "1"], "counts": [5, 5]},
    }
)


def counts(seed: int) -> dict[str, Any]:
    """Known per-bin counts of one served version (the reference)."""
    bins = [float(seed + i) for i in range(len(EDGES) + 1)]
    return {
        "bins": bins,
        "rows": sum(bins),
        "cls": {"0": float(seed), "1": float(2 * seed)},
        "req": sum(bins),
        "err": float(seed % 3),
    }


# (namespace, service, model, version) -> counts; "shared" exists in both namespaces, with other counts,
# and team-a's "shared" also carries series of another model (a previous spec.model)
SERIES = {
    ("team-a", "svc-1", "m", "1"): counts(1),
    ("team-a", "svc-2", "m2", "1"): counts(2),
    ("team-a", "shared", "m", "1"): counts(3),
    ("team-a", "shared", "m", "2"): counts(4),
    ("team-a", "shared", "old", "1"): counts(50),
    ("team-b", "shared", "m", "1"): counts(7),
    ("team-b", "shared", "m", "2"): counts(8),
    ("team-b", "svc-1", "m", "1"): counts(9),
}


def exposition(namespace: str) -> str:
    lines = []
    for (ns, svc, model, version), c in SERIES.items():
        if ns != namespace:
            continue
        scope = f'model="{model}",version="{version}",inferenceservice="{svc}"'
        cum = 0.0
        for le, b in zip([*map(str, EDGES), "+Inf"], c["bins"], strict=True):
            cum += b
            lines.append(f'{N.FEATURE_VALUE}_bucket{{{scope},feature="x",le="{le}"}} {cum}')
        for k, v in c["cls"].items():
            lines.append(f'{N.PREDICTION_CLASS}{{{scope},class="{k}"}} {v}')
        lines.append(f"{N.ROWS}{{{scope}}} {c['rows']}")
        lines.append(f'{N.REQUESTS}{{{scope},protocol="v2",code="200"}} {c["req"] - c["err"]}')
        lines.append(f'{N.REQUESTS}{{{scope},protocol="v2",code="500"}} {c["err"]}')
    return "\n".join(lines) + "\n"


class Exposition(http.server.ThreadingHTTPServer):
    def __init__(self, text: str) -> None:
        body = text.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)


@pytest.fixture
def prom(tmp_path: Path) -> Iterator[Prometheus]:
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus server is not installed (Debian package `prometheus`)")
    servers = [Exposition(exposition("team-a")), Exposition(exposition("team-b"))]
    p = Prometheus(
        tmp_path,
        [s.port for s in servers],
        "m",
        target_labels=[{"namespace": "team-a"}, {"namespace": "team-b"}],
    )
    try:
        wait(lambda: len(p.query(f"{N.ROWS}")) == len(SERIES), 30, "both targets scraped")
        yield p
    finally:
        p.stop()
        for s in servers:
            s.stop()


def assert_counts(lc: Any, ref: dict[str, Any]) -> None:
    assert isinstance(lc, LiveCounts), lc
    assert list(lc.numeric["x"]) == pytest.approx(ref["bins"], abs=1e-9)
    assert dict(lc.prediction_classes) == pytest.approx(ref["cls"], abs=1e-9)
    assert lc.rows == pytest.approx(ref["rows"], abs=1e-9)
    assert (lc.requests, lc.errors) == pytest.approx((ref["req"], ref["err"]), abs=1e-9)


async def test_batched_queries_give_each_service_its_own_series(prom: Prometheus) -> None:
    profiles = {"1": PROFILE, "2": PROFILE}
    reqs = [
        BatchRequest("svc-1", "m", {"1": PROFILE}),
        BatchRequest("svc-2", "m2", {"1": PROFILE}),
        BatchRequest("shared", "m", profiles),
    ]
    for max_services in (100, 2):  # one chunk, and chunks of 2 services
        got = await fetch_prometheus_batch(prom.url, "team-a", reqs, "10m", max_services=max_services)
        assert set(got) == {"svc-1", "svc-2", "shared"}
        for (ns, svc, model, version), ref in SERIES.items():
            if ns == "team-a" and model != "old":
                res = got[svc]
                assert isinstance(res, dict), res
                assert_counts(res[version], ref)  # team-a's numbers, never team-b's or model "old"'s
        # the batch gives each service what its own scoped query gives
        for r in reqs:
            alone = await fetch_prometheus(
                prom.url, r.model, r.profiles, "10m", extra_matchers=scope_matchers("team-a", r.service)
            )
            assert isinstance(alone, dict)
            for v in r.profiles:
                a, b = alone[v], got[r.service]
                assert isinstance(b, dict)
                assert isinstance(a, LiveCounts) and isinstance(b[v], LiveCounts)
                assert list(a.numeric["x"]) == pytest.approx(list(b[v].numeric["x"]))  # type: ignore[union-attr]
    # the other namespace: its own "shared" and "svc-1", never team-a's
    got_b = await fetch_prometheus_batch(
        prom.url,
        "team-b",
        [BatchRequest("shared", "m", profiles), BatchRequest("svc-1", "m", {"1": PROFILE})],
        "10m",
    )
    for v in ("1", "2"):
        res = got_b["shared"]
        assert isinstance(res, dict)
        assert_counts(res[v], SERIES[("team-b", "shared", "m", v)])
    res = got_b["svc-1"]
    assert isinstance(res, dict)
    assert_counts(res["1"], SERIES[("team-b", "svc-1", "m", "1")])


async def test_the_batcher_coalesces_concurrent_evaluations_per_namespace(prom: Prometheus) -> None:
    import asyncio

    batcher = PrometheusBatcher(linger_s=0.2)
    calls = [
        ("team-a", "svc-1", "m"),
        ("team-a", "shared", "m"),
        ("team-b", "shared", "m"),
        ("team-b", "svc-1", "m"),
    ]
    results = await asyncio.gather(
        *(batcher.fetch(prom.url, ns, svc, model, {"1": PROFILE}, "10m") for ns, svc, model in calls)
    )
    assert batcher.queries == 2  # one batch per namespace, not one per service
    for (ns, svc, model), res in zip(calls, results, strict=True):
        assert isinstance(res, dict)
        assert_counts(res["1"], SERIES[(ns, svc, model, "1")])
    await batcher.close()
