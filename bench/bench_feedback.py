"""Cost of ground truth on the request path, and throughput of the feedback endpoint (in process).

    .venv/bin/python bench/bench_feedback.py [--requests 20000] [--reps 5]

The request path only gains one insert into the bounded map of recent predictions (``RecentPredictions``,
for id resolution of feedback without an echo). This measures the server's own request handling
(``Handlers.handle``: decode OIP v2 JSON, ONNX Runtime, drift counters, encode) with that map on (the
default, 100,000 requests) and off (``ONNXOPS_FEEDBACK_RECENT_REQUESTS=0``), interleaved runs, no HTTP and
no load generator (their noise would hide a sub-microsecond cost). Then the feedback endpoint: 100-item
requests with the echo, and without it (resolved from the map). Model: LogisticRegression on iris, ONNX
without ZipMap.

Writes bench/results/feedback.md. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "feedback.md"


def build(tmp: Path) -> tuple[object, np.ndarray]:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from onnxops.serving.config import ServerConfig
    from onnxops.serving.model import load_model

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    est = LogisticRegression(max_iter=500).fit(x, y)
    blob = to_onnx(est, x[:1], options={id(est): {"zipmap": False}}, target_opset=17).SerializeToString()
    path = tmp / "model.onnx"
    path.write_bytes(blob)
    cfg = ServerConfig(
        model_name="iris", model_version="1", model_uri=path.as_uri(), sha256=hashlib.sha256(blob).hexdigest()
    )
    return load_model(cfg), x


def handlers(model: object, recent: int) -> object:
    from onnxops.serving.feedback import Feedback, FeedbackConfig
    from onnxops.serving.handlers import Handlers
    from onnxops.serving.metrics import ServerMetrics
    from onnxops.serving.model import ModelState

    state = ModelState()
    state.set_loaded(model)  # type: ignore[arg-type]
    metrics = ServerMetrics("iris", "1", "iris")
    h = Handlers("iris", "1", state, metrics)
    h.feedback = Feedback(FeedbackConfig(recent_requests=recent), "iris", "1", "iris")
    return h


def time_infer(h: object, bodies: list[bytes]) -> float:
    """Microseconds per request."""
    t0 = time.perf_counter()
    for b in bodies:
        _, r = h.handle("POST", "/v2/models/iris/infer", {}, b)  # type: ignore[attr-defined]
        assert r.status == 200
    return (time.perf_counter() - t0) / len(bodies) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    t_start = time.time()
    with tempfile.TemporaryDirectory() as d:
        model, x = build(Path(d))
    runs: dict[str, list[float]] = {"off": [], "on": []}
    rng = np.random.default_rng(0)
    rows = x[rng.integers(0, 150, a.requests)]
    for rep in range(a.reps):
        order = ("off", "on") if rep % 2 == 0 else ("on", "off")
        for mode in order:
            h = handlers(model, 0 if mode == "off" else 100_000)
            bodies = [
                json.dumps(
                    {
                        "id": f"{mode}-{rep}-{i}",
                        "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": r.tolist()}],
                    }
                ).encode()
                for i, r in enumerate(rows)
            ]
            time_infer(h, bodies[:500])  # warm-up
            runs[mode].append(time_infer(h, bodies[500:]))
    off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
    # feedback endpoint
    h = handlers(model, 100_000)
    preds = []
    for i, r in enumerate(rows[:5000]):
        body = json.dumps(
            {
                "id": f"f{i}",
                "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": r.tolist()}],
            }
        ).encode()
        _, resp = h.handle("POST", "/v2/models/iris/infer", {}, body)  # type: ignore[attr-defined]
        preds.append(json.loads(resp.body)["outputs"][0]["data"][0])
    fb: dict[str, float] = {}
    for mode in ("echo", "resolve"):
        reqs = []
        for s in range(0, 5000, 100):
            items = [
                {"id": f"f{i}", "truth": int(preds[i])}
                | ({"version": "1", "prediction": preds[i]} if mode == "echo" else {})
                for i in range(s, s + 100)
            ]
            reqs.append(json.dumps(items).encode())
        t0 = time.perf_counter()
        for _ in range(4):
            for b in reqs:
                _, resp = h.handle("POST", "/v2/models/iris/feedback", {}, b)  # type: ignore[attr-defined]
                assert resp.status == 200 and json.loads(resp.body)["accepted"] == 100
        fb[mode] = 4 * 5000 / (time.perf_counter() - t0)
    cost = (on - off) / off * 100
    # the map's own cost, isolated: record() into a full map (each call evicts the oldest entry)
    import timeit

    from onnxops.serving.feedback import RecentPredictions

    rp = RecentPredictions("1", 100_000)
    out = [np.zeros(1, np.int64)]
    for i in range(100_000):
        rp.record(f"warm-{i}", out, 1)
    ids = iter(f"id-{i}" for i in range(10**7))
    n = 1_000_000
    record_ns = min(timeit.repeat(lambda: rp.record(next(ids), out, 1), number=n, repeat=3)) / n * 1e9
    overlap = max(runs["off"]) >= min(runs["on"]) and max(runs["on"]) >= min(runs["off"])
    noise = (
        f"The two sets of runs overlap (min..max {min(runs['off']):.1f}..{max(runs['off']):.1f} vs "
        f"{min(runs['on']):.1f}..{max(runs['on']):.1f} µs): the difference is within the noise of the "
        "shared machine."
        if overlap
        else "The runs do not overlap."
    )
    off_runs = ", ".join(f"{v:.1f}" for v in runs["off"])
    on_runs = ", ".join(f"{v:.1f}" for v in runs["on"])
    lines = [
        "# Feedback (ground truth) benchmark",
        "",
        "Generated by `bench/bench_feedback.py`; one run on one machine.",
        "",
        "- machine: 2 shared cores (noisy: other jobs run at the same time)",
        f"- command: `.venv/bin/python bench/bench_feedback.py --requests {a.requests} --reps {a.reps}`; "
        f"whole run {time.time() - t_start:.0f} s",
        f"- versions: python {platform.python_version()}, onnxruntime {ort.__version__}",
        "- in process: `Handlers.handle` (OIP v2 JSON decode, ONNX Runtime, drift counters, encode), "
        "batch 1, LogisticRegression on iris; no HTTP, no load generator; runs interleaved "
        "(off, on, on, off, ...)",
        "",
        "## Request path: recent-predictions map on vs off (baseline)",
        "",
        "| server | median µs/request | runs (µs/request) |",
        "|---|---|---|",
        f"| map off (`ONNXOPS_FEEDBACK_RECENT_REQUESTS=0`) | {off:.1f} | {off_runs} |",
        f"| map on (default, 100,000 requests) | {on:.1f} | {on_runs} |",
        "",
        f"Cost of the map: {on - off:+.2f} µs per request ({cost:+.1f} %, ratio on/off {on / off:.3f}, "
        f"medians). {noise}",
        "",
        "Isolated: `RecentPredictions.record` into a full map (evicting the oldest each call) takes "
        f"{record_ns:.0f} ns per request (timeit, best of 3 x {n:,}; an upper bound, it includes making "
        f"the id string), {record_ns / 1000 / off * 100:.1f} % of the median request above.",
        "",
        "## Feedback endpoint",
        "",
        "| items | labelled predictions per second (100 items per request) |",
        "|---|---|",
        f"| with the echo (version, prediction) | {fb['echo']:,.0f} |",
        f"| without it (resolved from the map) | {fb['resolve']:,.0f} |",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
