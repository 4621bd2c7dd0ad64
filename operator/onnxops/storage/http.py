"""https:// reads with urllib (read-only; callers pin a sha256 where they can).

A redirect may only lead to another https:// URL (urllib itself would follow https -> http); the body is
read into one growing buffer that is handed back without a second full-size copy.
"""

from __future__ import annotations

import io
import ssl
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPMessage
from typing import IO

from .errors import NotFound, StorageError
from .uri import redact

DEFAULT_TIMEOUT_S = 30.0
MAX_BYTES = 4 << 30
CHUNK = 1 << 20


def redirect_allowed(old_url: str, new_url: str, allow_http: bool = False) -> bool:
    """Whether following ``old_url`` -> ``new_url`` keeps the transport: https only (plain http to http
    only when ``allow_http``, for tests against a local server)."""
    old = urllib.parse.urlsplit(old_url).scheme.lower()
    new = urllib.parse.urlsplit(new_url).scheme.lower()
    return new == "https" or (allow_http and old == "http" and new == "http")


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, shown: str, allow_http: bool) -> None:
        self.shown = shown
        self.allow_http = allow_http

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not redirect_allowed(req.full_url, newurl, self.allow_http):
            old = urllib.parse.urlsplit(req.full_url).scheme
            new = urllib.parse.urlsplit(newurl).scheme or "?"
            raise StorageError(
                f"{self.shown}: refusing a redirect (HTTP {code}) from {old}:// to {new}://"
                f" ({redact(newurl)}); only https:// is allowed"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_https(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    allow_http: bool = False,
    context: ssl.SSLContext | None = None,
) -> bytes:
    """GET ``url``. Only https:// unless ``allow_http`` (tests against a local plain-HTTP server).

    ``context``: the TLS settings (default: the system's trust store; tests pass their own CA).
    """
    shown = redact(url)
    if not (url.startswith("https://") or (allow_http and url.startswith("http://"))):
        raise StorageError(f"{shown}: only https:// URLs are allowed")
    req = urllib.request.Request(url, headers={"User-Agent": "onnxops-storage"})
    opener = urllib.request.build_opener(
        _HttpsOnlyRedirects(shown, allow_http), urllib.request.HTTPSHandler(context=context)
    )
    buf = io.BytesIO()
    try:
        with opener.open(req, timeout=timeout) as resp:
            while chunk := resp.read(CHUNK):
                buf.write(chunk)
                if buf.tell() > MAX_BYTES:
                    raise StorageError(f"{shown}: larger than {MAX_BYTES} bytes")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise NotFound(f"{shown}: HTTP 404 Not Found") from None
        raise StorageError(f"{shown}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise StorageError(f"{shown}: cannot connect: {e.reason}") from None
    except (TimeoutError, OSError) as e:
        raise StorageError(f"{shown}: download failed: {e}") from None
    # getvalue() hands over BytesIO's own buffer (trimmed in place) instead of copying it, so the peak
    # stays near one body, where bytes(bytearray) needed two.
    return buf.getvalue()
