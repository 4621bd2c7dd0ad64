"""Where a gRPC ModelInfer call's server CPU goes: grpcio's asyncio server alone, then the onnxops server
with parts of its handler taken out (an ablation), interleaved; plus ONNX Runtime's run with warm and cold
caches.

    .venv/bin/python bench/bench_grpc_floor.py [--duration 3] [--reps 4]

Servers (each one process, uvloop, 127.0.0.1; the same h2load load as bench_grpc.py: one HTTP/2 connection,
8 concurrent calls, the lr model's batch-1 ModelInfer with raw_input_contents):

- ``echo``: a grpc.aio server whose generic handler returns fixed response bytes (no (de)serialisation)
- ``echo+protobuf``: the same, with ModelInferRequest parsed and a fixed ModelInferResponse serialised
- ``onnxops, fixed response``: the real server (HTTP beside gRPC, metrics, drift) whose ``ModelInfer``
  returns a fixed response: everything but the handler's work
- ``onnxops, ORT result cached``: the real server with ``session.run`` answered from a cache (no ONNX
  Runtime call; decode, drift, metrics, encode unchanged)
- ``onnxops``: the real server

The variants patch the server in their own process (``--serve``); nothing here changes the product. Server
CPU per call is the process's CPU time (every thread) over the calls answered. Writes the "gRPC floor"
section of bench/results/serving.md (between its markers). Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serving as bs
from _servers import free_port, serving_env, write_section
from bench_grpc import H2LOAD, METHOD, _h2load, request_bytes

RESULTS = Path(__file__).resolve().parent / "results" / "serving.md"
BEGIN, END = "<!-- grpc-floor:begin (bench/bench_grpc_floor.py) -->", "<!-- grpc-floor:end -->"
VARIANTS = {
    "echo": "grpc.aio echo (fixed bytes)",
    "echo-pb": "grpc.aio echo + protobuf parse/serialise",
    "fixed": "onnxops, ModelInfer returns a fixed response",
    "no-ort": "onnxops, ONNX Runtime result cached",
    "full": "onnxops",
}


def serve(variant: str) -> int:
    """Run one variant in this process (the benchmark starts itself with ``--serve``)."""
    from onnxops.serving.proto import grpc_predict_v2_pb2 as pb

    fixed = pb.ModelInferResponse(model_name="m", model_version="1", id="bench")
    if variant in ("echo", "echo-pb"):
        import uvloop

        async def main() -> None:
            server = grpc.aio.server()
            if variant == "echo":
                raw = fixed.SerializeToString()

                async def echo(request: bytes, context: Any) -> bytes:
                    return raw

                handler = grpc.unary_unary_rpc_method_handler(echo)
            else:

                async def echo_pb(request: Any, context: Any) -> Any:
                    return fixed

                handler = grpc.unary_unary_rpc_method_handler(
                    echo_pb,
                    request_deserializer=pb.ModelInferRequest.FromString,
                    response_serializer=pb.ModelInferResponse.SerializeToString,
                )
            generic = grpc.method_handlers_generic_handler(
                "inference.GRPCInferenceService", {"ModelInfer": handler}
            )
            server.add_generic_rpc_handlers((generic,))
            server.add_insecure_port(f"127.0.0.1:{os.environ['ONNXOPS_GRPC_PORT']}")
            await server.start()
            await server.wait_for_termination()

        uvloop.run(main())
        return 0
    from onnxops.serving import grpc_server, model
    from onnxops.serving.__main__ import main as server_main

    if variant == "fixed":

        async def model_infer(self: Any, request: Any, context: Any) -> Any:
            return fixed

        grpc_server.InferenceService.ModelInfer = model_infer  # type: ignore[method-assign]
    elif variant == "no-ort":
        run, cache = model.LoadedModel.run, {}

        def cached(self: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            key = tuple(a.shape for a in feeds.values())
            if key not in cache:
                cache[key] = run(self, feeds)
            return cache[key]

        model.LoadedModel.run = cached  # type: ignore[method-assign]
    return server_main([])


def wait_grpc(address: str, body: bytes, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with grpc.insecure_channel(address) as ch:
                ch.unary_unary(METHOD)(body, timeout=2)
                return
        except grpc.RpcError:
            time.sleep(0.3)
    raise RuntimeError(f"{address} not answering in {timeout}s")


def cold_cache_run(m: dict, iname: str) -> list[tuple[str, float]]:
    """ONNX Runtime's session.run (lr, batch 1, 1 thread) after touching 0, 2 and 64 MiB between calls."""
    so = bs.ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = bs.ort.InferenceSession(str(m["onnx"]), so)
    feeds = {iname: m["X"][:1].astype(np.float32)}
    out = []
    for label, mib, n in (("warm", 0, 3000), ("after touching 2 MiB", 2, 1000), ("after 64 MiB", 64, 200)):
        buf = np.zeros(mib * 1024 * 1024 // 8) if mib else None
        best = float("inf")
        for _ in range(3):
            total = 0.0
            for _ in range(n):
                if buf is not None:
                    buf += 1.0  # every byte written: the caches hold this, not the model
                t0 = time.perf_counter()
                sess.run(None, feeds)
                total += time.perf_counter() - t0
            best = min(best, total / n * 1e6)
        out.append((label, best))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per run (default 3)")
    ap.add_argument("--reps", type=int, default=4, help="interleaved runs per variant (default 4)")
    ap.add_argument("--serve", choices=list(VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve(args.serve)
    if not H2LOAD:
        print("h2load not found (Debian: nghttp2-client): nothing measured")
        return 0
    t_start = time.monotonic()
    rows: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        m = bs.build_models(work)["lr"]
        iname = bs.ort.InferenceSession(str(m["onnx"])).get_inputs()[0].name
        body = request_bytes(m["X"][:1], iname)
        try:
            for v in VARIANTS:
                gp = free_port()
                env = serving_env(m, free_port(), gp)
                procs[v] = (
                    subprocess.Popen(
                        [sys.executable, __file__, "--serve", v],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    ),
                    f"127.0.0.1:{gp}",
                )
            for _, address in procs.values():
                wait_grpc(address, body)
            for rep in range(args.reps):
                order = list(VARIANTS) if rep % 2 == 0 else list(VARIANTS)[::-1]
                for v in order:
                    p, address = procs[v]
                    cpu0 = bs.proc_cpu(p.pid)
                    ok, err, _, _ = _h2load(address, body, 8, args.duration, work)
                    cpu = bs.proc_cpu(p.pid) - cpu0
                    rows[v].append((ok / args.duration, cpu / max(ok, 1) * 1e6))
                    rps, us = rows[v][-1]
                    print(
                        f"{VARIANTS[v]:48} {rps:7.0f} req/s {us:5.0f} us/call err {err}",
                        flush=True,
                    )
        finally:
            for p, _ in procs.values():
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        cold = cold_cache_run(m, iname)
    elapsed = time.monotonic() - t_start
    section = render(rows, cold, args, elapsed)
    write_section(args.output, BEGIN, END, section)
    print(f"wrote {args.output} in {elapsed:.0f}s")
    return 0


def render(
    rows: dict[str, list[tuple[float, float]]],
    cold: list[tuple[str, float]],
    args: argparse.Namespace,
    elapsed: float,
) -> str:
    cmd = f".venv/bin/python bench/bench_grpc_floor.py --duration {args.duration:g} --reps {args.reps}"
    lines = [
        BEGIN,
        "## gRPC floor: where a ModelInfer call's server CPU goes (ablation, interleaved)",
        "",
        f"- machine: {os.cpu_count()} shared cores; h2load on the same cores, one HTTP/2 connection, "
        "8 concurrent calls, lr batch 1 with raw_input_contents; load average at the end "
        f"{os.getloadavg()[0]:.1f}",
        f"- command: `{cmd}`; {args.duration:g} s per run, whole run {elapsed:.0f} s",
        f"- versions: python {sys.version.split()[0]}, grpcio {grpc.__version__}, onnxruntime "
        f"{bs.ort.__version__}",
        "",
        "| server | req/s (median) | server CPU µs/call (median) | every run (µs/call) |",
        "|---|---|---|---|",
    ]
    for v, label in VARIANTS.items():
        r = rows[v]
        if not r:
            continue
        rps, us = statistics.median(x[0] for x in r), statistics.median(x[1] for x in r)
        lines.append(f"| {label} | {rps:,.0f} | {us:.0f} | " + ", ".join(f"{x[1]:.0f}" for x in r) + " |")
    lines += ["", "ONNX Runtime `session.run` (lr, batch 1, 1 thread) in-process, best of 3:", ""]
    lines += [f"- {label}: {us:.1f} µs" for label, us in cold]
    lines.append(END)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
