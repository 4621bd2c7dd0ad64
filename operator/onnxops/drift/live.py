"""Live counts of one served version over a window, and their scoring against the version's profile.

``LiveCounts`` is what the sources (Prometheus or a direct scrape) produce per version; ``score_version``
turns it into per-feature scores and one aggregated score (pure).

Aggregation over features (the features watched, plus ``__prediction__`` when predictions are included):

- ``psi``, ``js``, ``wasserstein``: the feature score is the statistic; the version score is the MAX over
  features; a window breaches when ``score > threshold``.
- ``ks``, ``chi2`` (p-value tests): with ``m`` features scored, the Bonferroni-adjusted p-value of a feature
  is ``min(1, m·p)`` and its score is ``1 − p_adj``; the version's adjusted p-value is the minimum over
  features, its score ``1 − p_adj``, and a window breaches when ``p_adj < threshold`` (the threshold is the
  family-wise significance level α, in (0, 1)).

Which statistic per kind of feature (live data are binned, never raw):

========== ======================= ============================ ====================================
method     numeric (profile bins)  categorical / class          numeric prediction
========== ======================= ============================ ====================================
psi        PSI on bins             PSI on shares                PSI on bins
js         JS on bins              JS on shares                 JS on bins
ks         KS from bin CDFs        chi2 (KS needs an order)     KS from bin CDFs
wasserstein W from bins / std      JS (no metric on labels)     W from bins / (p90−p10 / 2.563)
chi2       chi2 on bins            chi2                         chi2 on bins
========== ======================= ============================ ====================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from onnxops.drift import stats
from onnxops.drift.names import PREDICTION_FEATURE
from onnxops.profile import CategoricalFeature, ClassPrediction, NumericFeature, NumericPrediction, Profile

PVALUE_METHODS = frozenset({"ks", "chi2"})
DISTANCE_METHODS = frozenset({"psi", "js", "wasserstein"})
NORMAL_P10_P90_SPAN = 2.5631031310892  # (z_0.9 − z_0.1) of a standard normal


@dataclass(frozen=True)
class LiveCounts:
    """One version's observations in one window (counts may be fractional: Prometheus extrapolates)."""

    version: str
    rows: float = 0.0
    numeric: Mapping[str, Sequence[float]] = field(default_factory=dict)  # bins aligned with profile edges
    categorical: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    missing: Mapping[str, float] = field(default_factory=dict)
    prediction_classes: Mapping[str, float] = field(default_factory=dict)
    prediction_bins: Sequence[float] | None = None
    requests: float = 0.0
    errors: float = 0.0  # 5xx responses
    latency_p99_s: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None


@dataclass(frozen=True)
class Inconclusive:
    """No usable measurement (source unreachable, timeout, bad data). Never counts as drift."""

    reason: str
    message: str


@dataclass(frozen=True)
class VersionScore:
    version: str
    samples: float
    conclusive: bool
    score: float | None = None  # aggregated (higher = more drift)
    breach: bool = False
    severity: float | None = None  # score relative to the threshold: > 1 breaches
    features: dict[str, float] = field(default_factory=dict)  # per-feature score
    pvalue: float | None = None  # Bonferroni-adjusted minimum p-value (ks/chi2)
    message: str = ""


def _counts_of(bins: Sequence[float]) -> np.ndarray:
    return np.asarray([float(v) for v in bins], dtype=float)


def _binned_stat(method: str, edges: Sequence[float], p: np.ndarray, q: np.ndarray, scale: float) -> float:
    if method == "psi":
        return stats.psi(p, q)
    if method == "js":
        return stats.js(p, q)
    if method == "ks":
        return stats.ks_binned(p, q)[1]
    if method == "chi2":
        return stats.chi2_pvalue(p, q)[1]
    return stats.wasserstein_binned(edges, p, q, scale)


def _category_stat(method: str, p: np.ndarray, q: np.ndarray) -> float:
    if method == "psi":
        return stats.psi(p, q)
    if method in ("ks", "chi2"):
        return stats.chi2_pvalue(p, q)[1]
    return stats.js(p, q)  # js, and wasserstein (labels have no metric)


