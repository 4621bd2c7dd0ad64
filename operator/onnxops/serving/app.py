"""The HTTP/1.1 server: a small asyncio protocol with keep-alive and pipelining, one process.

Why a hand-written protocol: on a 2-core pod the per-request cost of a framework (routing, request
objects, middleware) is larger than ONNX Runtime's own cost for a small model; parsing the request
line and a few headers and answering in one ``transport.write`` keeps the server near the limit.
Inference runs inline on the event loop: one process, no thread hop, one ONNX Runtime session; scale
out with replicas (the Deployment/HPA). See bench/results/serving.md for the measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

from .handlers import Handlers, Response, error

log = logging.getLogger("onnxops.serving")

MAX_HEADER_BYTES = 64 * 1024
IDLE_TIMEOUT = 120.0  # seconds without bytes from the client before a connection is closed
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closing = False
        self.paused = False
        self.pending: tuple[str, str, dict[str, str], int, bool] | None = None  # parsed head awaiting body
        self.last_data = time.monotonic()

    # -- asyncio callbacks ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        self.server.connection_closed()

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_data = time.monotonic()
        self.buf += data
        try:
            while self.transport is not None and not self.closing and self._one_request():
                pass
        except Exception:  # a bug in parsing must not take the process down
            log.exception("unexpected error in the HTTP protocol")
            self._send(error(500, "internal error"), keep_alive=False)

    @property
    def idle(self) -> bool:
        return not self.buf and self.pending is None

    # -- HTTP/1.1 -------------------------------------------------------------------------------
    def _one_request(self) -> bool:
        """Handle one complete request from the buffer; False when more bytes are needed."""
        if self.pending is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEADER_BYTES:
                    self._send(error(400, f"request head over {MAX_HEADER_BYTES} bytes"), keep_alive=False)
                return False
            head = bytes(self.buf[:end]).decode("latin-1")
            del self.buf[: end + 4]
            parsed = self._parse_head(head)
            if parsed is None:
                return False
            self.pending = parsed
        method, target, headers, length, keep_alive = self.pending
        if len(self.buf) < length:
            return False
        body = bytes(self.buf[:length])
        del self.buf[:length]
        self.pending = None
        t0 = time.perf_counter()
        protocol, response = self.server.handlers.handle(method, target, headers, body)
        keep_alive = keep_alive and not self.server.draining
        self._send(response, keep_alive)
        self.server.after_request(method, target, protocol, response.status, time.perf_counter() - t0)
        return True

    def _parse_head(self, head: str) -> tuple[str, str, dict[str, str], int, bool] | None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._send(error(400, "malformed request line"), keep_alive=False)
            return None
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                self._send(error(400, f"malformed header line: {line[:80]!r}"), keep_alive=False)
                return None
            headers[name.lower()] = value.strip()
        conn = headers.get("connection", "").lower()
        keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        if "transfer-encoding" in headers:
            self._send(
                error(411, "chunked transfer encoding is not supported; send Content-Length"),
                keep_alive=False,
            )
            return None
        raw = headers.get("content-length", "0")
        if not raw.isdigit():
            self._send(
                error(400, f"Content-Length is not a non-negative integer: {raw[:40]!r}"), keep_alive=False
            )
            return None
        length = int(raw)
        limit = self.server.max_body_bytes
        if length > limit:
            self._send(
                error(
                    400,
                    f"request body of {length} bytes is over the limit of {limit} bytes (--max-body-bytes)",
                ),
                keep_alive=False,
            )
            self.server.after_request(method, target, "other", 400, 0.0)
            return None
        if headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return method, target, headers, length, keep_alive

    def _send(self, r: Response, keep_alive: bool) -> None:
        t = self.transport
        if t is None:
            return
        head = [
            f"HTTP/1.1 {r.status} {REASONS.get(r.status, 'Unknown')}",
            f"Content-Type: {r.content_type}",
            f"Content-Length: {len(r.body)}",
        ]
        head += [f"{k}: {v}" for k, v in r.headers]
        if not keep_alive:
            head.append("Connection: close")
        t.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + r.body)
        if not keep_alive:
            self.closing = True
            self.buf.clear()
            t.close()


class HttpServer:
    """Owns the listening socket, the connections and graceful shutdown."""

    def __init__(
        self,
        handlers: Handlers,
        *,
        max_body_bytes: int,
        access_log: bool = False,
        on_request: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self.handlers = handlers
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.on_request = on_request
        self.connections: set[HttpProtocol] = set()
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
            lambda: HttpProtocol(self), host, port, backlog=1024, reuse_address=True
        )
        self._sweeper = asyncio.create_task(self._sweep_idle())
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep_idle(self, every: float = 10.0) -> None:
        """Close connections (idle keep-alive or a request stuck half-sent) silent for IDLE_TIMEOUT."""
        while True:
            await asyncio.sleep(min(every, IDLE_TIMEOUT / 2))
            deadline = time.monotonic() - IDLE_TIMEOUT
            for conn in list(self.connections):
                if conn.last_data < deadline and conn.transport is not None:
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
