"""Messages for status and events: one line, scrubbed of anything credential-like, capped in length."""

from __future__ import annotations

import re

_SECRETISH = re.compile(
    r"(?i)\b([A-Z0-9_]*(secret|token|password|passwd|credential|access_key)[A-Z0-9_]*)\s*[=:]\s*\S+"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")


def scrub(message: str) -> str:
    """Remove ``KEY=value`` pairs whose key looks like a credential, and user:password in URLs."""
    text = _SECRETISH.sub(lambda m: f"{m.group(1)}=<redacted>", message)
    return _URL_USERINFO.sub(r"\1<redacted>@", text)


def short(text: str, limit: int = 1024) -> str:
    """One line, scrubbed of credentials, at most ``limit`` characters (for status and events)."""
    text = scrub(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."
