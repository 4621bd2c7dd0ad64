"""Operator at scale: N InferenceServices and N TrainingJobs created at once against the local API emulator
(no pod runner: no pod ever starts, as on a cluster with no capacity left).

    python bench/bench_operator_scale.py [--objects 200] [--quiet 20]

The operator runs as its own process (`python -m onnxops operator`) behind a counting reverse proxy, so
every request it makes — kopf's watches and finalizers and our reconcilers' reads and writes — is counted
by verb. Each model gets one ModelVersion already verified (status Ready), so an InferenceService
converges to: Deployment + Service created, status written (stableVersion, conditions). A TrainingJob
converges to: Job created, status written (phase Pending). Reported: time from the first create until every
object has its status written, requests per object, the operator's CPU seconds and peak RSS, and the
writes during a quiet period afterwards (a converged object must cost none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from onnxops.kube.client import KubeClient
from onnxops.local.apiserver import ApiServer, write_kubeconfig
from onnxops.local.runtime import load_crds, project_crds_dir

API = "onnxops.dev/v1alpha1"
SHA = "a" * 64


class CountingProxy:
    """Forwards every request to the API server and counts it (watches are streamed through)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.counts: Counter[str] = Counter()
        self.by_resource: Counter[str] = Counter()  # "VERB resource[/subresource]"
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def handle(self, req: web.Request) -> web.StreamResponse:
        watch = req.query.get("watch") in ("true", "1")
        verb = "WATCH" if watch else req.method
        self.counts[verb] += 1
        self.by_resource[f"{verb} {resource_of(req.path)}"] += 1
        assert self._session is not None
        body = await req.read()
        headers = {k: v for k, v in req.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(
            req.method, self.upstream + req.rel_url.raw_path_qs, data=body or None, headers=headers
        ) as up:
            resp = web.StreamResponse(
                status=up.status,
                headers={k: v for k, v in up.headers.items() if k.lower() in ("content-type",)},
            )
            await resp.prepare(req)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    @property
    def writes(self) -> int:
        return sum(self.counts[v] for v in ("POST", "PUT", "PATCH", "DELETE"))


def resource_of(path: str) -> str:
    """``/apis/g/v/namespaces/ns/plural/name/status`` -> ``plural/status`` (the name dropped)."""
    parts = [p for p in path.split("/") if p]
    parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    if not parts:
        return path
    return parts[0] + (f"/{parts[2]}" if len(parts) > 2 else "")


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds user+system, peak RSS MiB) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return cpu, hwm


