"""How many objects per second the local API emulator serves: N creates over HTTP (ConfigMaps and a
custom resource that goes through admission), with one watcher that must receive every ADDED event.

    python bench/bench_apiserver.py [--objects 2000] [--concurrency 1 16] [--kind configmaps widgets]

By default the server runs in its own process (as kubectl and the operator see it); `--in-thread` runs
it in a background thread of this process instead (as the sync tests use it), sharing the GIL with the
client. The client is aiohttp. Reported: create throughput (all responses received) and end-to-end
throughput (until the watcher has seen the last object), plus the watch lag at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp

from onnxops.local.apiserver import ApiServerThread, Cluster

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.bench.dev"},
    "spec": {
        "group": "bench.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "max": {"type": "integer", "default": 10},
                                },
                                "x-kubernetes-validations": [{"rule": "self.size <= self.max"}],
                            }
                        },
                    }
                },
            }
        ],
    },
}
PATHS = {
    "configmaps": "/api/v1/namespaces/{ns}/configmaps",
    "widgets": "/apis/bench.dev/v1/namespaces/{ns}/widgets",
}


SERVER = """
import asyncio, sys
from onnxops.local.apiserver import ApiServer

async def main():
    server = ApiServer(history_size=int(sys.argv[1]))
    print(await server.start(), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@contextlib.contextmanager
def server_process(history: int) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(history)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def server_thread(history: int) -> Iterator[str]:
    with ApiServerThread(history_size=history) as server:
        yield server.url


async def post_crd(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        crds = url + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        async with session.post(crds, json=CRD) as resp:
            assert resp.status == 201, await resp.text()


def body(kind: str, n: int) -> dict[str, Any]:
    if kind == "configmaps":
        return {"metadata": {"name": f"cm-{n}", "labels": {"bench": "1"}}, "data": {"n": str(n)}}
    return {
        "apiVersion": "bench.dev/v1",
        "kind": "Widget",
        "metadata": {"name": f"w-{n}"},
        "spec": {"size": 1 + n % 9},
    }


async def run_once(url: str, kind: str, namespace: str, objects: int, concurrency: int) -> dict[str, float]:
    path = url + PATHS[kind].format(ns=namespace)
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/api/v1/namespaces", json={"metadata": {"name": namespace}}) as r:
            assert r.status == 201, await r.text()
        seen = 0
        done = asyncio.Event()
        ready = asyncio.Event()

        async def watcher() -> None:
            nonlocal seen
            async with session.get(path, params={"watch": "true", "timeoutSeconds": "600"}) as resp:
                ready.set()
                async for line in resp.content:
                    if json.loads(line)["type"] == "ADDED":
                        seen += 1
                        if seen == objects:
                            done.set()
                            return

        watch_task = asyncio.create_task(watcher())
        await ready.wait()
        queue = iter(range(objects))

        async def creator() -> None:
            for n in queue:
                async with session.post(path, json=body(kind, n)) as resp:
                    assert resp.status == 201, await resp.text()

        start = time.perf_counter()
        await asyncio.gather(*(creator() for _ in range(concurrency)))
        created = time.perf_counter()
        seen_at_created = seen
        await asyncio.wait_for(done.wait(), timeout=300)
        delivered = time.perf_counter()
        await watch_task
    return {
        "create_per_s": objects / (created - start),
        "end_to_end_per_s": objects / (delivered - start),
        "lag_ms": (delivered - created) * 1000,
        "seen_when_created": seen_at_created,
    }


def bench_gc(objects: int) -> str:
    """In-process (no HTTP): create `objects` pods owned by one ConfigMap, then delete the owner."""
    cluster = Cluster()
    cm, pods = cluster.registry.get("", "v1", "configmaps"), cluster.registry.get("", "v1", "pods")
    assert cm is not None and pods is not None
    owner = cluster.create(cm, "default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    start = time.perf_counter()
    for n in range(objects):
        cluster.create(
            pods,
            "default",
            {
                "metadata": {"name": f"p{n}", "ownerReferences": [ref]},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        )
    created = time.perf_counter()
    cluster.delete(cm, "default", "owner", {})
    collected = time.perf_counter()
    assert cluster.list(pods, "default")[0] == []
    return (
        f"in-process, no HTTP: {objects / (created - start):.0f} creates/s; deleting the owner "
        f"garbage-collected {objects} pods in {(collected - created) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--kind", nargs="+", default=["configmaps", "widgets"], choices=sorted(PATHS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--in-thread", action="store_true", help="run the server in a thread of this process")
    args = parser.parse_args()
    print(f"# {bench_gc(args.objects)}")
    print(f"# python {platform.python_version()}, {platform.machine()}, objects={args.objects}")
    print(f"# server {'in a thread of the client process' if args.in_thread else 'in its own process'}")
    print("| kind | concurrency | create objects/s | create+watch objects/s | watch lag after last create |")
    print("|---|---|---|---|---|")
    start_server = server_thread if args.in_thread else server_process
    with start_server(max(10_000, 4 * args.objects)) as url:
        asyncio.run(post_crd(url))
        run = 0
        for kind in args.kind:
            for conc in args.concurrency:
                results = []
                for _ in range(args.repeat):
                    run += 1
                    results.append(asyncio.run(run_once(url, kind, f"bench-{run}", args.objects, conc)))
                best = max(results, key=lambda r: r["end_to_end_per_s"])
                med = sorted(r["end_to_end_per_s"] for r in results)[len(results) // 2]
                e2e = f"{med:.0f} (best {best['end_to_end_per_s']:.0f})"
                print(f"| {kind} | {conc} | {best['create_per_s']:.0f} | {e2e} | {best['lag_ms']:.1f} ms |")


if __name__ == "__main__":
    main()
