"""The server's previous hand-written HTTP/1.1 parser, kept only to compare throughput with llhttp.

``bench_serving.py`` runs ``python bench/legacy_http.py`` next to the real server: the same server with
this protocol swapped in. It is NOT safe (it accepted conflicting Content-Length headers, NUL and bare CR
in headers: see issue 16) and is never shipped; the server uses ``onnxops.serving.http1``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from onnxops.serving import http1
from onnxops.serving.__main__ import main
from onnxops.serving.app import HttpServer
from onnxops.serving.handlers import Response, error
from onnxops.serving.http1 import REASONS

log = logging.getLogger("onnxops.serving")

MAX_HEADER_BYTES = 64 * 1024


class LegacyHttpProtocol(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closing = False
        self.paused = False
        self.pending: tuple[str, str, dict[str, str], int, bool] | None = None  # parsed head awaiting body
        self.last_data = time.monotonic()
        self.head_since = 0.0  # the server's sweeper reads it; this parser has no head timeout

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


if __name__ == "__main__":
    http1.HttpProtocol = LegacyHttpProtocol  # type: ignore[misc,assignment]
    sys.exit(main())
