"""HTTP/1.1 framing over a raw socket against a real server on 127.0.0.1: ambiguous or malformed request
heads get 400 (or 414/431 for the bounds) and the connection is closed; a stalled head is cut off."""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Iterator

import pytest
from test_serving_support import Bundle, ServerThread, request, train_classifier


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_classifier(tmp_path_factory.mktemp("clf"))


@pytest.fixture(scope="module")
def server(clf: Bundle) -> Iterator[ServerThread]:
    with ServerThread(clf.config()) as s:
        yield s


def exchange(port: int, raw: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send ``raw``; everything the server answers within ``timeout``, and whether it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        s.settimeout(timeout)
        reply, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return reply, False
            if not chunk:
                return reply, True
            reply += chunk
        return reply, False


def status_of(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply[:100]
    return int(reply[9:12])


LIVE = b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n"

# (id, raw request): every one of these must get 400 and a closed connection
MALFORMED = [
    ("conflicting-content-length", LIVE + b"Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello"),
    ("duplicate-content-length", LIVE + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("content-length-plus", LIVE + b"Content-Length: +5\r\n\r\nhello"),
    ("content-length-minus", LIVE + b"Content-Length: -0\r\n\r\n"),
    ("content-length-list", LIVE + b"Content-Length: 5, 5\r\n\r\nhello"),
    (
        "transfer-encoding-with-content-length",
        LIVE + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    ),
    ("nul-in-header-name", LIVE + b"X-A\x00b: 1\r\n\r\n"),
    ("nul-in-header-value", LIVE + b"X-A: 1\x002\r\n\r\n"),
    ("cr-in-header-value", LIVE + b"X-A: 1\r2\r\n\r\n"),
    ("cr-in-header-name", LIVE + b"X-A\rb: 1\r\n\r\n"),
    ("lf-in-header-value", LIVE + b"X-A: 1\n2\r\n\r\n"),
    ("bare-lf-line-endings", b"GET /v2/health/live HTTP/1.1\nHost: t\n\n"),
    ("obs-fold-space", LIVE + b"X-A: 1\r\n 2\r\n\r\n"),
    ("obs-fold-tab", LIVE + b"X-A: 1\r\n\t2\r\n\r\n"),
    ("invalid-token-in-method", b"G(T /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("unknown-method", b"FROB /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("invalid-token-in-header-name", LIVE + b"X(A): 1\r\n\r\n"),
    ("space-in-header-name", LIVE + b"X A: 1\r\n\r\n"),
    ("space-before-colon", LIVE + b"X-A : 1\r\n\r\n"),
    ("two-spaces-before-target", b"GET  /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("two-spaces-after-target", b"GET /v2/health/live  HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("tab-separator", b"GET\t/v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("trailing-token", b"GET /v2/health/live HTTP/1.1 x\r\nHost: t\r\n\r\n"),
    ("no-version", b"GET /v2/health/live\r\n\r\n"),
    ("http-2-version", b"GET /v2/health/live HTTP/2.0\r\nHost: t\r\n\r\n"),
    ("lowercase-version", b"GET /v2/health/live http/1.1\r\nHost: t\r\n\r\n"),
    ("control-char-in-target", b"GET /v2/health/live\x01 HTTP/1.1\r\nHost: t\r\n\r\n"),
]


@pytest.mark.parametrize("raw", [r for _, r in MALFORMED], ids=[i for i, _ in MALFORMED])
def test_malformed_heads_get_400_and_close(server: ServerThread, raw: bytes) -> None:
    reply, closed = exchange(server.port, raw)
    assert status_of(reply) == 400, reply[:200]
    assert b"\r\nConnection: close\r\n" in reply
    assert closed, "the connection must be closed after a framing error"
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]


def test_smuggled_request_behind_conflicting_length_is_not_served(server: ServerThread) -> None:
    # a proxy that takes the first Content-Length forwards one request; a server that takes the last one
    # would see a second request (GET /metrics) inside the body: neither must be answered with 200
    smuggled = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
    raw = (
        b"POST /v2/health/live HTTP/1.1\r\nHost: t\r\nContent-Length: "
        + str(len(smuggled)).encode()
        + b"\r\nContent-Length: 0\r\n\r\n"
        + smuggled
    )
    reply, closed = exchange(server.port, raw)
    assert status_of(reply) == 400 and closed
    assert reply.count(b"HTTP/1.1 ") == 1


def test_too_many_headers_get_431(server: ServerThread) -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(200))
    reply, closed = exchange(server.port, LIVE + many + b"\r\n")
    assert status_of(reply) == 431 and closed
    assert b"headers" in reply
    reply, closed = exchange(server.port, LIVE + b"X-Same: v\r\n" * 200 + b"\r\n")  # one name, repeated
    assert status_of(reply) == 431 and closed
    # a request under the bound is served
    fine = b"".join(b"X-%d: v\r\n" % i for i in range(50))
    reply, closed = exchange(server.port, LIVE + fine + b"Connection: close\r\n\r\n")
    assert status_of(reply) == 200


def test_head_over_the_size_limit_gets_431(server: ServerThread) -> None:
    reply, closed = exchange(server.port, LIVE + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert status_of(reply) == 431 and closed


def test_long_target_gets_414(server: ServerThread) -> None:
    reply, closed = exchange(server.port, b"GET /v2/health/live?" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert status_of(reply) == 414 and closed
    reply, closed = exchange(
        server.port, b"GET /v2/health/live?" + b"a" * 1000 + b" HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    assert status_of(reply) == 200


def test_chunked_body_without_length_gets_411(server: ServerThread) -> None:
    reply, closed = exchange(
        server.port,
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    assert status_of(reply) == 411 and closed


def test_keep_alive_and_http_1_0_still_work(server: ServerThread) -> None:
    reply, closed = exchange(server.port, LIVE + b"\r\n" + LIVE + b"Connection: close\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200 OK") == 2 and closed
    reply, closed = exchange(server.port, b"GET /v2/health/live HTTP/1.0\r\n\r\n")
    assert status_of(reply) == 200 and closed  # HTTP/1.0 without keep-alive closes
    reply, closed = exchange(
        server.port, b"GET /v2/health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=1.0
    )
    assert status_of(reply) == 200 and not closed


def test_server_still_serves_after_the_bad_heads(server: ServerThread) -> None:
    assert request(server.port, "GET", "/v2/health/ready")[0] == 200


def test_partial_head_is_cut_off_after_the_head_timeout(clf: Bundle) -> None:
    with ServerThread(clf.config(head_timeout_seconds=0.5, idle_timeout_seconds=30.0)) as s:
        t0 = time.monotonic()
        # a slow client: one byte of the head at a time, never finishing it
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            closed_after = None
            head = b"POST /v2/models/iris/infer HTTP/1.1\r\nContent-Length: 10\r\nX-Slow: aaaaaaaaaaaaaaa"
            for byte in head:
                try:
                    c.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    closed_after = time.monotonic() - t0
                    break
                c.settimeout(0.1)
                try:
                    if c.recv(100) == b"":
                        closed_after = time.monotonic() - t0
                        break
                except TimeoutError:
                    pass
            assert closed_after is not None, "the server kept a head open for the whole slow send"
            assert closed_after < 5.0
        # an idle keep-alive connection (between requests) is governed by the idle timeout, not the head one
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(LIVE + b"\r\n")
            assert c.recv(1000).startswith(b"HTTP/1.1 200")
            time.sleep(1.5)
            c.sendall(LIVE + b"Connection: close\r\n\r\n")
            assert c.recv(1000).startswith(b"HTTP/1.1 200")


def test_idle_keep_alive_connection_is_closed_after_the_idle_timeout(clf: Bundle) -> None:
    with (
        ServerThread(clf.config(head_timeout_seconds=30.0, idle_timeout_seconds=0.5)) as s,
        socket.create_connection(("127.0.0.1", s.port), timeout=10) as c,
    ):
        c.sendall(LIVE + b"\r\n")
        assert c.recv(1000).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        c.settimeout(10)
        assert c.recv(100) == b""  # closed by the server without a reply
        assert time.monotonic() - t0 < 5.0


def _read_all(c: socket.socket, count: int) -> list[bytes]:
    """``count`` responses (head + body) read from ``c``."""
    buf, out = b"", []
    while len(out) < count:
        chunk = c.recv(65536)
        assert chunk, f"closed after {len(out)} responses: {buf[:200]!r}"
        buf += chunk
        while b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            out.append(head + b"\r\n\r\n" + rest[:length])
            buf = rest[length:]
    return out


def test_pipelined_requests_split_anywhere_are_all_answered(server: ServerThread) -> None:
    # three pipelined requests (one with a body, one after an empty line) cut into pieces at every offset:
    # the raw request-line check follows message boundaries across reads
    body = b'{"inputs": []}'
    stream = (
        LIVE
        + b"\r\n"
        + b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
        + b"\r\nGET /v2/health/ready HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    rng = random.Random(7)
    cuts = [[i] for i in range(1, len(stream), 3)]
    cuts += [sorted(rng.sample(range(1, len(stream)), 4)) for _ in range(20)]
    for points in cuts:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            prev = 0
            for p in [*points, len(stream)]:
                c.sendall(stream[prev:p])
                prev = p
                time.sleep(0.002)
            live, infer, ready = _read_all(c, 3)
        assert live.startswith(b"HTTP/1.1 200") and live.endswith(b'{"live":true}'), (points, live)
        assert infer.startswith(b"HTTP/1.1 400") and b"inputs" in infer, (points, infer)
        assert ready.startswith(b"HTTP/1.1 200"), (points, ready)


def test_upgrade_and_connect_are_answered_then_closed(server: ServerThread) -> None:
    reply, closed = exchange(server.port, LIVE + b"Connection: upgrade\r\nUpgrade: h2c\r\n\r\n")
    assert status_of(reply) == 200 and b"Connection: close" in reply and closed
    reply, closed = exchange(server.port, b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status_of(reply) in (400, 404, 405) and closed
