"""https:// reads with urllib (read-only; callers pin a sha256 where they can)."""

from __future__ import annotations

import urllib.error
import urllib.request

from .errors import NotFound, StorageError
from .uri import redact

DEFAULT_TIMEOUT_S = 30.0
MAX_BYTES = 4 << 30


def fetch_https(url: str, *, timeout: float = DEFAULT_TIMEOUT_S, allow_http: bool = False) -> bytes:
    """GET ``url``. Only https:// unless ``allow_http`` (tests against a local plain-HTTP server)."""
    shown = redact(url)
    if not (url.startswith("https://") or (allow_http and url.startswith("http://"))):
        raise StorageError(f"{shown}: only https:// URLs are allowed")
    req = urllib.request.Request(url, headers={"User-Agent": "onnxops-storage"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            buf = bytearray()
            while chunk := resp.read(1 << 20):
                buf += chunk
                if len(buf) > MAX_BYTES:
                    raise StorageError(f"{shown}: larger than {MAX_BYTES} bytes")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise NotFound(f"{shown}: HTTP 404 Not Found") from None
        raise StorageError(f"{shown}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise StorageError(f"{shown}: cannot connect: {e.reason}") from None
    except (TimeoutError, OSError) as e:
        raise StorageError(f"{shown}: download failed: {e}") from None
    return bytes(buf)
