"""How fast the local runtime turns objects into running processes: Job latency (create -> pod Running ->
Job Complete) for one Job at a time and for a burst of Jobs at once, and a Deployment's time to all
replicas Ready through a real HTTP readiness probe. The floor is the Python interpreter's own start-up,
measured directly with subprocess for comparison.

    python bench/bench_runner.py [--jobs 10] [--burst 20] [--replicas 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from onnxops.local.runner.client import DEPLOYMENTS, JOBS, PODS
from onnxops.local.runtime import LocalRuntime

IMAGE = "ghcr.io/onnxops/onnxops-trainer:0.1.0"
SERVER = (
    "import http.server, os\n"
    "http.server.ThreadingHTTPServer((os.environ['ONNXOPS_HOST'], 8080), "
    "http.server.SimpleHTTPRequestHandler).serve_forever()\n"
)


def job(name: str) -> dict[str, Any]:
    container = {"name": "c", "image": IMAGE, "command": ["python", "-c", "pass"]}
    return {
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }


async def wait_complete(rt: LocalRuntime, names: list[str], running_at: dict[str, float]) -> dict[str, float]:
    assert rt.client is not None
    done: dict[str, float] = {}
    while len(done) < len(names):
        jobs, _ = await rt.client.list(JOBS, "default")
        pods, _ = await rt.client.list(PODS, "default")
        now = time.perf_counter()
        for p in pods:
            jn = p["metadata"].get("labels", {}).get("job-name")
            phase = p.get("status", {}).get("phase")
            if jn in names and jn not in running_at and phase in ("Running", "Succeeded"):
                running_at[jn] = now
        for j in jobs:
            n = j["metadata"]["name"]
            if (
                n in names
                and n not in done
                and any(c["type"] == "Complete" for c in j.get("status", {}).get("conditions") or [])
            ):
                done[n] = now
        await asyncio.sleep(0.02)
    return done


async def bench(args: argparse.Namespace) -> None:
    t = time.perf_counter()
    for _ in range(5):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    interp = (time.perf_counter() - t) / 5
    with tempfile.TemporaryDirectory() as d:
        async with LocalRuntime(d) as rt:
            assert rt.client is not None
            seq_run, seq_done = [], []
            for i in range(args.jobs):
                running: dict[str, float] = {}
                t0 = time.perf_counter()
                await rt.client.create(JOBS, "default", job(f"seq-{i}"))
                done = await wait_complete(rt, [f"seq-{i}"], running)
                seq_run.append(running.get(f"seq-{i}", done[f"seq-{i}"]) - t0)
                seq_done.append(done[f"seq-{i}"] - t0)
            names = [f"burst-{i}" for i in range(args.burst)]
            t0 = time.perf_counter()
            await asyncio.gather(*(rt.client.create(JOBS, "default", job(n)) for n in names))
            done = await wait_complete(rt, names, {})
            burst = max(done.values()) - t0
            dep = {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": args.replicas,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "s",
                                    "image": IMAGE,
                                    "command": ["python", "-c", SERVER],
                                    "readinessProbe": {
                                        "httpGet": {"path": "/", "port": 8080},
                                        "periodSeconds": 1,
                                    },
                                }
                            ]
                        },
                    },
                },
            }
            t0 = time.perf_counter()
            await rt.client.create(DEPLOYMENTS, "default", dep)
            while True:
                d_ = await rt.client.get(DEPLOYMENTS, "default", "web")
                if (d_ or {}).get("status", {}).get("readyReplicas") == args.replicas:
                    break
                await asyncio.sleep(0.02)
            ready = time.perf_counter() - t0
    ms = 1000
    print(f"machine: {platform.machine()} {platform.python_version()}, cpus={os.cpu_count()}")
    print(f"python -c pass (subprocess, no runtime): {interp * ms:.0f} ms")
    print(
        f"job, one at a time (n={args.jobs}): create->pod Running median "
        f"{statistics.median(seq_run) * ms:.0f} ms, create->Complete median "
        f"{statistics.median(seq_done) * ms:.0f} ms, max {max(seq_done) * ms:.0f} ms"
    )
    print(
        f"burst of {args.burst} jobs created at once: all Complete after {burst:.2f} s "
        f"({args.burst / burst:.1f} jobs/s)"
    )
    print(
        f"deployment of {args.replicas} http servers, readiness probe period 1 s: "
        f"all Ready after {ready:.2f} s"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=10)
    p.add_argument("--burst", type=int, default=20)
    p.add_argument("--replicas", type=int, default=5)
    asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    main()