def objects(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    mvs, isvcs, tjs = [], [], []
    for i in range(n):
        model = f"m{i}"
        mvs.append(
            {
                "apiVersion": API,
                "kind": "ModelVersion",
                "metadata": {"name": f"{model}-v1", "namespace": "default"},
                "spec": {
                    "model": model,
                    "version": 1,
                    "artifact": {"uri": f"file:///models/{model}/model.onnx", "sha256": SHA},
                },
            }
        )
        isvcs.append(
            {
                "apiVersion": API,
                "kind": "InferenceService",
                "metadata": {"name": f"svc{i}", "namespace": "default"},
                "spec": {"model": model, "version": "latest", "replicas": 2},
            }
        )
        tjs.append(
            {
                "apiVersion": API,
                "kind": "TrainingJob",
                "metadata": {"name": f"train{i}", "namespace": "default"},
                "spec": {
                    "model": f"t{i}",
                    "dataset": {"uri": "sklearn://iris"},
                    "estimator": {"className": "LogisticRegression"},
                },
            }
        )
    return mvs, isvcs, tjs


async def run(n: int, quiet: float) -> dict[str, Any]:
    crds = project_crds_dir()
    assert crds is not None, "run from a source checkout (crds/ is needed)"
    async with ApiServer(crds=load_crds(crds)) as api:
        proxy = CountingProxy(api.url)
        await proxy.start()
        client = KubeClient(api.url, timeout=600)  # the emulator shares this process: slow at 2,000+
        mvs, isvcs, tjs = objects(n)
        # the ModelVersions exist and are verified before the operator starts
        await _bounded(client.create(m) for m in mvs)
        await asyncio.gather(
            *(
                client.patch_status(
                    API,
                    "ModelVersion",
                    "default",
                    m["metadata"]["name"],
                    {"phase": "Ready", "observedGeneration": 1},
                )
                for m in mvs
            )
        )
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", proxy.url)
            env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
            # BENCH_OPERATOR_PYTHONPATH=<dir>: run another checkout's operator (a baseline) with this bench
            if os.environ.get("BENCH_OPERATOR_PYTHONPATH"):
                env["PYTHONPATH"] = os.environ["BENCH_OPERATOR_PYTHONPATH"]
            # never a pipe nobody reads: a full pipe would block the operator's logging
            log = open(os.environ.get("BENCH_OPERATOR_LOG", os.devnull), "wb")  # noqa: SIM115
            # BENCH_OPERATOR_PROFILE=<file>: run the operator under cProfile (written when it stops)
            prof = os.environ.get("BENCH_OPERATOR_PROFILE")
            profiler = ["-m", "cProfile", "-o", prof] if prof else []
            cmd = [sys.executable, *profiler, "-m", "onnxops", "operator"]
            op = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                # wait until the operator has settled on the pre-existing ModelVersions
                await _settle(proxy, 2.0, 120)
                base_counts = Counter(proxy.counts)
                base_by_resource = Counter(proxy.by_resource)
                cpu0, _ = proc_usage(op.pid)
                own0 = time.process_time()  # this process: the emulator, the proxy, the creates
                t0 = time.monotonic()
                await _bounded(client.create(o) for o in isvcs + tjs)
                t_created = time.monotonic() - t0
                converged_at = await _converged(
                    api, isvcs, tjs, t0, timeout=float(os.environ.get("BENCH_TIMEOUT", "600"))
                )
                cpu1, rss = proc_usage(op.pid)
                own1 = time.process_time()
                during = proxy.counts - base_counts
                during_by_resource = proxy.by_resource - base_by_resource
                await _settle(proxy, 3.0, 120)
                after_settle = Counter(proxy.counts)
                w0 = proxy.writes
                await asyncio.sleep(quiet)
                quiet_counts = Counter(proxy.counts) - after_settle
                quiet_writes = proxy.writes - w0
                cpu2, rss2 = proc_usage(op.pid)
            finally:
                op.terminate()
                try:
                    op.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    op.kill()
                    op.wait()
                log.close()
        await client.close()
        await proxy.stop()
    total = sum(during.values())
    return {
        "n": n,
        "create_s": t_created,
        "converge_s": converged_at,
        "requests": dict(during),
        "requests_by_resource": dict(during_by_resource.most_common()),
        "requests_per_object": total / (2 * n),
        "writes_per_object": sum(during[v] for v in ("POST", "PUT", "PATCH", "DELETE")) / (2 * n),
        "cpu_s": cpu1 - cpu0,
        "emulator_cpu_s": own1 - own0,
        "rss_mib": max(rss, rss2),
        "quiet_s": quiet,
        "quiet_writes": quiet_writes,
        "quiet_requests": dict(quiet_counts),
        "quiet_cpu_s": cpu2 - cpu1,
    }


async def _bounded(coros: Any, limit: int = 64) -> None:
    """Run the requests with at most ``limit`` in flight (as a client such as kubectl apply would)."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def _settle(proxy: CountingProxy, still: float, timeout: float) -> None:
    """Wait until the operator made no non-watch request for `still` seconds."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = sum(v for k, v in proxy.counts.items() if k != "WATCH")
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= still and now > 0:
            return
        await asyncio.sleep(0.2)


async def _converged(
    api: ApiServer, isvcs: list[dict[str, Any]], tjs: list[dict[str, Any]], t0: float, timeout: float
) -> float:
    """Polls the emulator's store in this process (no HTTP, no JSON): a LIST of 4 x N objects every
    0.25 s would cost this process (and so the 2 cores the operator runs on) seconds per poll at 2,000."""
    store = api.cluster.store
    group = API.split("/")[0]
    deadline = time.monotonic() + timeout
    ok_i = ok_t = n_deps = n_jobs = 0
    while time.monotonic() < deadline:
        ok_i = sum(
            1
            for o in store.items((group, "inferenceservices"), "default")
            if (o.get("status") or {}).get("stableVersion") == 1
        )
        ok_t = sum(
            1
            for o in store.items((group, "trainingjobs"), "default")
            if (o.get("status") or {}).get("phase") == "Pending"
        )
        n_deps = len(store.items(("apps", "deployments"), "default"))
        n_jobs = len(store.items(("batch", "jobs"), "default"))
        if ok_i == len(isvcs) and ok_t == len(tjs) and n_deps >= len(isvcs) and n_jobs >= len(tjs):
            return time.monotonic() - t0
        await asyncio.sleep(0.25)
    raise TimeoutError(
        f"the operator did not converge in time: {ok_i}/{len(isvcs)} InferenceServices, "
        f"{ok_t}/{len(tjs)} TrainingJobs, {n_deps} Deployments, {n_jobs} Jobs"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=200, help="InferenceServices (and as many TrainingJobs)")
    p.add_argument("--quiet", type=float, default=20.0, help="seconds of quiet after convergence")
    args = p.parse_args()
    r = asyncio.run(run(args.objects, args.quiet))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"{r['n']} InferenceServices + {r['n']} TrainingJobs (+{r['n']} verified ModelVersions beforehand)")
    print(f"  created all in          {r['create_s']:.2f} s")
    print(f"  converged (status set)  {r['converge_s']:.2f} s after the first create")
    print(f"  operator requests       {sum(r['requests'].values())} = {r['requests']}")
    print(f"  by resource             {r['requests_by_resource']}")
    print(
        f"  per object              {r['requests_per_object']:.1f} requests, "
        f"{r['writes_per_object']:.1f} writes"
    )
    print(f"  operator CPU            {r['cpu_s']:.1f} s until converged; peak RSS {r['rss_mib']:.0f} MiB")
    print(f"  emulator+proxy CPU      {r['emulator_cpu_s']:.1f} s until converged (this process, same cores)")
    print(
        f"  quiet {r['quiet_s']:.0f} s afterwards    writes {r['quiet_writes']}, "
        f"requests {r['quiet_requests']}, "
        f"CPU {r['quiet_cpu_s']:.2f} s"
    )
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
