"""Artifact storage: file://, pvc://, s3:// (read/write) and https:// (read) with sha256 checks.

Public API::

    parse_uri(uri) -> ParsedUri
    read_bytes(uri, sha256=None) -> bytes                     # DigestMismatch / NotFound / StorageError
    fetch_to_path(uri, dest_dir, sha256=None) -> Path         # verified, written atomically
    sha256_hex(data) -> str ; sha256_file(path) -> str
    put_bundle(base_uri, {name: bytes}) -> {name: uri}        # atomic, never overwrites (AlreadyExists)

Errors always name the URI (``redact``ed: no userinfo, no query string) and never contain credentials.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from .errors import AlreadyExists, DigestMismatch, NotFound, StorageError
from .uri import ParsedUri, join_uri, local_path, parse_uri, pvc_root, redact

__all__ = [
    "AlreadyExists",
    "DigestMismatch",
    "NotFound",
    "ParsedUri",
    "StorageError",
    "fetch_to_path",
    "join_uri",
    "local_path",
    "parse_uri",
    "put_bundle",
    "pvc_root",
    "read_bytes",
    "redact",
    "sha256_file",
    "sha256_hex",
    "verify_digest",
]

BUNDLE_MARKER = "metadata.json"
_CHUNK = 1 << 20


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, streamed in 1 MiB chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_digest(uri: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected.lower():
        raise DigestMismatch(uri, expected.lower(), actual)


def read_bytes(uri: str, sha256: str | None = None, *, allow_http: bool = False) -> bytes:
    """The bytes at ``uri``, verified against ``sha256`` when given.

    ``allow_http`` permits plain http:// (tests against a local server only; specs accept https:// only).
    """
    p = parse_uri(uri)
    if p.is_local:
        from .local import read_local

        data = read_local(local_path(p), uri)
    elif p.scheme == "s3":
        from .s3 import read_s3

        data = read_s3(p.authority, p.path, uri)
    else:
        from .http import fetch_https

        data = fetch_https(uri, allow_http=allow_http)
    verify_digest(uri, sha256_hex(data), sha256)
    return data


def fetch_to_path(
    uri: str,
    dest_dir: str | Path,
    sha256: str | None = None,
    *,
    name: str | None = None,
    allow_http: bool = False,
) -> Path:
    """Copy ``uri`` into ``dest_dir`` (verified first; written to a temp name then renamed)."""
    data = read_bytes(uri, sha256, allow_http=allow_http)
    p = parse_uri(uri)
    base = name or Path(p.path.split("?", 1)[0]).name or "download"
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / base
    tmp = dest / f".{base}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as e:
        raise StorageError(f"{redact(uri)}: cannot write {target}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def put_bundle(base_uri: str, files: dict[str, bytes], *, marker: str = BUNDLE_MARKER) -> dict[str, str]:
    """Store ``files`` as one bundle at ``base_uri`` (the bundle directory/prefix); returns name -> URI.

    Atomic: no half-written bundle is ever visible (local: staging directory + rename; s3: data files
    first and ``marker`` last with a conditional write, see ``storage.s3``). An existing bundle is never
    overwritten: AlreadyExists. ``marker`` defaults to metadata.json; without it the last file is the marker.
    """
    if base_uri.endswith("/") and not base_uri.rstrip("/").endswith(":"):
        base_uri = base_uri.rstrip("/")
    if not files:
        raise StorageError(f"{redact(base_uri)}: empty bundle")
    for name in files:
        if not name or "/" in name or name.startswith("."):
            raise StorageError(f"{redact(base_uri)}: invalid bundle file name {name!r}")
    p = parse_uri(base_uri)
    if p.is_local:
        from .local import put_bundle_local

        put_bundle_local(local_path(p), base_uri, files)
    elif p.scheme == "s3":
        from .s3 import put_bundle_s3

        put_bundle_s3(p.authority, p.path, base_uri, files, marker if marker in files else list(files)[-1])
    else:
        raise StorageError(
            f"{redact(base_uri)}: cannot write to {p.scheme}:// (use file://, pvc:// or s3://)"
        )
    return {name: join_uri(base_uri, name) for name in files}
