"""Turn window increases of the server's metrics into ``LiveCounts`` per version (pure).

Both sources produce the same intermediate form, a list of ``Sample(name, labels, value)`` where
``value`` is the increase over the window of the series ``name{labels}`` (summed over pods), ``name``
being the exposition name (``onnxops_feature_value_bucket``, ``onnxops_requests_total``, ...).
Cumulative histogram buckets are differenced after sorting ``le`` numerically (``+Inf`` last) and checked
against the profile's edges.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from onnxops.drift import names as N
from onnxops.drift.live import Inconclusive, LiveCounts
from onnxops.profile import NumericFeature, NumericPrediction, Profile

BUCKET = "_bucket"


class Sample(NamedTuple):
    name: str
    labels: Mapping[str, str]
    value: float


def le_value(le: str) -> float:
    """Numeric value of an ``le`` label ("+Inf" -> inf). Raises ValueError on garbage."""
    return math.inf if le.strip() in ("+Inf", "Inf", "inf", "+inf") else float(le)


def cumulative_to_bins(buckets: Iterable[tuple[str, float]]) -> tuple[list[float], list[float]]:
    """``(le, cumulative)`` pairs in any order -> (upper bounds without +Inf, per-bin counts incl. +Inf bin).

    Differences are clipped at 0 (independent extrapolation of each bucket's ``increase`` can leave tiny
    negative steps). Raises ValueError when there is no ``+Inf`` bucket.
    """
    pts = sorted(((le_value(le), float(v)) for le, v in buckets), key=lambda t: t[0])
    if not pts or not math.isinf(pts[-1][0]):
        raise ValueError("histogram without a +Inf bucket")
    bins, prev = [], 0.0
    for _, cum in pts:
        bins.append(max(cum - prev, 0.0))
        prev = max(cum, prev)
    return [b for b, _ in pts[:-1]], bins


def histogram_quantile(q: float, buckets: Iterable[tuple[str, float]]) -> float | None:
    """Prometheus' ``histogram_quantile`` on cumulative ``(le, count)`` pairs; None when undefined."""
    pts = sorted(((le_value(le), float(v)) for le, v in buckets), key=lambda t: t[0])
    if len(pts) < 2 or not math.isinf(pts[-1][0]) or pts[-1][1] <= 0 or not 0 <= q <= 1:
        return None
    counts: list[float] = []
    for _, c in pts:  # enforce monotonic counts, as Prometheus does
        counts.append(max(c, counts[-1]) if counts else c)
    rank = q * counts[-1]
    b = next(i for i, c in enumerate(counts) if c >= rank)
    if b == len(pts) - 1:
        return pts[-2][0]
    if b == 0 and pts[0][0] <= 0:
        return pts[0][0]
    start, before = (0.0, 0.0) if b == 0 else (pts[b - 1][0], counts[b - 1])
    end, count = pts[b][0], counts[b] - before
    if count <= 0:
        return end
    return start + (end - start) * ((rank - before) / count)


def _same_edges(bounds: Sequence[float], edges: Sequence[float]) -> bool:
    return len(bounds) == len(edges) and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(bounds, edges, strict=True)
    )


def _bins(
    version: str, what: str, buckets: list[tuple[str, float]], edges: Sequence[float] | None
) -> list[float]:
    bounds, bins = cumulative_to_bins(buckets)
    if edges is not None and not _same_edges(bounds, edges):
        raise ValueError(
            f"v{version} {what}: live buckets {bounds} do not match the profile's edges {list(edges)}"
        )
    return bins


def assemble(
    samples: Iterable[Sample],
    profiles: Mapping[str, Profile | None],
    *,
    latency_p99: Mapping[str, float] | None = None,
) -> dict[str, LiveCounts | Inconclusive]:
    """Per version: LiveCounts, or Inconclusive when the buckets do not line up with its profile.

    ``profiles`` maps version -> profile (None: take the buckets as they are). Versions with no sample get
    an Inconclusive "NoData". ``latency_p99`` (seconds, e.g. from PromQL's histogram_quantile) overrides the
    p99 computed here from ``onnxops_request_duration_seconds_bucket``.
    """
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        v = s.labels.get(N.LABEL_VERSION)
        if v is not None:
            grouped[v].append(s)
    out: dict[str, LiveCounts | Inconclusive] = {}
    for version in set(profiles) | set(grouped):
        rows = grouped.get(version)
        if not rows:
            out[version] = Inconclusive("NoData", f"no series for version {version} in the window")
            continue
        try:
            out[version] = _one(version, rows, profiles.get(version), latency_p99)
        except ValueError as exc:
            out[version] = Inconclusive("BucketMismatch", str(exc))
    return out


