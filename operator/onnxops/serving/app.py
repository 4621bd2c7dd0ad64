"""The HTTP/1.1 server: listening socket, connections, timeouts and graceful shutdown; one process.

Why no framework: on a 2-core pod the per-request cost of a framework (routing, request objects,
middleware) is larger than ONNX Runtime's own cost for a small model. Framing is llhttp's (strict; see
``http1.py``) and every request is answered in one ``transport.write``. Inference runs inline on the event
loop: one process, no thread hop, one ONNX Runtime session; scale out with replicas (the Deployment/HPA).
See bench/results/serving.md for the measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

from . import http1
from .handlers import Handlers

log = logging.getLogger("onnxops.serving")

HEAD_TIMEOUT = 10.0  # seconds a request head may take to arrive in full
IDLE_TIMEOUT = 120.0  # seconds without bytes from the client before a connection is closed


class HttpServer:
    """Owns the listening socket, the connections and graceful shutdown."""

    def __init__(
        self,
        handlers: Handlers,
        *,
        max_body_bytes: int,
        access_log: bool = False,
        on_request: Callable[[str, int, float], None] | None = None,
        head_timeout: float = HEAD_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.handlers = handlers
        self.max_body_bytes = max_body_bytes
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.access_log = access_log
        self.on_request = on_request
        self.connections: set[http1.HttpProtocol] = set()
        self.draining = False
        self._server: asyncio.base_events.Server | None = None
        self._drained: asyncio.Event | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def after_request(self, method: str, target: str, protocol: str, status: int, seconds: float) -> None:
        if self.on_request is not None:
            self.on_request(protocol, status, seconds)
        if self.access_log:
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": method,
                        "path": target[:200],
                        "status": status,
                        "ms": round(seconds * 1000, 3),
                    }
                },
            )

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._drained = asyncio.Event()
        self._server = await loop.create_server(
            lambda: http1.HttpProtocol(self), host, port, backlog=1024, reuse_address=True
        )
        self._sweeper = asyncio.create_task(self._sweep_idle())
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep_idle(self) -> None:
        """Close connections whose request head is not complete within ``head_timeout`` (slow or stalled
        clients) and connections silent for ``idle_timeout`` (idle keep-alive, a body that stopped)."""
        every = min(max(min(self.head_timeout, self.idle_timeout) / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for conn in list(self.connections):
                stalled = conn.head_since and now - conn.head_since > self.head_timeout
                if (stalled or now - conn.last_data > self.idle_timeout) and conn.transport is not None:
                    conn.closing = True
                    conn.transport.close()

    def connection_closed(self) -> None:
        if self.draining and not self.connections and self._drained is not None:
            self._drained.set()

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting, close idle keep-alive connections, let in-flight requests finish."""
        self.draining = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.idle and conn.transport is not None:
                conn.closing = True
                conn.transport.close()
        if self.connections and self._drained is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace_seconds)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
