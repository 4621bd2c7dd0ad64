"""Storage: URI parsing, local/pvc bundles, sha256 pins, http(s) fetch against a local server."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from onnxops.storage import (
    AlreadyExists,
    DigestMismatch,
    NotFound,
    StorageError,
    fetch_to_path,
    join_uri,
    local_path,
    parse_uri,
    put_bundle,
    read_bytes,
    redact,
    sha256_file,
    sha256_hex,
)


def _parts(uri: str) -> tuple[str, str, str]:
    p = parse_uri(uri)
    return p.scheme, p.authority, p.path


def test_parse_uri_schemes() -> None:
    assert _parts("s3://my-bucket/a/b.onnx") == ("s3", "my-bucket", "a/b.onnx")
    assert _parts("pvc://claim-1/models/x") == ("pvc", "claim-1", "models/x")
    assert _parts("file:///abs/x.csv") == ("file", "", "/abs/x.csv")
    assert _parts("https://example.com/d.csv?x=1") == ("https", "example.com", "d.csv?x=1")


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("ftp://h/x", "unsupported URI scheme 'ftp'"),
        ("nothing", "not a storage URI"),
        ("s3://B/x", "invalid bucket name 'B'"),
        ("s3://bucket", "missing object key"),
        ("pvc://Claim/x", "invalid claim name"),
        ("pvc://claim/../etc/passwd", "'..' is not allowed"),
        ("pvc://claim", "missing path"),
        ("file://", "empty path"),
    ],
)
def test_parse_uri_rejects_with_the_uri_in_the_message(uri: str, fragment: str) -> None:
    with pytest.raises(StorageError, match=fragment.replace("(", r"\(").replace(".", r"\.")) as ei:
        parse_uri(uri)
    assert uri in str(ei.value) or fragment in str(ei.value)


def test_pvc_resolves_under_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXOPS_PVC_ROOT", str(tmp_path))
    assert local_path("pvc://data/sets/iris.csv") == tmp_path / "data" / "sets" / "iris.csv"
    assert local_path("pvc://data/x", env={}) == Path("/var/lib/onnxops/pvc/data/x")


def test_join_uri() -> None:
    assert join_uri("s3://b/models/", "iris", "run-1/") == "s3://b/models/iris/run-1"
    assert join_uri("file:///", "x") == "file:///x"
    with pytest.raises(StorageError):
        join_uri("s3://b/m", "a/../b")


def test_sha256_helpers_match_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    f = tmp_path / "blob"
    f.write_bytes(data)
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert sha256_file(f) == hashlib.sha256(data).hexdigest()


def test_read_bytes_local_and_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXOPS_PVC_ROOT", str(tmp_path))
    (tmp_path / "claim").mkdir()
    (tmp_path / "claim" / "f.bin").write_bytes(b"hello")
    good = hashlib.sha256(b"hello").hexdigest()
    assert read_bytes("pvc://claim/f.bin", good) == b"hello"
    assert read_bytes(f"file://{tmp_path}/claim/f.bin", good.upper()) == b"hello"
    with pytest.raises(DigestMismatch, match=r"sha256 mismatch for pvc://claim/f.bin: expected 0{64}") as ei:
        read_bytes("pvc://claim/f.bin", "0" * 64)
    assert ei.value.actual == good
    with pytest.raises(NotFound, match=r"pvc://claim/missing\.bin"):
        read_bytes("pvc://claim/missing.bin")
    with pytest.raises(StorageError, match="is a directory"):
        read_bytes(f"file://{tmp_path}/claim")


def test_put_bundle_local_is_complete_and_never_overwritten(tmp_path: Path) -> None:
    base = f"file://{tmp_path}/models/iris/run-1"
    files = {"model.onnx": b"m" * 1000, "profile.json": b"{}", "metadata.json": b'{"a": 1}'}
    uris = put_bundle(base, files)
    assert uris == {name: f"{base}/{name}" for name in files}
    bundle = tmp_path / "models" / "iris" / "run-1"
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == files
    with pytest.raises(AlreadyExists, match="run-1 already exists"):
        put_bundle(base, {"model.onnx": b"other", "metadata.json": b"{}"})
    assert (bundle / "model.onnx").read_bytes() == b"m" * 1000
    # no staging leftovers beside the bundle
    assert [p.name for p in (tmp_path / "models" / "iris").iterdir()] == ["run-1"]


def test_put_bundle_refuses_existing_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "run-2").mkdir()
    with pytest.raises(AlreadyExists):
        put_bundle(f"file://{tmp_path}/run-2", {"metadata.json": b"{}"})


def test_put_bundle_failure_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(StorageError, match="cannot create"):
        put_bundle(f"file://{tmp_path}/afile/b", {"metadata.json": b"{}"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_put_bundle_rejects_bad_names_and_https(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="invalid bundle file name"):
        put_bundle(f"file://{tmp_path}/b", {"../x": b""})
    with pytest.raises(StorageError, match="cannot write to https"):
        put_bundle("https://example.com/b", {"metadata.json": b"{}"})


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.csv").write_bytes(b"a,b\n1,2\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def test_http_fetch_only_with_the_explicit_flag(http_server: str, tmp_path: Path) -> None:
    url = f"{http_server}/data.csv"
    digest = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    with pytest.raises(StorageError, match="only https:// URLs are allowed"):
        read_bytes(url)
    assert read_bytes(url, digest, allow_http=True) == b"a,b\n1,2\n"
    with pytest.raises(DigestMismatch, match=r"data\.csv"):
        read_bytes(url, "f" * 64, allow_http=True)
    with pytest.raises(NotFound, match="404"):
        read_bytes(f"{http_server}/nope.csv", allow_http=True)
    out = fetch_to_path(url, tmp_path / "dl", digest, allow_http=True)
    assert out == tmp_path / "dl" / "data.csv" and out.read_bytes() == b"a,b\n1,2\n"
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["data.csv"]


def test_fetch_mismatch_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes(b"model")
    with pytest.raises(DigestMismatch):
        fetch_to_path(f"file://{src}", tmp_path / "dl", "0" * 64)
    assert not (tmp_path / "dl").exists()


def test_redact_hides_userinfo_and_query() -> None:
    assert (
        redact("https://u:p@h.example/d.csv?X-Amz-Signature=abc")
        == "https://<redacted>@h.example/d.csv?<redacted>"
    )
    assert redact("s3://b/k.csv") == "s3://b/k.csv"
    assert redact("file:///a/b") == "file:///a/b"


def test_errors_do_not_carry_presigned_signatures(http_server: str) -> None:
    url = f"{http_server}/data.csv?X-Amz-Signature=SECRETSIG"
    with pytest.raises(DigestMismatch) as ei:
        read_bytes(url, "0" * 64, allow_http=True)
    assert "SECRETSIG" not in str(ei.value) and "data.csv?<redacted>" in str(ei.value)
    with pytest.raises(NotFound) as nf:
        read_bytes(f"{http_server}/nope.csv?sig=SECRETSIG", allow_http=True)
    assert "SECRETSIG" not in str(nf.value)


def test_connection_refused_is_a_storage_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StorageError, match=f"127.0.0.1:{port}/x.csv: cannot connect"):
        read_bytes(f"http://127.0.0.1:{port}/x.csv", allow_http=True)
