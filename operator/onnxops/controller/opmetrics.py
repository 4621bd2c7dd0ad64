"""The operator's own Prometheus metrics (``onnxops_operator_*``), on their own registry and port.

Only series the operator really moves: reconciles by kind and result, errors by kind and error, reconcile
latency, the objects each kind's daemons watch, and the decisions it takes (promotions, rollbacks, aborts,
retrains) with their reason. ``build_info`` is always present, so an ``absent()`` alert tells a missing
scrape from a quiet operator. Served by ``onnxops operator --metrics-port`` (the chart's metrics port).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from onnxops import __version__

# results of one reconcile
SUCCESS, CONFLICT, ERROR = "success", "conflict", "error"
# status.history actions that are decisions of the operator (not the user's)
DECISIONS = frozenset({"Promoted", "RolledBack", "Aborted", "Retrained"})

REGISTRY = CollectorRegistry(auto_describe=True)
BUILD_INFO = Gauge(
    "onnxops_operator_build_info", "Always 1; the operator's version.", ["version"], registry=REGISTRY
)
RECONCILES = Counter(
    "onnxops_operator_reconciles",
    "Reconciles by kind and result (success, conflict: retried at once, error: retried with backoff).",
    ["kind", "result"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "onnxops_operator_reconcile_errors",
    "Failed reconciles by kind and error (api_<HTTP status> or the exception's type).",
    ["kind", "error"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "onnxops_operator_reconcile_duration_seconds",
    "Time of one reconcile (reads, decision, writes), by kind.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
OBJECTS = Gauge(
    "onnxops_operator_watched_objects",
    "Objects with a running reconcile loop (daemon), by kind.",
    ["kind"],
    registry=REGISTRY,
)
DECISIONS_TOTAL = Counter(
    "onnxops_operator_decisions",
    "Decisions the operator took, by kind, decision (Promoted, RolledBack, Aborted, Retrained) and reason.",
    ["kind", "decision", "reason"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "onnxops_operator_notifications",
    "Webhook notifications by scope (global: the chart's sinks, service: spec.notifications), format and "
    "result (delivered; failed: gave up after the retries or on a permanent error; dropped: queue full).",
    ["scope", "format", "result"],
    registry=REGISTRY,
)
NOTIFICATION_FAILURES = Counter(
    "onnxops_operator_notification_failures",
    "Failed webhook delivery attempts (every retry counts), by scope, format and error (http_<status>, "
    "the exception's type, or secret_unavailable).",
    ["scope", "format", "error"],
    registry=REGISTRY,
)
BUILD_INFO.labels(version=__version__).set(1)


def error_label(exc: BaseException) -> str:
    """``api_<status>`` for an API answer, else the exception's type name (bounded cardinality)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return f"api_{status}"
    return type(exc).__name__


def observe_reconcile(kind: str, result: str, seconds: float, exc: BaseException | None = None) -> None:
    RECONCILES.labels(kind=kind, result=result).inc()
    DURATION.labels(kind=kind).observe(max(0.0, seconds))
    if exc is not None and result == ERROR:
        ERRORS.labels(kind=kind, error=error_label(exc)).inc()


def new_decisions(
    old_history: Iterable[Mapping[str, Any]] | None, new_history: Iterable[Mapping[str, Any]] | None
) -> list[tuple[str, str]]:
    """(decision, reason) of the history entries added by a plan (entries carry a timestamp, so an entry
    that is already in the old history is the same decision and is not counted again)."""
    old = list(old_history or [])
    out = []
    for h in new_history or []:
        if h in old or h.get("action") not in DECISIONS:
            continue
        out.append((str(h["action"]), str(h.get("reason") or "")))
    return out


def count_decisions(kind: str, decisions: Iterable[tuple[str, str]]) -> None:
    for decision, reason in decisions:
        DECISIONS_TOTAL.labels(kind=kind, decision=decision, reason=reason).inc()


def serve(port: int, addr: str = "0.0.0.0") -> Any:
    """Serve /metrics on ``port`` in a daemon thread; returns the server (``shutdown()`` stops it)."""
    server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return server
