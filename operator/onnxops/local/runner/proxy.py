"""A tiny local "kube-proxy" for one Service port: an aiohttp reverse proxy on 127.0.0.1 that spreads
requests over the Service's ready endpoints.

Difference from kube-proxy, on purpose: the backend is chosen per HTTP request (round robin), not per
connection at random, so traffic splits between versions are visible even over one keep-alive connection.
Service ClusterIPs are not reachable locally; clients use this proxy's URL (or an Endpoints address).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}


class ServiceProxy:
    def __init__(self, backends: Callable[[], list[str]], name: str = "service") -> None:
        """`backends()` returns the current ready `ip:port` list (read on every request)."""
        self.backends = backends
        self.name = name
        self._counter = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return self.url

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def pick(self) -> str | None:
        backends = self.backends()
        if not backends:
            return None
        return backends[next(self._counter) % len(backends)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        backend = self.pick()
        if backend is None:
            return web.Response(status=503, text=f"no ready endpoints for {self.name}\n")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        try:
            async with self._session.request(
                request.method, f"http://{backend}{request.rel_url}", headers=headers, data=body,
                allow_redirects=False, timeout=aiohttp.ClientTimeout(total=300),
            ) as upstream:
                resp = web.StreamResponse(status=upstream.status, headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP})
                await resp.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except (aiohttp.ClientError, OSError) as e:
            return web.Response(status=502, text=f"backend {backend} of {self.name} failed: {e}\n")
