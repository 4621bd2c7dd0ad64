"""A user-controlled Prometheus URL: replies never echoed, their size capped, redirects not followed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from onnxops.drift import prometheus
from onnxops.drift.live import Inconclusive
from onnxops.drift.prometheus import fetch_prometheus
from onnxops.profile import Profile

PROFILE = Profile.model_validate(
    {
        "formatVersion": 1,
        "task": "classification",
        "rows": 4,
        "features": [{"name": "x", "index": 0, "kind": "numeric", "edges": [1.0], "counts": [2, 2]}],
        "prediction": {"kind": "class", "classes": ["0", "1"], "counts": [2, 2]},
    }
)
SECRET = "kube-secret-token-0123456789"
EMPTY_VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/api/v1/query", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def servers() -> AsyncIterator[list[web.AppRunner]]:
    runners: list[web.AppRunner] = []
    yield runners
    for r in runners:
        await r.cleanup()


async def run(servers: list[web.AppRunner], handler: Handler) -> Inconclusive:
    runner, url = await serve(handler)
    servers.append(runner)
    res = await fetch_prometheus(url, "m", {"1": PROFILE}, "5m", timeout_s=5)
    assert isinstance(res, Inconclusive), res
    assert res.reason == "PrometheusUnavailable"
    return res


async def test_a_valid_empty_answer_is_not_inconclusive(servers: list[web.AppRunner]) -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response(EMPTY_VECTOR)

    runner, url = await serve(ok)
    servers.append(runner)
    res = await fetch_prometheus(url, "m", {"1": PROFILE}, "5m", timeout_s=5)
    assert not isinstance(res, Inconclusive)


@pytest.mark.parametrize("status", [400, 401, 404, 500, 503])
async def test_error_bodies_are_never_echoed(servers: list[web.AppRunner], status: int) -> None:
    async def handle(_: web.Request) -> web.Response:
        return web.Response(status=status, text=f"token={SECRET}")

    res = await run(servers, handle)
    assert SECRET not in res.message
    assert f"HTTP {status}" in res.message


async def test_error_field_of_a_json_answer_is_not_echoed(servers: list[web.AppRunner]) -> None:
    async def handle(_: web.Request) -> web.Response:
        return web.json_response({"status": "error", "errorType": SECRET, "error": SECRET})

    res = await run(servers, handle)
    assert SECRET not in res.message


async def test_known_error_type_is_named(servers: list[web.AppRunner]) -> None:
    async def handle(_: web.Request) -> web.Response:
        return web.json_response({"status": "error", "errorType": "bad_data", "error": SECRET})

    res = await run(servers, handle)
    assert "bad_data" in res.message and SECRET not in res.message


BAD_VECTOR = {"resultType": "vector", "result": [{"metric": {}, "value": [0, SECRET]}]}


@pytest.mark.parametrize(
    "reply",
    [
        SECRET,
        json.dumps({"status": "success", "data": SECRET}),
        json.dumps({"status": "success", "data": {"resultType": SECRET}}),
        json.dumps({"status": "success", "data": BAD_VECTOR}),
    ],
)
async def test_malformed_bodies_are_not_echoed(servers: list[web.AppRunner], reply: str) -> None:
    async def handle(_: web.Request) -> web.Response:
        return web.Response(text=reply, content_type="application/json")

    res = await run(servers, handle)
    assert SECRET not in res.message


@pytest.mark.parametrize("code", [301, 302, 307, 308])
async def test_redirects_are_not_followed(servers: list[web.AppRunner], code: int) -> None:
    hits: list[str] = []

    async def target(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response(EMPTY_VECTOR)

    runner, target_url = await serve(target)
    servers.append(runner)

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=code, headers={"Location": target_url + request.path_qs})

    res = await run(servers, redirect)
    assert f"HTTP {code}" in res.message and "redirect" in res.message
    assert hits == []


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_answer_is_refused(
    servers: list[web.AppRunner], monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    monkeypatch.setattr(prometheus, "MAX_RESPONSE_BYTES", 4096)
    # A valid answer, only too long: without the cap it would be accepted.
    body = json.dumps({**EMPTY_VECTOR, "padding": "x" * 20_000}).encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 1000):
            await resp.write(body[i : i + 1000])
        await resp.write_eof()
        return resp

    res = await run(servers, handle)
    assert "too large" in res.message


def test_the_default_cap_is_8_mib() -> None:
    assert prometheus.MAX_RESPONSE_BYTES == 8 * 1024 * 1024
