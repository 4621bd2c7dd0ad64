"""gRPC benchmark: onnxops' Open Inference Protocol gRPC service against KServe's Python server's gRPC.

    .venv/bin/python bench/bench_grpc.py [--duration 3] [--reps 3] [--conc 8] [--models lr]
        [--kserve-python <kserve-venv>/bin/python] [--baseline <checkout>/operator]

Same model (bench_serving's ``lr``: StandardScaler + LogisticRegression, 20 features, 3 classes, ONNX
without ZipMap; ``gb`` optional), same machine, same load generator and concurrency: a small asyncio
client (grpc.aio, one channel, ``--conc`` coroutines each sending the next ``ModelInfer`` as soon as the
previous answers) that sends one pre-serialised request with ``raw_input_contents`` (what tritonclient
sends) and does not parse the answers (one is parsed and checked against scikit-learn before the run).
Each server is one process on 127.0.0.1 with ONNX Runtime on 1 thread; KServe (installed in its own
virtualenv outside the repository: ``python3.11 -m venv <kserve-venv> && <kserve-venv>/bin/pip install
kserve onnxruntime``) runs bench_serving's KServe model class with its gRPC server on. Runs are
interleaved (ours, KServe, KServe, ours, ...) so that the machine's slow drifts hit both; the table gives
every run, the summary the medians. ``--baseline`` adds a third server, "onnxops gRPC (before)": the
same server started with ``PYTHONPATH`` set to another checkout's ``operator`` folder (the previous
commit), in the same interleaving, so that a change is measured against what it changes. The HTTP path
(bench_serving's wrk runs) is in the sections above.

Writes the "gRPC" section of bench/results/serving.md (between its markers; the rest of the file is
bench_serving.py's). Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serving as bs
from _servers import Server, free_port, start_onnxops, write_section
from onnxops.serving.proto import grpc_predict_v2_pb2 as pb

RESULTS = Path(__file__).resolve().parent / "results" / "serving.md"
BEGIN, END = "<!-- grpc:begin (bench/bench_grpc.py) -->", "<!-- grpc:end -->"
METHOD = "/inference.GRPCInferenceService/ModelInfer"
H2LOAD = shutil.which("h2load")  # nghttp2's load generator (Debian: nghttp2-client); else the asyncio client
KSERVE_GRPC_APP = bs.KSERVE_APP.replace("enable_grpc=False", "enable_grpc=True, grpc_port=int(sys.argv[3])")
assert KSERVE_GRPC_APP != bs.KSERVE_APP


OURS, BEFORE = "onnxops gRPC", "onnxops gRPC (before)"


def start_ours(m: dict, grpc_port: int, pythonpath: str | None = None) -> Server:
    if pythonpath is None:
        return start_onnxops(m, OURS, grpc_port=grpc_port)
    return start_onnxops(m, BEFORE, grpc_port=grpc_port, extra={"PYTHONPATH": pythonpath})


def start_kserve(m: dict, work: Path, python: str, grpc_port: int) -> Server:
    port = free_port()
    (work / "kserve_grpc_app.py").write_text(KSERVE_GRPC_APP)
    cmd = [python, str(work / "kserve_grpc_app.py"), str(m["onnx"]), str(port), str(grpc_port)]
    return Server("KServe gRPC", cmd, dict(os.environ), port, "/v2/health/ready", "/v2/models/m/infer")


def request_bytes(x: np.ndarray, iname: str) -> bytes:
    req = pb.ModelInferRequest(model_name="m", id="bench")
    req.inputs.add(name=iname, datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(np.ascontiguousarray(x, dtype="<f4").tobytes())
    return req.SerializeToString()


def labels(raw: bytes, rows: int) -> np.ndarray:
    """The label output of a ModelInferResponse, raw or typed."""
    resp = pb.ModelInferResponse.FromString(raw)
    i = next(i for i, o in enumerate(resp.outputs) if o.name == "label")
    if resp.raw_output_contents:
        return np.frombuffer(resp.raw_output_contents[i], dtype="<i8")
    return np.array(resp.outputs[i].contents.int64_contents, dtype=np.int64)[:rows]


async def _load(address: str, body: bytes, conc: int, duration: float) -> tuple[int, int, list[float]]:
    async with grpc.aio.insecure_channel(address) as ch:
        call = ch.unary_unary(METHOD)  # bytes in, bytes out: the client does not (de)serialise
        await call(body, timeout=10)
        ok = err = 0
        lat: list[float] = []
        stop = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal ok, err
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    await call(body, timeout=10)
                    ok += 1
                except grpc.aio.AioRpcError:
                    err += 1
                lat.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(conc)))
    return ok, err, lat


def _h2load(
    address: str, body: bytes, conc: int, duration: float, work: Path
) -> tuple[int, int, float, float]:
    """(ok, errors, mean latency ms, wall seconds) of one h2load run: ``conc`` streams on one connection,
    each a gRPC unary call (5-byte length prefix + message, ``te: trailers``)."""
    path = work / f"grpc-{hashlib.sha256(body).hexdigest()[:12]}.bin"
    path.write_bytes(b"\0" + struct.pack(">I", len(body)) + body)
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            H2LOAD,
            "-c1",
            f"-m{conc}",
            "-D",
            f"{duration:g}",
            "-d",
            str(path),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            f"http://{address}{METHOD}",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout
    wall = time.perf_counter() - t0
    done = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    ok, err = (int(done.group(1)), int(done.group(2)) + int(done.group(3))) if done else (0, 0)
    ms = float(mean.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[mean.group(2)] if mean else float("nan")
    return ok, err, ms, wall


def run_one(srv: Server, address: str, body: bytes, conc: int, duration: float, work: Path) -> dict:
    cpu0 = bs.proc_cpu(srv.p.pid)
    t0 = time.perf_counter()
    if H2LOAD:
        ok, err, mean_ms, _ = _h2load(address, body, conc, duration, work)
        p50 = p99 = float("nan")
    else:
        ok, err, lat = asyncio.run(_load(address, body, conc, duration))
        lat.sort()
        mean_ms = statistics.fmean(lat) * 1e3 if lat else float("nan")
        p50 = lat[len(lat) // 2] * 1e3 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3 if lat else float("nan")
    wall = time.perf_counter() - t0
    cpu = bs.proc_cpu(srv.p.pid) - cpu0
    return {
        "rps": ok / duration,
        "errors": err,
        "mean": mean_ms,
        "p50": p50,
        "p99": p99,
        "cpu_ms": cpu / max(ok, 1) * 1e3,
        "cpu_util": cpu / wall,
    }


async def _once(address: str, body: bytes) -> bytes:
    async with grpc.aio.insecure_channel(address) as ch:
        return bytes(await ch.unary_unary(METHOD)(body, timeout=10))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per run (default 3)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved runs per server and cell (default 3)")
    ap.add_argument("--conc", type=int, default=8, help="concurrent calls in flight (default 8)")
    ap.add_argument("--models", default="lr", help="models, comma-separated (default lr)")
    ap.add_argument("--kserve-python", help="python of a virtualenv with kserve + onnxruntime")
    ap.add_argument(
        "--baseline",
        help="an `operator` folder of another checkout: its server runs too, as 'onnxops gRPC (before)'",
    )
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    t_start = time.monotonic()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = {k: v for k, v in bs.build_models(work).items() if k in args.models.split(",")}
        for kind, m in models.items():
            iname = bs.ort.InferenceSession(str(m["onnx"])).get_inputs()[0].name
            servers: list[tuple[Server, str]] = []
            try:
                gp = free_port()
                servers.append((start_ours(m, gp), f"127.0.0.1:{gp}"))
                if args.kserve_python:
                    gp = free_port()
                    servers.append((start_kserve(m, work, args.kserve_python, gp), f"127.0.0.1:{gp}"))
                if args.baseline:
                    gp = free_port()
                    servers.append((start_ours(m, gp, args.baseline), f"127.0.0.1:{gp}"))
                for b in (1, 64):
                    x = m["X"][:b]
                    body = request_bytes(x, iname)
                    want = m["est"].predict(x)
                    ok = {
                        s.name: bool(np.array_equal(labels(asyncio.run(_once(a, body)), b), want))
                        for s, a in servers
                    }
                    for rep in range(args.reps):
                        order = servers if rep % 2 == 0 else servers[::-1]
                        for s, a in order:
                            r = run_one(s, a, body, args.conc, args.duration, work)
                            r.update(server=s.name, model=kind, batch=b, conc=args.conc, correct=ok[s.name])
                            rows.append(r)
                            print(
                                f"{s.name:14} {kind} b{b:<2} c{args.conc} {r['rps']:8.0f} req/s "
                                f"mean {r['mean']:6.2f} ms err {r['errors']} "
                                f"cpu {r['cpu_ms']:.3f} ms/req ok={ok[s.name]}",
                                flush=True,
                            )
            finally:
                for s, _ in servers:
                    s.stop()
        vers = versions(args.kserve_python)
    elapsed = time.monotonic() - t_start
    section = render(rows, vers, args, elapsed)
    write_section(args.output, BEGIN, END, section)
    print(f"wrote {args.output} in {elapsed:.0f}s")
    return 0


def versions(kserve_py: str | None) -> dict[str, str]:
    from importlib.metadata import version

    out = {
        "python": sys.version.split()[0],
        "onnxruntime": version("onnxruntime"),
        "grpcio": grpc.__version__,
    }
    if kserve_py:
        code = "from importlib.metadata import version as v; print(v('kserve'), v('grpcio'))"
        kv = subprocess.run(
            [kserve_py, "-c", code], capture_output=True, text=True, timeout=60
        ).stdout.split()
        if len(kv) == 2:
            out["kserve"] = f"{kv[0]} (its grpcio {kv[1]})"
    if H2LOAD:
        out["h2load"] = subprocess.run([H2LOAD, "--version"], capture_output=True, text=True).stdout.strip()
    return out


def render(rows: list[dict], vers: dict[str, str], args: argparse.Namespace, elapsed: float) -> str:
    cmd = f".venv/bin/python bench/bench_grpc.py --duration {args.duration:g} --reps {args.reps}"
    if args.conc != 8:
        cmd += f" --conc {args.conc}"
    if args.models != "lr":
        cmd += f" --models {args.models}"
    if args.kserve_python:
        cmd += " --kserve-python <kserve-venv>/bin/python"
    if args.baseline:
        cmd += " --baseline <previous-checkout>/operator"
    lines = [
        BEGIN,
        "## gRPC: onnxops vs KServe's Python server (Open Inference Protocol `ModelInfer`, interleaved)",
        "",
        f"- machine: {os.cpu_count()} shared cores; load generator on the same cores: "
        + (
            f"h2load (C, nghttp2), one HTTP/2 connection with {args.conc} concurrent gRPC calls"
            if H2LOAD
            else f"asyncio grpc.aio client, one channel, {args.conc} concurrent calls"
        )
        + "; the same pre-serialised ModelInfer with raw_input_contents every call; every answer is HTTP 200"
        " (one answer per server and batch parsed and checked against scikit-learn before the runs)",
        f"- command: `{cmd}`; {args.duration:g} s per run, whole run {elapsed:.0f} s",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        "",
        "| server | model | batch | conc | req/s | rows/s | mean ms | p99 ms | errors | server CPU ms/req "
        "| server CPU (cores) | correct |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['server']} | {r['model']} | {r['batch']} | {r['conc']} | {r['rps']:,.0f} | "
            f"{r['rps'] * r['batch']:,.0f} | {r['mean']:.2f} | {r['p99']:.2f} | {r['errors']} | "
            f"{r['cpu_ms']:.3f} | {r['cpu_util']:.2f} | {'yes' if r['correct'] else 'NO'} |"
        )
    lines += ["", "Summary (medians of the interleaved runs):", ""]
    for model in sorted({r["model"] for r in rows}):
        for b in (1, 64):
            cell = [r for r in rows if r["model"] == model and r["batch"] == b]
            ours = [r for r in cell if r["server"] == OURS]
            peer = [r for r in cell if r["server"] == "KServe gRPC"]
            before = [r for r in cell if r["server"] == BEFORE]
            if not ours:
                continue
            o = statistics.median(r["rps"] for r in ours)
            oc = statistics.median(r["cpu_ms"] for r in ours)
            if before:
                bo = statistics.median(r["rps"] for r in before)
                bc = statistics.median(r["cpu_ms"] for r in before)
                lines.append(
                    f"- {model} batch {b} c{args.conc}: onnxops {o:,.0f} vs onnxops before {bo:,.0f} req/s = "
                    f"{o / bo:.2f}x; server CPU {oc * 1e3:.0f} vs {bc * 1e3:.0f} µs/request"
                )
            if not peer:
                lines.append(f"- {model} batch {b} c{args.conc}: onnxops {o:,.0f} req/s; KServe not measured")
                continue
            p = statistics.median(r["rps"] for r in peer)
            pc = statistics.median(r["cpu_ms"] for r in peer)
            goal = ""
            if b == 1:
                goal = f" (goal >= 3x) — **{'met' if o >= 3 * p else 'not met'}**"
            lines.append(
                f"- {model} batch {b} c{args.conc}: onnxops {o:,.0f} vs KServe {p:,.0f} req/s = "
                f"**{o / p:.2f}x**{goal}; server CPU {oc * 1e3:.0f} vs {pc * 1e3:.0f} µs/request"
            )
    lines.append(END)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
