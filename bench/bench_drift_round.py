"""One drift evaluation round of N InferenceServices against a REAL Prometheus: batched vs one query set per
service.

    python bench/bench_drift_round.py [--services 500]

A static exposition (N services of one namespace, each with its own model and one served version: 4
numeric features with 10 bins, 3 classes, requests, latency buckets) is scraped by a local `prometheus`.
Then the operator's drift path (``onnxops.drift.evaluate.evaluate``: live counts from PromQL, assembly,
scoring against the profile, the policy decision) runs for all N services at once, as the InferenceService
daemons do when their interval falls due — once with the per-service queries (8 per service), once
with the batcher (one query per family per 100 services of the namespace). Reported per round: the
evaluating process' CPU seconds (the operator's share; Prometheus' own CPU is not counted), wall time and
the number of queries. Both rounds run in the same process, interleaved, on the same Prometheus data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from onnxops.drift import names as N
from onnxops.drift.batch import PrometheusBatcher
from onnxops.drift.evaluate import Served, evaluate
from onnxops.drift.policy import PolicySpec, PriorState
from onnxops.profile import Profile

EDGES = [float(i) for i in range(9)]  # 10 bins
FEATURES = ["f0", "f1", "f2", "f3"]
NS = "bench"


def profile() -> Profile:
    return Profile.model_validate(
        {
            "formatVersion": 1,
            "task": "classification",
            "rows": 1000,
            "features": [
                {"name": f, "index": i, "kind": "numeric", "edges": EDGES, "counts": [100] * 10}
                for i, f in enumerate(FEATURES)
            ],
            "prediction": {"kind": "class", "classes": ["0", "1", "2"], "counts": [300, 300, 400]},
        }
    )


def exposition(n: int) -> str:
    lines = []
    for i in range(n):
        scope = f'model="m{i}",version="1",inferenceservice="svc{i}"'
        for f in FEATURES:
            cum = 0
            for le in [*map(str, EDGES), "+Inf"]:
                cum += 100 + (i % 7)
                lines.append(f'{N.FEATURE_VALUE}_bucket{{{scope},feature="{f}",le="{le}"}} {cum}')
        for k, v in (("0", 300), ("1", 300), ("2", 400)):
            lines.append(f'{N.PREDICTION_CLASS}{{{scope},class="{k}"}} {v}')
        lines.append(f"{N.ROWS}{{{scope}}} 1000")
        lines.append(f'{N.REQUESTS}{{{scope},protocol="v2",code="200"}} 1000')
        cum = 0
        for le in (*map(str, N.LATENCY_BUCKETS), "+Inf"):
            cum += 50
            lines.append(f'{N.REQUEST_DURATION}_bucket{{{scope},protocol="v2",le="{le}"}} {min(cum, 1000)}')
    return "\n".join(lines) + "\n"


class Counting:
    """A reverse proxy in front of Prometheus that counts the queries."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.queries = upstream, 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, req: web.Request) -> web.Response:
        import aiohttp

        self.queries += 1
        async with aiohttp.ClientSession() as s, s.get(self.upstream + req.rel_url.raw_path_qs) as up:
            return web.Response(status=up.status, body=await up.read(), content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


async def one_round(url: str, n: int, batcher: PrometheusBatcher | None) -> None:
    prof = profile()
    spec = PolicySpec(method="psi", threshold=0.2, min_samples=100)
    now = datetime.now(UTC)
    decisions = await asyncio.gather(
        *(
            evaluate(
                model=f"m{i}",
                served=[Served("1", "stable", prof)],
                spec=spec,
                window="10m",
                prior=PriorState(),
                now=now,
                prometheus_url=url,
                namespace=NS,
                service=f"svc{i}",
                batcher=batcher,
                timeout_s=60,
            )
            for i in range(n)
        )
    )
    bad = [d for d, _ in decisions if not d.scores]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n} evaluations were inconclusive: {bad[0].message}")


async def run(n: int, rounds: int) -> dict[str, Any]:
    text = exposition(n).encode()
    app = web.Application()
    app.router.add_get("/metrics", lambda _: web.Response(body=text, content_type="text/plain"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "prometheus.yml"
        cfg.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "5s"},
                    "scrape_configs": [
                        {
                            "job_name": "serving",
                            "static_configs": [
                                {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": NS}}
                            ],
                        }
                    ],
                }
            )
        )
        from onnxops.local.prometheus import free_port

        pport = free_port()
        proc = subprocess.Popen(
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp}/tsdb",
                f"--web.listen-address=127.0.0.1:{pport}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            purl = f"http://127.0.0.1:{pport}"
            deadline = time.monotonic() + 120
            while True:  # every service's series scraped
                try:
                    q = urllib.parse.urlencode({"query": f"count({N.ROWS})"})
                    with urllib.request.urlopen(f"{purl}/api/v1/query?{q}", timeout=5) as r:
                        res = json.loads(r.read())["data"]["result"]
                    if res and int(float(res[0]["value"][1])) == n:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("prometheus did not scrape the exposition")
                await asyncio.sleep(0.5)
            proxy = Counting(purl)
            await proxy.start()
            out: dict[str, list[tuple[float, float, int]]] = {"per service": [], "batched": []}
            for _ in range(rounds):
                for label in out:
                    batcher = PrometheusBatcher() if label == "batched" else None
                    q0, c0, w0 = proxy.queries, time.process_time(), time.monotonic()
                    await one_round(proxy.url, n, batcher)
                    out[label].append((time.process_time() - c0, time.monotonic() - w0, proxy.queries - q0))
            assert proxy.runner is not None
            await proxy.runner.cleanup()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    await runner.cleanup()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if shutil.which("prometheus") is None:
        print("prometheus is not installed", file=sys.stderr)
        return 2
    out = asyncio.run(run(args.services, args.rounds))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"{args.services} InferenceServices, one drift round each ({args.rounds} rounds, interleaved)")
    best = {}
    for label, rows in out.items():
        cpu = sorted(r[0] for r in rows)[len(rows) // 2]
        wall = sorted(r[1] for r in rows)[len(rows) // 2]
        best[label] = cpu
        print(f"  {label:12s} CPU {cpu:.2f} s/round (median), wall {wall:.2f} s, queries {rows[-1][2]}")
    print(f"  CPU ratio per service / batched: {best['per service'] / best['batched']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
