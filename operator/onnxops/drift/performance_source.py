"""Where the feedback counters come from: Prometheus, or a direct scrape of the serving pods.

Same style as the drift sources, and their plumbing (``drift/prometheus.py``: ``fetch_queries``;
``drift/scrape.py``: ``scrape_all``, ``step_pods``, ``parse_series``): one evaluation returns the
window's per-version ``PerfCounts`` or an ``Inconclusive`` with the reason. Unlike the drift counts, a
feedback series' ``version`` is the version that *answered* the request, not the pod's own: a replica of
v3 may count a label for v2. So the pods' window deltas are summed by the series' version label, over every
pod of the service.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from onnxops.api.v1alpha1.termination import (
    MALFORMED_REASON,
    LabelEvalSuccess,
    MalformedResult,
    parse_label_eval_result,
)
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
from onnxops.drift.prometheus import DEFAULT_TIMEOUT_S, fetch_queries
from onnxops.drift.scrape import ScrapeState, Target, parse_key, parse_series, scrape_all, step_pods
from onnxops.drift.window import promql_duration


@dataclass(frozen=True)
class Performance:
    """One evaluation: per version the counts, and the items no replica could tie to a version."""

    versions: Mapping[str, PerfCounts | PerfValues]
    unresolved: float = 0.0


def from_label_job(
    result: Mapping[str, Any] | None, failure: tuple[str, str] | None = None
) -> Performance | Inconclusive:
    """The label-file evaluation Job's result (its termination message, ``trainer/evaluate_labels.py``,
    ``api/v1alpha1/termination.LabelEvalSuccess``) as one evaluation: per version ``PerfValues`` (labels,
    accuracy and f1, or mae and rmse); the labels whose id was not a captured row of the window as
    ``unresolved``. A failed Job (``ok: false`` with its reason, or ``failure`` when it left no result) and
    a result that breaks the contract (``MalformedResult``, naming the field) are inconclusive, never an
    action."""
    if result is None:
        reason, message = failure or ("LabelEvaluationFailed", "the evaluation Job left no result")
        return Inconclusive(reason, message[:500])
    try:
        res = parse_label_eval_result(dict(result))
    except MalformedResult as exc:
        return Inconclusive(MALFORMED_REASON, str(exc)[:500])
    if not isinstance(res, LabelEvalSuccess):
        return Inconclusive(res.reason or "LabelEvaluationFailed", res.message[:500])
    versions: dict[str, PerfCounts | PerfValues] = {}
    for v, e in res.versions.items():
        values = {m: getattr(e, m) for m in METRICS if getattr(e, m, None) is not None}
        versions[v] = PerfValues(e.labels, values)
    matched = sum(e.labels for e in res.versions.values())
    unmatched = max(0, res.labels - matched) if res.labels is not None else 0
    return Performance(versions, float(unmatched))


def parse_feedback(text: str, model: str, service: str | None = None) -> dict[str, float]:
    """The feedback series of ``model`` (of InferenceService ``service`` when given) in an exposition."""
    return parse_series(text, FAMILIES, model, service)


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
    results = await fetch_queries(base_url, qs, timeout_s=timeout_s, at=at, session=session)
    if isinstance(results, Inconclusive):
        return results
    samples = [
        (name, labels, value) for name, series in results for labels, value in series if not math.isnan(value)
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
    texts = await scrape_all(targets, timeout_s, session)
    pods, new_state = step_pods(
        targets, texts, state, lambda text: parse_feedback(text, model, service), window_s, now
    )
    errors = [p.error for p in pods if p.error is not None]
    deltas = [p.delta for p in pods if p.delta is not None]
    windows = len(deltas)
    samples = [(*parse_key(key), value) for d in deltas for key, value in d.items()]
    if not windows:
        if errors:
            return Inconclusive("ScrapeFailed", "; ".join(errors)[:500]), new_state
        if not targets:
            return Inconclusive("NoTargets", "no serving pod"), new_state
        return Inconclusive("WarmingUp", "first scrape of every pod: no window yet"), new_state
    return Performance(from_samples(samples), unresolved(samples)), new_state
