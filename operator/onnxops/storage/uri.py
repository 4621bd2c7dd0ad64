"""Artifact and data URIs: parsing, pvc:// resolution, joining.

Supported schemes:

- ``file:///abs/path`` (or ``file://relative/path`` for laptop use) — a local path;
- ``pvc://<claim>/<path>`` — ``$ONNXOPS_PVC_ROOT/<claim>/<path>`` (default root ``/var/lib/onnxops/pvc``,
  where the operator's builders mount each claim);
- ``s3://<bucket>/<key>`` — boto3 with its standard environment;
- ``https://...`` — read-only, always with a sha256 pin where the caller has one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import StorageError

PVC_ROOT_ENV = "ONNXOPS_PVC_ROOT"
DEFAULT_PVC_ROOT = "/var/lib/onnxops/pvc"
SCHEMES = ("file", "pvc", "s3", "https", "http")
_CLAIM = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class ParsedUri:
    """A parsed URI. ``authority`` is the claim (pvc), bucket (s3) or host (http[s]); empty for file."""

    scheme: str
    authority: str
    path: str  # no leading slash for pvc/s3; absolute or relative local path for file; path+query for http
    uri: str

    @property
    def is_local(self) -> bool:
        return self.scheme in ("file", "pvc")


def parse_uri(uri: str) -> ParsedUri:
    """Split a storage URI; raises StorageError naming the URI when it is malformed or unsupported."""
    if not isinstance(uri, str) or "://" not in uri:
        raise StorageError(
            f"not a storage URI: {redact(str(uri))!r} (expected file://, pvc://, s3:// or https://)"
        )
    scheme, rest = uri.split("://", 1)
    if scheme not in SCHEMES:
        raise StorageError(
            f"unsupported URI scheme {scheme!r} in {redact(uri)!r}; use file://, pvc://, s3:// or https://"
        )
    if scheme == "file":
        if not rest:
            raise StorageError(f"empty path in {redact(uri)!r}")
        return ParsedUri("file", "", rest, uri)
    authority, _, path = rest.partition("/")
    if scheme == "pvc":
        if not _CLAIM.match(authority):
            raise StorageError(f"invalid claim name {authority!r} in {redact(uri)!r}")
        _check_relative(path, uri)
    elif scheme == "s3":
        if not _BUCKET.match(authority):
            raise StorageError(f"invalid bucket name {authority!r} in {redact(uri)!r}")
        if not path:
            raise StorageError(f"missing object key in {redact(uri)!r}")
    elif not authority:
        raise StorageError(f"missing host in {redact(uri)!r}")
    return ParsedUri(scheme, authority, path, uri)


def _check_relative(path: str, uri: str) -> None:
    if not path:
        raise StorageError(f"missing path after the claim in {redact(uri)!r}")
    if any(part == ".." for part in path.split("/")):
        raise StorageError(f"'..' is not allowed in {redact(uri)!r}")


def redact(uri: str) -> str:
    """The URI as it may appear in logs, events and status: no ``user:password@`` and no query string
    (a pre-signed URL's signature is a credential)."""
    head, sep, rest = uri.partition("://")
    if not sep:
        return uri
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    rest, tail = rest[:cut], rest[cut:]  # the query (and fragment) may sit right after the host
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "<redacted>@" + authority.rsplit("@", 1)[1]
    return f"{head}://{authority}{slash}{path}" + ("?<redacted>" if tail else "")


def pvc_root(env: dict[str, str] | None = None) -> Path:
    e = os.environ if env is None else env
    return Path(e.get(PVC_ROOT_ENV) or DEFAULT_PVC_ROOT)


def local_path(uri: str | ParsedUri, env: dict[str, str] | None = None) -> Path:
    """The filesystem path of a file:// or pvc:// URI."""
    p = parse_uri(uri) if isinstance(uri, str) else uri
    if p.scheme == "file":
        return Path(p.path)
    if p.scheme == "pvc":
        return pvc_root(env) / p.authority / p.path
    raise StorageError(f"{redact(p.uri)} is not a local (file:// or pvc://) URI")


def join_uri(base: str, *parts: str) -> str:
    """``join_uri("s3://b/models", "iris", "run1")`` -> ``"s3://b/models/iris/run1"`` (no doubled slashes)."""
    cleaned = [p.strip("/") for p in parts if p.strip("/")]
    for p in cleaned:
        if any(seg in ("", ".", "..") for seg in p.split("/")):
            raise StorageError(f"invalid path component {p!r} for {redact(base)!r}")
    head = base.rstrip("/")
    if head.endswith(":") or head.endswith(":/"):  # a bare root such as "file:///"
        return base + "/".join(cleaned)
    return "/".join([head, *cleaned])