@dataclass
class _Tally:
    """One version's samples summed by series: feature histograms, categories, missing values,
    predictions, rows, requests/errors and the latency histogram."""

    hist: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: defaultdict(list))
    pred_hist: list[tuple[str, float]] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    categorical: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    missing: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    classes: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    rows: float | None = None
    requests: float = 0.0
    errors: float = 0.0

    def add(self, name: str, labels: Mapping[str, str], value: float) -> None:
        feature = labels.get(N.LABEL_FEATURE, "")
        if name == N.FEATURE_VALUE + BUCKET:
            self.hist[feature].append((labels["le"], value))
        elif name == N.FEATURE_CATEGORY:
            cat = labels.get(N.LABEL_CATEGORY, "")
            self.categorical[feature][cat] = self.categorical[feature].get(cat, 0.0) + value
        elif name == N.FEATURE_MISSING:
            self.missing[feature] += value
        elif name == N.PREDICTION_CLASS:
            self.classes[labels.get(N.LABEL_CLASS, "")] += value
        elif name == N.PREDICTION_VALUE + BUCKET:
            self.pred_hist.append((labels["le"], value))
        elif name == N.ROWS:
            self.rows = (self.rows or 0.0) + value
        elif name == N.REQUESTS:
            self.requests += value
            if labels.get(N.LABEL_CODE, "").startswith("5"):
                self.errors += value
        elif name == N.REQUEST_DURATION + BUCKET:
            self.latency[labels["le"]] += value


def _one(
    version: str, samples: list[Sample], profile: Profile | None, latency_p99: Mapping[str, float] | None
) -> LiveCounts:
    t = _Tally()
    for name, labels, value in samples:
        t.add(name, labels, value)
    numeric: dict[str, list[float]] = {}
    for feature, buckets in t.hist.items():
        ref = _profile_feature(profile, feature)
        if profile is not None and not isinstance(ref, NumericFeature):
            continue  # a feature the profile does not know as numeric: ignore it
        numeric[feature] = _bins(version, f"feature {feature!r}", _merge(buckets), ref.edges if ref else None)
    pred_bins = None
    if t.pred_hist:
        pref = profile.prediction if profile is not None else None
        edges = pref.edges if isinstance(pref, NumericPrediction) else None
        pred_bins = _bins(version, "prediction", _merge(t.pred_hist), edges)
    rows = t.rows
    if rows is None:  # no rows counter: the busiest feature's observations
        per_feature = [sum(b) + t.missing.get(f, 0.0) for f, b in numeric.items()]
        per_feature += [sum(c.values()) + t.missing.get(f, 0.0) for f, c in t.categorical.items()]
        rows = max(per_feature, default=0.0)
    p99 = (latency_p99 or {}).get(version)
    if p99 is None and t.latency:
        p99 = histogram_quantile(0.99, t.latency.items())
    return LiveCounts(
        version=version,
        rows=rows,
        numeric=numeric,
        categorical=dict(t.categorical),
        missing=dict(t.missing),
        prediction_classes=dict(t.classes),
        prediction_bins=pred_bins,
        requests=t.requests,
        errors=t.errors,
        latency_p99_s=p99,
    )


def _merge(buckets: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Sum buckets with the same bound (several pods, or "1" vs "1.0" spellings)."""
    acc: dict[float, float] = defaultdict(float)
    label: dict[float, str] = {}
    for le, v in buckets:
        x = le_value(le)
        acc[x] += v
        label.setdefault(x, le)
    return [(label[x], acc[x]) for x in acc]


def _profile_feature(profile: Profile | None, name: str) -> NumericFeature | None:
    if profile is None:
        return None
    for f in profile.features:
        if f.name == name:
            return f if isinstance(f, NumericFeature) else None
    return None
