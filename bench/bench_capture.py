"""Cost of payload capture: the same server with logging off vs 100 % sampling to a local directory.

    .venv/bin/python bench/bench_capture.py [--duration 4] [--reps 3]

Model: StandardScaler + LogisticRegression (20 features, 3 classes, ``lr`` of bench_serving.py), ONNX
without ZipMap, OIP v2 JSON. Load: ``wrk`` (one thread, keep-alive) at concurrency 8, batch 1 and 64.
The two servers run side by side and the runs are interleaved (off, on, on, off, off, on, ...) so that the
noise of the shared machine hits both. Capture uses the defaults of ``spec.logging`` (flush every 30 s or
every 10,000 rows) to a file:// sink in a temporary directory; after the runs the script reads the files
back (row count) and reads the capture counters (rows written, dropped) from /metrics.

Writes bench/results/capture.md. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import onnxruntime as ort
import pyarrow.dataset as pads

from bench_serving import LUA, WRK, Server, bodies, build_models, check_once, free_port, run_one

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "capture.md"


def start(m: dict, sink: Path | None) -> Server:
    port = free_port()
    env = dict(
        os.environ,
        ONNXOPS_MODEL_NAME="m",
        ONNXOPS_MODEL_URI=m["onnx"].as_uri(),
        ONNXOPS_MODEL_SHA256=hashlib.sha256(m["onnx"].read_bytes()).hexdigest(),
        ONNXOPS_PROFILE_URI=m["profile"].as_uri(),
        ONNXOPS_PROFILE_SHA256=hashlib.sha256(m["profile"].read_bytes()).hexdigest(),
        ONNXOPS_HOST="127.0.0.1",
        ONNXOPS_PORT=str(port),
        ONNXOPS_GRPC_PORT="0",  # HTTP only: 8081 may be taken
        ONNXOPS_LOG_LEVEL="WARNING",
        ONNXOPS_POD_NAME="bench",
    )
    if sink is not None:
        env.update(ONNXOPS_CAPTURE="true", ONNXOPS_CAPTURE_SINK_URI=sink.as_uri())
    name = "capture 100 %" if sink is not None else "capture off"
    return Server(
        name, [sys.executable, "-m", "onnxops.serving"], env, port, "/v2/health/ready", "/v2/models/m/infer"
    )


def versions() -> dict[str, str]:
    import platform
    import subprocess

    import pyarrow

    from onnxops import __version__

    wrk_v = subprocess.run([WRK, "-v"], capture_output=True, text=True, timeout=10).stdout.splitlines()
    return {
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "pyarrow": pyarrow.__version__,
        "onnxops": __version__,
        "wrk": (wrk_v or ["?"])[0].split(" [")[0],
    }


def counters(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("onnxops_payload_") or s.name == "onnxops_rows_total":
                out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run (default 4)")
    ap.add_argument("--reps", type=int, default=3, help="runs per server and batch (default 3)")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lua = work / "post.lua"
        lua.write_text(LUA)
        m = build_models(work)["lr"]
        iname = ort.InferenceSession(str(m["onnx"])).get_inputs()[0].name
        bods = bodies(work, "lr", m["X"], iname)
        check = m["est"].predict(m["X"][:64])
        sink = work / "traffic"
        off, on = start(m, None), start(m, sink)
        rows: list[dict] = []
        try:
            for b in (1, 64):
                oks = {s.name: check_once(s, bods[(b, "json")], check[:b]) for s in (off, on)}
                for rep in range(args.reps):
                    for s in (off, on) if rep % 2 == 0 else (on, off):
                        r = run_one(s, "lr", bods[(b, "json")], b, "json", 8, args.duration, lua, oks[s.name])
                        rows.append(r | {"rep": rep})
            before_stop = counters(on.port)
        finally:
            off.stop()
            on.stop()  # SIGTERM: the server flushes what it still holds
        read_back = (
            pads.dataset(sink, format="parquet", partitioning="hive").count_rows() if sink.exists() else 0
        )
        files = list(sink.rglob("*.parquet"))
        disk = sum(f.stat().st_size for f in files)
        vers = versions()
    elapsed = time.monotonic() - t0
    text = render(rows, before_stop, read_back, len(files), disk, vers, args, elapsed)
    args.output.write_text(text)
    print(text)
    return 0


def render(
    rows: list[dict],
    ctr: dict[str, float],
    read_back: int,
    files: int,
    disk: int,
    vers: dict[str, str],
    args: argparse.Namespace,
    elapsed: float,
) -> str:
    out = [
        "# Payload capture benchmark",
        "",
        "Generated by `bench/bench_capture.py`; numbers from one run on one machine, wrk sharing the cores.",
        "",
        "- machine: 2-core shared machine (noisy: other jobs run at the same time); load generator on the "
        "same cores",
        f"- command: `.venv/bin/python bench/bench_capture.py --duration {args.duration:g} "
        f"--reps {args.reps}`; whole run {elapsed:.0f} s",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        "- both servers: one process, 127.0.0.1, LR (20 features, 3 classes), OIP v2 JSON, wrk -t1 -c8, "
        "keep-alive; drift metrics on (the default) in both; capture with the defaults of `spec.logging` "
        "(sampleRate 1, flush every 30 s or 10,000 rows) to a local directory",
        "- runs interleaved (off, on, on, off, ...); the table gives the median of the runs and each run",
        "",
        "| batch | server | median req/s | median rows/s | runs (req/s) | p50 ms | p99 ms | CPU ms/req |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for b in (1, 64):
        for name in ("capture off", "capture 100 %"):
            rs = [r for r in rows if r["batch"] == b and r["server"] == name]
            if not rs:
                continue
            med = statistics.median(r["rps"] for r in rs)
            summary[(b, name)] = med
            out.append(
                f"| {b} | {name} | {med:,.0f} | {med * b:,.0f} | "
                + ", ".join(f"{r['rps']:,.0f}" for r in rs)
                + f" | {statistics.median(r['p50'] for r in rs):.2f}"
                f" | {statistics.median(r['p99'] for r in rs):.2f}"
                f" | {statistics.median(r['cpu_ms'] for r in rs):.3f} |"
            )
    out += ["", "## Cost", ""]
    for b in (1, 64):
        a, c = summary.get((b, "capture off")), summary.get((b, "capture 100 %"))
        if a and c:
            out.append(
                f"- batch {b}: capture at 100 % costs {100 * (1 - c / a):.1f} % of the throughput "
                f"({c:,.0f} vs {a:,.0f} req/s, medians)"
            )
    out += [
        "",
        "Reading: the issue's target is < 15 % throughput at batch 1 (aim < 10 %). Medians of interleaved "
        "runs on a noisy shared machine swing by tens of percent between runs of the same server, so the CPU "
        "time per request (server process, all threads) is the steadier figure. At batch 64 the capture "
        "writes 64x the rows per request (hundreds of thousands of rows/s into Parquet), and its cost grows "
        "with the rows: lower `sampleRate` for high-volume batch traffic.",
        "",
        "## What was captured",
        "",
        f"- rows inferred by the capturing server (`onnxops_rows_total`, before its stop): "
        f"{ctr.get('onnxops_rows_total', 0):,.0f}",
        "- captured / written before the stop / dropped: "
        f"{ctr.get('onnxops_payload_rows_captured_total', 0):,.0f}"
        f" / {ctr.get('onnxops_payload_rows_written_total', 0):,.0f}"
        f" / {ctr.get('onnxops_payload_rows_dropped_total', 0):,.0f}",
        f"- read back after SIGTERM (pyarrow.dataset over the sink): {read_back:,} rows in {files} Parquet "
        f"files, {disk / 1e6:.1f} MB ({disk / max(read_back, 1):.1f} bytes per row, zstd)",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
