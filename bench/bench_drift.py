"""What one drift evaluation costs in the operator: scoring a version's window against its profile (per
method, for F features), parsing a pod's /metrics exposition, assembling LiveCounts, and the whole
policy decision for two served versions. Also the offline CLI engine on N rows per column.

    python bench/bench_drift.py [--features 10 50 200] [--rows 10000] [--repeat 50]

Reported: median and p95 wall time per call (time.perf_counter), single thread.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from onnxops.drift import names as N
from onnxops.drift.assemble import Sample, assemble
from onnxops.drift.compare import compare_frames
from onnxops.drift.live import LiveCounts, score_version
from onnxops.drift.policy import PolicySpec, PriorState, ServedVersion, decide
from onnxops.drift.scrape import parse_exposition, parse_key
from onnxops.profile import Profile, bin_counts, numeric_feature


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def setup(features: int, rng: np.random.Generator) -> tuple[Profile, LiveCounts, LiveCounts, str]:
    X = rng.normal(0, 1, (2000, features))
    profile = Profile(
        task="regression", rows=2000, features=[numeric_feature(f"f{i}", i, X[:, i]) for i in range(features)]
    )
    live_ok = LiveCounts(
        "1",
        rows=5000,
        numeric={f.name: bin_counts(f.edges, rng.normal(0, 1, 5000)).tolist() for f in profile.features},
    )  # type: ignore[union-attr]
    live_bad = LiveCounts(
        "2",
        rows=5000,
        numeric={f.name: bin_counts(f.edges, rng.normal(0.5, 1, 5000)).tolist() for f in profile.features},
    )  # type: ignore[union-attr]
    reg = CollectorRegistry()
    h = Histogram(
        N.FEATURE_VALUE, "v", list(N.FEATURE_VALUE_LABELS), buckets=profile.features[0].edges, registry=reg
    )  # type: ignore[union-attr]
    rows = Counter(N.ROWS, "r", list(N.ROWS_LABELS), registry=reg)
    for i in range(features):
        child = h.labels("m", "1", "svc", f"f{i}")
        for v in rng.normal(0, 1, 50):
            child.observe(v)
    rows.labels("m", "1", "svc").inc(50)
    return profile, live_ok, live_bad, generate_latest(reg).decode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"python {platform.python_version()} on {platform.machine()}, numpy {np.__version__}")
    print("| operation | features | median ms | p95 ms |")
    print("|---|---:|---:|---:|")
    for f in args.features:
        profile, ok, bad, text = setup(f, rng)
        for method, th in (("psi", 0.2), ("js", 0.1), ("ks", 0.05), ("wasserstein", 0.1), ("chi2", 0.05)):
            med, p95 = timed(
                partial(score_version, bad, profile, method=method, threshold=th, min_samples=1), args.repeat
            )
            print(f"| score_version {method} | {f} | {med * 1e3:.2f} | {p95 * 1e3:.2f} |")
        med, p95 = timed(partial(parse_exposition, text, "m"), args.repeat)
        print(f"| parse_exposition ({len(text) // 1024} KiB) | {f} | {med * 1e3:.2f} | {p95 * 1e3:.2f} |")
        parsed = parse_exposition(text, "m")
        samples = [Sample(*parse_key(k), v) for k, v in parsed.items()]
        med, p95 = timed(partial(assemble, samples, {"1": profile}), args.repeat)
        print(f"| assemble | {f} | {med * 1e3:.2f} | {p95 * 1e3:.2f} |")
        served = [ServedVersion("1", "stable", ok, profile), ServedVersion("2", "canary", bad, profile)]
        spec = PolicySpec(failure_limit=1, min_samples=1)
        med, p95 = timed(partial(decide, served, spec, PriorState(), datetime.now(UTC)), args.repeat)
        print(f"| decide (2 versions, psi) | {f} | {med * 1e3:.2f} | {p95 * 1e3:.2f} |")
    n = args.rows
    ref = {f"c{i}": list(rng.normal(0, 1, n)) for i in range(10)}
    cur = {f"c{i}": list(rng.normal(0.1, 1, n)) for i in range(10)}
    med, p95 = timed(partial(compare_frames, ref, cur), max(3, args.repeat // 10))
    label = f"compare_frames all methods, {n} rows x 10 numeric columns"
    print(f"| {label} | 10 | {med * 1e3:.1f} | {p95 * 1e3:.1f} |")


if __name__ == "__main__":
    main()
