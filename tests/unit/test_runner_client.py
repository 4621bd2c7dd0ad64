"""The runner's REST client against a tiny fake API (aiohttp test server): paths, verbs, watch parsing."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from onnxops.local.runner.client import DEPLOYMENTS, NAMESPACES, PODS, Gone, ResourceClient


def test_resource_paths() -> None:
    assert PODS.path("ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert DEPLOYMENTS.path("ns") == "/apis/apps/v1/namespaces/ns/deployments"
    assert DEPLOYMENTS.path(None) == "/apis/apps/v1/deployments"  # all namespaces
    assert NAMESPACES.path("ignored", "default") == "/api/v1/namespaces/default"
    assert DEPLOYMENTS.api_version == "apps/v1" and PODS.api_version == "v1"


async def test_verbs_and_watch_with_large_objects() -> None:
    seen: list[tuple[str, str, str, Any]] = []
    big = "x" * 300_000  # larger than a stream reader's default line limit

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.text()
        seen.append(
            (
                request.method,
                request.path,
                request.headers.get("Content-Type", ""),
                json.loads(body) if body else None,
            )
        )
        if request.query.get("watch") == "true":
            resp = web.StreamResponse()
            await resp.prepare(request)
            for i, rv in enumerate(("5", "6")):
                ev = {
                    "type": "ADDED",
                    "object": {"metadata": {"name": f"p{i}", "resourceVersion": rv}, "data": big},
                }
                await resp.write(json.dumps(ev).encode() + b"\n")
            await resp.write(json.dumps({"type": "ERROR", "object": {"code": 410}}).encode() + b"\n")
            return resp
        if request.method == "GET" and request.path.endswith("/missing"):
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        if request.method == "GET" and request.path.endswith("/pods"):
            listing = {"metadata": {"resourceVersion": "4"}, "items": [{"metadata": {"name": "a"}}]}
            return web.json_response(listing)
        return web.json_response({"metadata": {"name": "x"}}, status=201 if request.method == "POST" else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        client = ResourceClient(str(server.make_url("")))
        try:
            assert await client.get(PODS, "ns", "missing") is None
            items, rv = await client.list(PODS, "ns")
            assert rv == "4" and items[0]["kind"] == "Pod" and items[0]["apiVersion"] == "v1"
            await client.create(PODS, "ns", {"metadata": {"name": "x"}})
            await client.patch(PODS, "ns", "x", {"status": {"phase": "Running"}}, status=True)
            await client.delete(PODS, "ns", "x", grace_period_seconds=0, uid="u1")
            got = []
            try:
                async for etype, obj in client.watch(PODS, "ns", "4"):
                    got.append((etype, obj["metadata"]["name"], len(obj["data"])))
            except Gone:
                got.append(("GONE", "", 0))
            assert got == [("ADDED", "p0", len(big)), ("ADDED", "p1", len(big)), ("GONE", "", 0)]
        finally:
            await client.close()
    post = next(s for s in seen if s[0] == "POST")
    assert post[3]["kind"] == "Pod" and post[3]["apiVersion"] == "v1"
    patch = next(s for s in seen if s[0] == "PATCH")
    assert patch[1] == "/api/v1/namespaces/ns/pods/x/status" and patch[2] == "application/merge-patch+json"
    delete = next(s for s in seen if s[0] == "DELETE")
    assert delete[3]["gracePeriodSeconds"] == 0 and delete[3]["preconditions"] == {"uid": "u1"}
