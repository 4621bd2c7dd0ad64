"""storage.http: a redirect may not leave https://, and the body is not copied a second time."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from onnxops.storage import StorageError
from onnxops.storage.http import fetch_https, redirect_allowed

BODY = b"model bytes\n" * 100


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class Server:
    """A local server (TLS when given a certificate) answering /ok with BODY and /go?to=<url> with a 302."""

    def __init__(self, tls: tuple[Path, Path] | None = None, body: bytes = BODY) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                if self.path.startswith("/go?to="):
                    self.send_response(302)
                    self.send_header("Location", self.path.removeprefix("/go?to="))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server, ssl.SSLContext]]:
    tls = _self_signed(tmp_path)
    secure = Server(tls)
    try:
        plain = Server()
    except BaseException:
        secure.stop()
        raise
    try:
        yield secure, plain, ssl.create_default_context(cafile=str(tls[0]))
    finally:
        secure.stop()
        plain.stop()


def test_https_read_and_https_redirect(servers: tuple[Server, Server, ssl.SSLContext]) -> None:
    secure, _, ctx = servers
    assert fetch_https(f"{secure.url}/ok", context=ctx, timeout=5) == BODY
    assert fetch_https(f"{secure.url}/go?to={secure.url}/ok", context=ctx, timeout=5) == BODY
    assert secure.hits == ["/ok", f"/go?to={secure.url}/ok", "/ok"]


@pytest.mark.parametrize("allow_http", [False, True])
def test_a_redirect_from_https_to_http_is_refused(
    servers: tuple[Server, Server, ssl.SSLContext], allow_http: bool
) -> None:
    secure, plain, ctx = servers
    url = f"{secure.url}/go?to={plain.url}/ok?X-Amz-Signature=hunter2"
    with pytest.raises(StorageError) as info:
        fetch_https(url, context=ctx, timeout=5, allow_http=allow_http)
    msg = str(info.value)
    assert "redirect" in msg and "https://" in msg and "http://" in msg
    assert "hunter2" not in msg and "127.0.0.1" in msg
    assert plain.hits == []


@pytest.mark.parametrize(
    ("old", "new", "allow_http", "ok"),
    [
        ("https://a/x", "https://b/y", False, True),
        ("https://a/x", "http://b/y", False, False),
        ("https://a/x", "http://b/y", True, False),
        ("https://a/x", "HTTPS://b/y", False, True),
        ("https://a/x", "ftp://b/y", False, False),
        ("https://a/x", "file:///etc/passwd", False, False),
        ("http://a/x", "http://b/y", True, True),
        ("http://a/x", "http://b/y", False, False),
        ("http://a/x", "https://b/y", True, True),
    ],
)
def test_redirect_allowed(old: str, new: str, allow_http: bool, ok: bool) -> None:
    assert redirect_allowed(old, new, allow_http) is ok


def test_the_body_is_not_copied_a_second_time() -> None:
    size = 24 << 20
    big = Server(body=b"\x5a" * size)
    try:
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            data = fetch_https(f"{big.url}/ok", allow_http=True, timeout=30)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        big.stop()
    assert len(data) == size and data.count(b"\x5a") == size
    # one body plus growth slack and a read chunk; a second full copy would take it past 2x.
    assert peak - base < 1.6 * size, (peak - base) / size
