"""SLO analysis of a canary step: measurement (a MetricsProvider) kept apart from assessment (pure).

A provider is anything with ``async request_stats(...)``. Tests inject one with
``ONNXOPS_METRICS_PROVIDER=<module>:<attribute>`` (an instance, or a zero-argument factory).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from onnxops.api.v1alpha1.inferenceservice import Analysis

Verdict = Literal["Pass", "Fail", "Inconclusive"]
PROVIDER_ENV = "ONNXOPS_METRICS_PROVIDER"
# The API's defaults (camelCase): the analysis that runs when spec.rollout.analysis is absent.
DEFAULTS: dict[str, Any] = Analysis().to_dict()
MIN_RECHECK_SECONDS = 10.0


def analysis_config(spec_analysis: dict[str, Any] | None) -> dict[str, Any] | None:
    """``spec.rollout.analysis`` with the API's defaults filled in; None when it is switched off
    (``enabled: false``). An absent analysis is the default one: a rollout promotes only on evidence."""
    merged = {**DEFAULTS, **(spec_analysis or {})}
    return merged if merged.get("enabled", True) else None


def recheck_seconds(pause: float) -> float:
    """How long after a failed or inconclusive check the next one runs: the step's pause (the measurement
    window), at least 10 s, so the limits count windows, not reconcile wake-ups."""
    return max(MIN_RECHECK_SECONDS, pause)


@dataclass(frozen=True)
class RequestStats:
    """Requests of one version over a window: total, 5xx errors, p99 latency in ms (None if unknown)."""

    requests: float
    errors: float
    p99_ms: float | None


@runtime_checkable
class MetricsProvider(Protocol):
    async def request_stats(
        self, *, namespace: str, service: str, model: str, version: int, window_seconds: float
    ) -> RequestStats | None:
        """None when the source cannot answer (never a failure by itself)."""
        ...


@dataclass(frozen=True)
class AnalysisResult:
    verdict: Verdict
    message: str


def assess(stats: RequestStats | None, cfg: dict[str, Any]) -> AnalysisResult:
    """Pure SLO assessment against ``spec.rollout.analysis`` (camelCase dict, defaults as the API)."""
    cfg = {**DEFAULTS, **cfg}
    max_err = float(cfg["maxErrorRate"])
    max_p99 = float(cfg["maxLatencyP99Ms"])
    min_req = int(cfg["minRequests"])
    if stats is None:
        return AnalysisResult("Inconclusive", "metrics source unavailable")
    if stats.requests < min_req:
        return AnalysisResult("Inconclusive", f"{stats.requests:g} requests < minRequests {min_req}")
    rate = stats.errors / stats.requests if stats.requests else 0.0
    problems = []
    if rate > max_err:
        problems.append(f"error rate {rate:.4f} > {max_err:g}")
    if stats.p99_ms is not None and stats.p99_ms > max_p99:
        problems.append(f"p99 {stats.p99_ms:.1f}ms > {max_p99:g}ms")
    if problems:
        return AnalysisResult("Fail", "; ".join(problems) + f" over {stats.requests:g} requests")
    p99 = "n/a" if stats.p99_ms is None else f"{stats.p99_ms:.1f}ms"
    return AnalysisResult("Pass", f"error rate {rate:.4f}, p99 {p99} over {stats.requests:g} requests")


def load_provider(spec: str | None = None) -> MetricsProvider | None:
    """The provider named by ``module:attr`` (default: $ONNXOPS_METRICS_PROVIDER), else None."""
    spec = spec if spec is not None else os.environ.get(PROVIDER_ENV, "")
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"{PROVIDER_ENV} must be 'module:attribute', got {spec!r}")
    obj: Any = getattr(importlib.import_module(module), attr)
    if not hasattr(obj, "request_stats") and callable(obj):
        obj = obj()
    if not isinstance(obj, MetricsProvider):
        raise TypeError(f"{spec} has no async request_stats()")
    return obj