Reference = NumericFeature | CategoricalFeature | ClassPrediction | NumericPrediction


def feature_statistic(method: str, ref: Reference, live: LiveCounts, name: str) -> float | None:
    """The raw statistic (distance, or p-value for ks/chi2) of one feature; None when the window has no
    observation of it. Raises ValueError when the live bins do not line up with the profile."""
    if isinstance(ref, NumericFeature | NumericPrediction):
        bins = live.prediction_bins if isinstance(ref, NumericPrediction) else live.numeric.get(name)
        if bins is None:
            return None
        q = _counts_of(bins)
        if q.size != len(ref.edges) + 1:
            raise ValueError(f"feature {name!r}: {q.size} live bins, the profile has {len(ref.edges) + 1}")
        if q.sum() <= 0 or sum(ref.counts) <= 0:
            return None
        if isinstance(ref, NumericFeature):
            scale = ref.std
        else:
            scale = (ref.edges[-1] - ref.edges[0]) / NORMAL_P10_P90_SPAN if ref.edges else 0.0
        return _binned_stat(method, ref.edges, _counts_of(ref.counts), q, scale)
    if isinstance(ref, ClassPrediction):
        cats, counts, current = ref.classes, ref.counts, live.prediction_classes
    else:
        cats, counts, current = ref.categories, ref.counts, live.categorical.get(name, {})
    if sum(current.values()) <= 0 or sum(counts) <= 0:
        return None
    _, p, q = stats.align_categories(cats, counts, current)
    return _category_stat(method, p, q)


def score_version(
    live: LiveCounts,
    profile: Profile,
    *,
    method: str,
    threshold: float,
    min_samples: int,
    features: Sequence[str] | None = None,
    include_predictions: bool = True,
) -> VersionScore:
    """Score one version's window against its profile (see the module docstring for the aggregation)."""
    if live.rows < min_samples:
        return VersionScore(
            live.version, live.rows, False, message=f"{live.rows:g} observations < minSamples {min_samples}"
        )
    if method in PVALUE_METHODS and not 0 < threshold < 1:
        return VersionScore(
            live.version,
            live.rows,
            False,
            message=f"threshold {threshold} is a significance level for {method}: need (0, 1)",
        )
    wanted = set(features) if features else None
    refs: dict[str, Reference] = {f.name: f for f in profile.features if wanted is None or f.name in wanted}
    if wanted is not None and (unknown := sorted(wanted - set(refs))):
        return VersionScore(live.version, live.rows, False, message=f"features not in the profile: {unknown}")
    if include_predictions and profile.prediction is not None:
        refs[PREDICTION_FEATURE] = profile.prediction
    raw: dict[str, float] = {}
    try:
        for name, ref in refs.items():
            value = feature_statistic(method, ref, live, name)
            if value is not None and not math.isnan(value):
                raw[name] = value
    except ValueError as exc:
        return VersionScore(live.version, live.rows, False, message=str(exc))
    if not raw:
        return VersionScore(live.version, live.rows, False, message="no feature observed in the window")
    if method in PVALUE_METHODS:
        m = len(raw)
        adjusted = {k: min(1.0, m * p) for k, p in raw.items()}
        p_adj = min(adjusted.values())
        severity = math.inf if p_adj <= 0 else math.log(p_adj) / math.log(threshold)
        scores = {k: 1.0 - v for k, v in adjusted.items()}
        return VersionScore(
            live.version,
            live.rows,
            True,
            score=1.0 - p_adj,
            breach=p_adj < threshold,
            severity=severity,
            features=scores,
            pvalue=p_adj,
            message=f"{method} adjusted p={p_adj:.3g} (alpha {threshold:g}, {m} features)",
        )
    score = max(raw.values())
    worst = max(raw, key=lambda k: raw[k])
    return VersionScore(
        live.version,
        live.rows,
        True,
        score=score,
        breach=score > threshold,
        severity=score / threshold,
        features=raw,
        message=f"{method}={score:.4g} (threshold {threshold:g}, worst {worst})",
    )
