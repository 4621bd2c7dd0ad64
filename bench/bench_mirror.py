"""Cost of shadow traffic on the stable server: the same server with mirroring off vs 100 % mirroring to a
shadow server (a third process serving the same model).

    .venv/bin/python bench/bench_mirror.py [--duration 3] [--reps 3]

Model: StandardScaler + LogisticRegression (20 features, 3 classes, ``lr`` of bench_serving.py), ONNX
without ZipMap, OIP v2 JSON. Load: ``wrk`` (one thread, keep-alive) at concurrency 8, batch 1 and 64, on
the stable server only (the shadow gets the mirrored copies). The two stable servers run side by side and
the runs are interleaved (off, on, on, off, ...). Mirroring uses the defaults (sample rate 1, at most 32
open mirrored requests, 2 s timeout); the counters of the mirroring server (sent, dropped for the bound,
rows compared / agreed) are read from its /metrics after the runs. The shadow shares the 2 cores, so the
number includes the shadow's own CPU competing with the stable server, as on a node that runs both.

Writes bench/results/mirror.md. Not a test: nothing here asserts a timing.
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

from bench_capture import versions
from bench_serving import LUA, Server, bodies, build_models, check_once, free_port, proc_cpu, run_one

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "mirror.md"


def start(m: dict, name: str, mirror_to: int | None, rate: float = 1.0) -> Server:
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
        ONNXOPS_GRPC_PORT="0",
        ONNXOPS_LOG_LEVEL="WARNING",
    )
    if mirror_to is not None:
        env["ONNXOPS_MIRROR_URL"] = f"http://127.0.0.1:{mirror_to}"
        env["ONNXOPS_MIRROR_SAMPLE_RATE"] = str(rate)
    return Server(
        name, [sys.executable, "-m", "onnxops.serving"], env, port, "/v2/health/ready", "/v2/models/m/infer"
    )


def counters(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("onnxops_shadow_") and not s.name.endswith(("_bucket", "_created")):
                key = s.name + (f"[{s.labels['result']}]" if "result" in s.labels else "")
                out[key] = out.get(key, 0.0) + s.value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
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
        servers: list[Server] = []
        rows: list[dict] = []
        shadow_cpu = 0.0
        try:
            shadow = start(m, "shadow", None)
            servers.append(shadow)
            off = start(m, "mirror off", None)
            servers.append(off)
            on = start(m, "mirror 100 %", shadow.port)
            servers.append(on)
            tenth = start(m, "mirror 10 %", shadow.port, 0.1)
            servers.append(tenth)
            for b in (1, 64):
                trio = (off, on, tenth)
                oks = {s.name: check_once(s, bods[(b, "json")], check[:b]) for s in trio}
                for rep in range(args.reps):
                    for s in trio if rep % 2 == 0 else trio[::-1]:
                        c0 = proc_cpu(shadow.p.pid)
                        r = run_one(s, "lr", bods[(b, "json")], b, "json", 8, args.duration, lua, oks[s.name])
                        r["shadow_cpu_ms"] = (proc_cpu(shadow.p.pid) - c0) / max(r["requests"], 1) * 1e3
                        rows.append(r | {"rep": rep})
            time.sleep(2.5)  # let the last mirrored requests finish (timeout 2 s)
            ctr = counters(on.port)
        finally:
            for s in servers:
                s.stop()
        vers = versions()
        del vers["pyarrow"]
    text = render(rows, ctr, vers, args, time.monotonic() - t0, shadow_cpu)
    args.output.write_text(text)
    print(text)
    return 0


def render(
    rows: list[dict],
    ctr: dict[str, float],
    vers: dict[str, str],
    args: argparse.Namespace,
    elapsed: float,
    _shadow_cpu: float,
) -> str:
    out = [
        "# Shadow traffic (mirroring) benchmark",
        "",
        "Generated by `bench/bench_mirror.py`; numbers from one run on one machine, wrk and the shadow "
        "sharing the cores.",
        "",
        "- machine: 2 shared cores (noisy: other jobs run at the same time); load generator and shadow "
        "server on the same cores",
        f"- command: `.venv/bin/python bench/bench_mirror.py --duration {args.duration:g} "
        f"--reps {args.reps}`; whole run {elapsed:.0f} s",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        "- stable servers: one process each, 127.0.0.1, LR (20 features, 3 classes), OIP v2 JSON, wrk -t1 "
        "-c8, keep-alive, drift metrics on; `mirror 100 %` mirrors every request to a third server (the "
        "shadow) with the defaults (at most 32 open mirrored requests, 2 s timeout)",
        "- `mirror 10 %`: the same with `ONNXOPS_MIRROR_SAMPLE_RATE=0.1`",
        "- runs interleaved (off, 100 %, 10 %, then reversed, ...); the table gives the median of the runs "
        "and each run; the mirrored counters below are the 100 % server's",
        "",
        "| batch | server | median req/s | runs (req/s) | p50 ms | p99 ms | errors | CPU ms/req "
        "| shadow CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for b in (1, 64):
        for name in ("mirror off", "mirror 100 %", "mirror 10 %"):
            rs = [r for r in rows if r["batch"] == b and r["server"] == name]
            if not rs:
                continue
            med = statistics.median(r["rps"] for r in rs)
            summary[(b, name)] = (med, statistics.median(r["cpu_ms"] for r in rs))
            out.append(
                f"| {b} | {name} | {med:,.0f} | "
                + ", ".join(f"{r['rps']:,.0f}" for r in rs)
                + f" | {statistics.median(r['p50'] for r in rs):.2f}"
                f" | {statistics.median(r['p99'] for r in rs):.2f} | {sum(r['errors'] for r in rs)}"
                f" | {statistics.median(r['cpu_ms'] for r in rs):.3f}"
                f" | {statistics.median(r['shadow_cpu_ms'] for r in rs):.3f} |"
            )
    out += ["", "## Cost", ""]
    for b, name in ((1, "mirror 100 %"), (1, "mirror 10 %"), (64, "mirror 100 %"), (64, "mirror 10 %")):
        a, c = summary.get((b, "mirror off")), summary.get((b, name))
        if a and c:
            share = name.replace("mirror ", "mirroring ")
            out.append(
                f"- batch {b}: {share} costs {100 * (1 - c[0] / a[0]):.1f} % of the "
                f"throughput ({c[0]:,.0f} vs {a[0]:,.0f} req/s, medians; ratio {c[0] / a[0]:.2f}); "
                f"CPU per request {c[1]:.3f} vs {a[1]:.3f} ms ({c[1] / a[1]:.2f}x)"
            )
    sent = sum(v for k, v in ctr.items() if k.startswith("onnxops_shadow_requests_total["))
    out += [
        "",
        "## What was mirrored (counters of the mirroring server)",
        "",
        f"- sampled requests: {sent:,.0f}; "
        + ", ".join(
            f"{k.split('[')[1][:-1]} {v:,.0f}"
            for k, v in sorted(ctr.items())
            if k.startswith("onnxops_shadow_requests_total[")
        ),
        f"- rows compared / agreed: {ctr.get('onnxops_shadow_rows_compared_total', 0):,.0f} / "
        f"{ctr.get('onnxops_shadow_rows_agreed_total', 0):,.0f} (same model: all agree)",
        "",
        "Reading: the stable server answers first and mirrors afterwards, so a request never waits for the "
        "shadow; the cost is the CPU of sending the copy and reading the shadow's answer on the same event "
        "loop, plus, on this 2-core machine, the shadow's own CPU competing for the cores. When the shadow "
        "cannot keep up, the bound (32 open mirrored requests) drops copies (`dropped`) instead of queueing "
        "them: the mirrored share falls, the stable server's latency does not grow without bound.",
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
