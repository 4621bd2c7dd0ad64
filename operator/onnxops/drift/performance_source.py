"""Where the feedback counters come from: Prometheus, or a direct scrape of the serving pods.

Same style as the drift sources (``drift/prometheus.py``, ``drift/scrape.py``): one evaluation returns the
window's per-version ``PerfCounts`` or an ``Inconclusive`` with the reason. Unlike the drift counts, a
feedback series' ``version`` is the version that *answered* the request, not the pod's own: a replica of
v3 may count a label for v2. So the pods' window deltas are summed by the series' version label, over every
pod of the service.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from onnxops.drift import names as N
from onnxops.drift.live import Inconclusive
from onnxops.drift.performance import (
    FAMILIES,
    METRICS,
    PerfCounts,
    PerfValues,
    from_samples,
    prometheus_queries,
    unresolved,
)
from onnxops.drift.prometheus import DEFAULT_TIMEOUT_S, PrometheusError, instant_query
from onnxops.drift.scrape import (
    ScrapeState,
    Snapshot,
    Target,
    advance,
    parse_key,
    scrape,
    series_key,
    window_delta,
)
from onnxops.drift.window import promql_duration


@dataclass(frozen=True)
class Performance:
    """One evaluation: per version the counts, and the items no replica could tie to a version."""

    versions: Mapping[str, PerfCounts | PerfValues]
    unresolved: float = 0.0


def from_label_job(
    result: Mapping[str, Any] | None, failure: tuple[str, str] | None = None
) -> Performance | Inconclusive:
    """The label-file evaluation Job's result (its termination message, ``trainer/evaluate_labels.py``) as
    one evaluation: per version ``PerfValues`` (labels, accuracy and f1, or mae and rmse); the labels whose
    id was not a captured row of the window as ``unresolved``. A failed Job (``ok: false`` with its reason,
    or ``failure`` when it left no result) is inconclusive, never an action."""
    if result is None or not result.get("ok"):
        if result is not None:
            return Inconclusive(
                str(result.get("reason") or "LabelEvaluationFailed"), str(result.get("message") or "")[:500]
            )
        reason, message = failure or ("LabelEvaluationFailed", "the evaluation Job left no result")
        return Inconclusive(reason, message[:500])
    versions: dict[str, PerfCounts | PerfValues] = {}
    matched = 0
    for v, e in (result.get("versions") or {}).items():
        if not isinstance(e, Mapping):
            continue
        n = int(e.get("labels") or 0)
        matched += n
        versions[str(v)] = PerfValues(
            n, {m: float(e[m]) for m in METRICS if isinstance(e.get(m), int | float)}
        )
    labels = result.get("labels")
    unmatched = max(0, int(labels) - matched) if isinstance(labels, int | float) else 0
    return Performance(versions, float(unmatched))


def parse_feedback(text: str, model: str, service: str | None = None) -> dict[str, float]:
    """The feedback series of ``model`` (of InferenceService ``service`` when given) in an exposition."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name not in FAMILIES or s.labels.get(N.LABEL_MODEL) != model:
                continue
            if service is None or s.labels.get(N.LABEL_SERVICE) == service:
                key = series_key(s.name, s.labels)
                out[key] = out.get(key, 0.0) + float(s.value)
    return out


async def fetch_performance_prometheus(
    base_url: str,
    model: str,
    window: str | float,
    *,
    extra_matchers: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    at: float | None = None,
    session: aiohttp.ClientSession | None = None,
) -> Performance | Inconclusive:
    try:
        qs = prometheus_queries(model, promql_duration(window), extra_matchers or {})
    except ValueError as exc:
        return Inconclusive("InvalidWindow", str(exc))
    own = session is None
    sess = session or aiohttp.ClientSession()
    try:
        results = await asyncio.gather(
            *(instant_query(sess, base_url, q, timeout_s, at) for q in qs.values())
        )
    except PrometheusError as exc:
        return Inconclusive("PrometheusUnavailable", str(exc))
    finally:
        if own:
            await sess.close()
    samples = [
        (name, labels, value)
        for name, series in zip(qs, results, strict=True)
        for labels, value in series
        if not math.isnan(value)
    ]
    return Performance(from_samples(samples), unresolved(samples))


async def fetch_performance_scrape(
    targets: Sequence[Target],
    model: str,
    state: ScrapeState,
    window_s: float,
    now: float,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    session: aiohttp.ClientSession | None = None,
    service: str | None = None,
) -> tuple[Performance | Inconclusive, ScrapeState]:
    """Scrape every pod once; the window's increase of the feedback counters summed over the pods, by the
    series' version. Inconclusive ("ScrapeFailed") when no pod answered, ("WarmingUp") before any pod has
    an earlier snapshot. A pod that failed keeps its old snapshots (its labels count at the next success)."""
    own = session is None
    sess = session or aiohttp.ClientSession()
    try:
        texts = await asyncio.gather(
            *(scrape(sess, t.url, timeout_s) for t in targets), return_exceptions=True
        )
    finally:
        if own:
            await sess.close()
    new_state: ScrapeState = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    errors: list[str] = []
    windows = 0
    for t, text in zip(targets, texts, strict=True):
        old = state.get(t.pod, [])
        if isinstance(text, BaseException):
            errors.append(str(text))
            if old:
                new_state[t.pod] = list(old)
            continue
        try:
            current = Snapshot(now, parse_feedback(text, model, service))
        except ValueError as exc:
            errors.append(f"{t.pod}: unparsable /metrics: {exc}")
            continue
        d = window_delta(old, current, window_s)
        if d is not None:
            windows += 1
            for key, value in d.items():
                name, labels = parse_key(key)
                samples.append((name, labels, value))
        new_state[t.pod] = advance(old, current, window_s)
    if not windows:
        if errors:
            return Inconclusive("ScrapeFailed", "; ".join(errors)[:500]), new_state
        if not targets:
            return Inconclusive("NoTargets", "no serving pod"), new_state
        return Inconclusive("WarmingUp", "first scrape of every pod: no window yet"), new_state
    return Performance(from_samples(samples), unresolved(samples)), new_state
