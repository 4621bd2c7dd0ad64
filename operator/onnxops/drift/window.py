"""Durations of the CRD (``30s``, ``5m``, ``1h30m``, ``250ms``) and their PromQL form."""

from __future__ import annotations

import re

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: str) -> float:
    """'1h30m' -> 5400.0 (the CRD's Duration pattern)."""
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"invalid duration {value!r} (expected e.g. 30s, 5m, 1h30m)")
    return sum(float(n) * _UNIT[u] for n, u in parts)


def promql_duration(value: str | float) -> str:
    """A range for PromQL (integers only there): '1.5m' -> '90s', 0.25 -> '250ms'."""
    seconds = duration_seconds(value) if isinstance(value, str) else float(value)
    if seconds <= 0:
        raise ValueError(f"window must be > 0, got {value!r}")
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"
