"""HTTP/1.1 framing on llhttp (``httptools``, the parser of uvicorn and Node.js), strict, one connection.

llhttp decides the framing: it refuses duplicate or non-numeric ``Content-Length``, ``Transfer-Encoding``
together with ``Content-Length``, CR/LF/NUL/control bytes in header names and values, obs-fold lines,
non-token methods and header names, bare LF line ends and invalid target bytes. On top of it this module
enforces what llhttp tolerates: the request line must be exactly ``METHOD SP target SP HTTP/1.0|1.1``
(llhttp skips runs of spaces and accepts HTTP/0.9 and 2.0 there), at most ``MAX_HEADERS`` headers, a
target of at most ``MAX_TARGET_BYTES`` and a head of at most ``MAX_HEAD_BYTES``. Every violation answers
400 (414/431 for the bounds) with ``Connection: close`` and closes the connection. Bodies need
``Content-Length``; ``Transfer-Encoding`` alone answers 411.

To check the request line byte by byte, the protocol follows message boundaries in the raw stream: a
message starts where the previous one ended (leading empty lines skipped, as llhttp does), its head ends
at the first CRLF CRLF (llhttp admits no bare CR or LF inside a head) and its body is ``Content-Length``
bytes long. Requests are handled inline, in order, as llhttp completes them (keep-alive and pipelining).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import httptools

from .handlers import Response, error

if TYPE_CHECKING:
    from .app import HttpServer

log = logging.getLogger("onnxops.serving")

MAX_HEADERS = 100
MAX_TARGET_BYTES = 8 * 1024
MAX_HEAD_BYTES = 64 * 1024
VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_METHODS = {b"GET": "GET", b"POST": "POST", b"HEAD": "HEAD", b"PUT": "PUT", b"DELETE": "DELETE"}


class Reject(Exception):
    """Raised inside a parser callback: answer ``status`` with ``message`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _Stop(Exception):
    """Raised inside a parser callback once the connection is closing: parse no further."""


def check_request_line(line: bytes | bytearray, url: bytes) -> str | None:
    """Why ``line`` is not ``METHOD SP url SP HTTP/1.x`` (llhttp already checked the method), or None."""
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[0] or parts[1] != url:
        return "malformed request line: expected 'METHOD SP target SP HTTP/1.1'"
    if parts[2] not in VERSIONS:
        return f"unsupported HTTP version {bytes(parts[2][:20])!r}: HTTP/1.0 or HTTP/1.1"
    return None


class HttpProtocol(asyncio.Protocol):
    """One connection: an asyncio protocol whose methods are also llhttp's callbacks."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.closing = False
        self.last_data = time.monotonic()
        self.head_since = 0.0  # when the head being read began (0: none); see HttpServer's sweeper
        self.in_message = False
        # the request being read
        self.url = b""
        self.headers: dict[str, str] = {}
        self.header_count = 0
        self.body: list[bytes] = []
        self.keep_alive = True
        # message boundaries in the raw stream (offsets count every byte received on the connection)
        self.chunk = b""  # the bytes being fed to the parser
        self.fed = 0  # stream offset of self.chunk[0]
        self.next_start = 0  # stream offset where the next (or current) message begins
        self.carry = bytearray()  # the start of a head that began in an earlier chunk (from next_start)

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

    @property
    def idle(self) -> bool:
        return not self.in_message

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_data = time.monotonic()
        self.chunk = data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, Reject):
                self._reject(cause.status, cause.message)
            elif not isinstance(cause, _Stop):
                log.error("unexpected error in the HTTP protocol", exc_info=cause)
                self._send(error(500, "internal error"), keep_alive=False)
        except httptools.HttpParserUpgrade:
            self._close()  # the request was answered with Connection: close; what follows is not HTTP/1.1
        except httptools.HttpParserError as exc:
            if not self.closing:
                self._reject(400, f"malformed request: {exc}")
        finally:
            self._after_chunk(data)

    def _after_chunk(self, data: bytes) -> None:
        end = self.fed + len(data)
        if self.head_since and not self.closing:  # a head is still incomplete: keep its bytes
            if self.next_start >= self.fed:  # it began in this chunk
                self.carry = bytearray(data[self.next_start - self.fed :])
            else:  # appended in place: a head sent byte by byte costs linear time, not quadratic
                self.carry += data
            if len(self.carry) > MAX_HEAD_BYTES:
                self._reject(431, f"request head over {MAX_HEAD_BYTES} bytes")
        elif self.carry:
            self.carry = bytearray()
        self.fed, self.chunk = end, b""

    # -- llhttp callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.closing:
            raise _Stop
        self.in_message = True
        self.head_since = self.last_data
        self.url, self.headers, self.header_count, self.body = b"", {}, 0, []

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_TARGET_BYTES:
            raise Reject(414, f"request target over {MAX_TARGET_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > MAX_HEADERS:
            raise Reject(431, f"more than {MAX_HEADERS} request headers")
        headers = self.headers
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").rstrip(" \t")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        length = self._check_head()
        self.head_since = 0.0
        if "transfer-encoding" in self.headers:
            raise Reject(411, "chunked transfer encoding is not supported; send Content-Length")
        limit = self.server.max_body_bytes
        if length > limit:
            self.server.after_request(self._method(), self.url.decode("latin-1"), "other", 400, 0.0)
            raise Reject(
                400, f"request body of {length} bytes is over the limit of {limit} bytes (--max-body-bytes)"
            )
        self.keep_alive = self.parser.should_keep_alive() and not self.parser.should_upgrade()
        if self.headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        parts = self.body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        method, target = self._method(), self.url.decode("latin-1")
        self.in_message = False
        self.body = []
        t0 = time.perf_counter()
        server = self.server
        protocol, response = server.handlers.handle(method, target, self.headers, body)
        self._send(response, self.keep_alive and not server.draining)
        server.after_request(method, target, protocol, response.status, time.perf_counter() - t0)

    # -- helpers --------------------------------------------------------------------------------
    def _method(self) -> str:
        raw = self.parser.get_method()
        return _METHODS.get(raw) or raw.decode("latin-1")

    def _check_head(self) -> int:
        """Check the raw request line and head size; the body length. Moves ``next_start`` past the body."""
        buf: bytes | bytearray
        if self.next_start >= self.fed:
            buf, base = self.chunk, self.fed
        else:
            buf, base = self.carry + self.chunk, self.next_start
        start = self.next_start - base
        while buf.startswith(b"\r\n", start):  # empty lines before a request line are ignored
            start += 2
        line_end = buf.find(b"\r\n", start)
        head_end = buf.find(b"\r\n\r\n", line_end) + 4
        if line_end < 0 or head_end < 4:
            raise Reject(400, "malformed request head")
        problem = check_request_line(buf[start:line_end], self.url)
        if problem:
            raise Reject(400, problem)
        if head_end - start > MAX_HEAD_BYTES:
            raise Reject(431, f"request head over {MAX_HEAD_BYTES} bytes")
        length = int(self.headers.get("content-length", "0"))  # llhttp checked: one value, digits only
        self.next_start = base + head_end + length
        return length

    def _reject(self, status: int, message: str) -> None:
        self.in_message = False
        self._send(error(status, message), keep_alive=False)

    def _close(self) -> None:
        self.closing = True
        self.in_message = False
        self.head_since = 0.0
        if self.transport is not None:
            self.transport.close()

    def _send(self, r: Response, keep_alive: bool) -> None:
        t = self.transport
        if t is None or self.closing:
            return
        head = (
            f"HTTP/1.1 {r.status} {REASONS.get(r.status, 'Unknown')}\r\n"
            f"Content-Type: {r.content_type}\r\nContent-Length: {len(r.body)}\r\n"
        )
        for k, v in r.headers:
            head += f"{k}: {v}\r\n"
        if not keep_alive:
            head += "Connection: close\r\n"
        t.write((head + "\r\n").encode("latin-1") + r.body)
        if not keep_alive:
            self._close()
