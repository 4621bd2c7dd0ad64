"""A tiny local "kube-proxy" for one Service port: an aiohttp reverse proxy on 127.0.0.1 that spreads
requests over the Service's ready endpoints.

Difference from kube-proxy, on purpose: the backend is chosen per HTTP request (round robin), not per
connection at random, so traffic splits between versions are visible even over one keep-alive connection.
Service ClusterIPs are not reachable locally; clients use this proxy's URL (or an Endpoints address).

:class:`ServiceGateway` stands in for cluster DNS where a client takes a base URL: one local address for
every Service, ``/<namespace>/<service>/<port>/<path>`` (e.g. the stable pods' mirror of a shadow phase, with
``ONNXOPS_SHADOW_URL_TEMPLATE=<gateway>/{namespace}/{service}/{port}``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import aiohttp
from aiohttp import web

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


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
                request.method,
                f"http://{backend}{request.rel_url}",
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=300),
            ) as upstream:
                resp = web.StreamResponse(
                    status=upstream.status,
                    headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
                )
                await resp.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except (aiohttp.ClientError, OSError) as e:
            return web.Response(status=502, text=f"backend {backend} of {self.name} failed: {e}\n")


class ServiceGateway(ServiceProxy):
    """``/<namespace>/<service>/<port>/<path>`` -> ``/<path>`` on a ready endpoint of that Service port
    (round robin); ``lookup(namespace, service, port)`` returns the ready ``ip:port`` list."""

    def __init__(self, lookup: Callable[[str, str, int | str], list[str]]) -> None:
        super().__init__(lambda: [], "gateway")
        self.lookup = lookup

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        parts = request.rel_url.path.split("/", 4)  # ['', namespace, service, port, path]
        if len(parts) < 4 or not all(parts[1:4]):
            return web.Response(status=404, text="use /<namespace>/<service>/<port>/<path>\n")
        ns, svc, port = parts[1:4]
        backends = self.lookup(ns, svc, int(port) if port.isdigit() else port)
        if not backends:
            return web.Response(status=503, text=f"no ready endpoints for {ns}/{svc}:{port}\n")
        backend = backends[next(self._counter) % len(backends)]
        rest = "/" + (parts[4] if len(parts) > 4 else "")
        query = f"?{request.rel_url.query_string}" if request.rel_url.query_string else ""
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:  # buffered, answered with Content-Length (as the server itself does; the mirror relies on it)
            async with self._session.request(
                request.method,
                f"http://{backend}{rest}{query}",
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=60),
            ) as upstream:
                return web.Response(
                    status=upstream.status,
                    body=await upstream.read(),
                    headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
                )
        except (aiohttp.ClientError, OSError) as e:
            return web.Response(status=502, text=f"backend {backend} of {ns}/{svc} failed: {e}\n")
