"""Durations (``30s``, ``5m``, ``1h30m``, ``250ms``) and RFC 3339 times as stored in status."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

_DUR = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | None, default: float = 0.0) -> float:
    """Seconds in a duration like ``1h30m``, ``30s`` or ``250ms``."""
    if not value:
        return default
    parts = _DUR.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"invalid duration {value!r} (expected e.g. 30s, 5m, 1h30m)")
    return sum(float(n) * _UNIT[u] for n, u in parts)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def elapsed(since: str | None, now: datetime) -> float:
    t = parse_time(since)
    return math.inf if t is None else (now - t).total_seconds()
