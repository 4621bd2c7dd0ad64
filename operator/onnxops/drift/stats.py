"""Drift statistics (pure numpy/scipy).

Binned statistics take *counts* per bin (the profile's right-closed bins ``(e_{i-1}, e_i]``, which are
exactly Prometheus ``le`` buckets, or category counts aligned with :func:`align_categories`):

- PSI = Σ (q − p)·ln(q / p) over the shares ``p`` (reference) and ``q`` (current); a share of 0 is
  replaced by ``EMPTY_SHARE`` (1e-4) without renormalising.
- Jensen–Shannon *distance* (``scipy.spatial.distance.jensenshannon``, natural log) on the same bins.
- chi-square test of the 2×K contingency table (``scipy.stats.chi2_contingency``, defaults) with all-zero
  columns dropped.
- ``ks_binned`` / ``wasserstein_binned``: KS and Wasserstein from bin counts only (the live path, where no
  raw values exist). They are exact when every value lies on a bin edge and approximations otherwise.

Sample statistics take raw values (NaNs dropped): two-sample KS (``scipy.stats.ks_2samp`` defaults) and the
Wasserstein distance (``scipy.stats.wasserstein_distance``) divided by ``max(std_ref (ddof=0), 1e-3)``.

Every function raises ``ValueError`` with a clear message on empty input instead of returning NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from onnxops.profile import bin_counts

EMPTY_SHARE = 1e-4
MIN_SCALE = 1e-3

ArrayLike = Sequence[float] | np.ndarray


def _counts(name: str, counts: ArrayLike) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D sequence of counts")
    if np.any(~np.isfinite(c)) or np.any(c < 0):
        raise ValueError(f"{name}: counts must be finite and >= 0")
    if c.sum() <= 0:
        raise ValueError(f"{name}: no observations (all counts are 0)")
    return c


def _pair(p_counts: ArrayLike, q_counts: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = _counts("reference", p_counts)
    q = _counts("current", q_counts)
    if p.shape != q.shape:
        raise ValueError(f"reference and current have different numbers of bins: {p.size} != {q.size}")
    return p, q


def shares(counts: ArrayLike) -> np.ndarray:
    """Counts -> shares summing to 1."""
    c = _counts("counts", counts)
    out: np.ndarray = c / c.sum()
    return out


def psi(p_counts: ArrayLike, q_counts: ArrayLike) -> float:
    """Population stability index of current ``q`` against reference ``p`` (counts on the same bins)."""
    p, q = _pair(p_counts, q_counts)
    ps = p / p.sum()
    qs = q / q.sum()
    ps = np.where(ps == 0, EMPTY_SHARE, ps)
    qs = np.where(qs == 0, EMPTY_SHARE, qs)
    return float(np.sum((qs - ps) * np.log(qs / ps)))


def js(p_counts: ArrayLike, q_counts: ArrayLike) -> float:
    """Jensen–Shannon distance (natural log) between the two binned distributions."""
    p, q = _pair(p_counts, q_counts)
    value = float(jensenshannon(p / p.sum(), q / q.sum()))
    return 0.0 if math.isnan(value) else value


def chi2_pvalue(p_counts: ArrayLike, q_counts: ArrayLike) -> tuple[float, float]:
    """(statistic, p-value) of the chi-square test of the 2×K table; all-zero columns are dropped.

    With one non-empty column left there is nothing to test: (0.0, 1.0).
    """
    p, q = _pair(p_counts, q_counts)
    table = np.vstack([p, q])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    res = sps.chi2_contingency(table)
    return float(res.statistic), float(res.pvalue)


def _sample(name: str, values: ArrayLike) -> np.ndarray:
    raw = np.asarray(values, dtype=float).ravel()
    x: np.ndarray = raw[~np.isnan(raw)]
    if x.size == 0:
        raise ValueError(f"{name}: no non-missing values")
    return x


def ks(reference: ArrayLike, current: ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov (``scipy.stats.ks_2samp`` defaults): (statistic, p-value)."""
    res = sps.ks_2samp(_sample("reference", reference), _sample("current", current))
    return float(res.statistic), float(res.pvalue)


def wasserstein(reference: ArrayLike, current: ArrayLike) -> float:
    """Wasserstein-1 distance divided by ``max(std(reference, ddof=0), 1e-3)``."""
    ref = _sample("reference", reference)
    cur = _sample("current", current)
    return float(sps.wasserstein_distance(ref, cur)) / max(float(np.std(ref)), MIN_SCALE)


def ks_binned(p_counts: ArrayLike, q_counts: ArrayLike) -> tuple[float, float]:
    """KS from bin counts: the largest CDF gap at the bin edges, p-value by scipy's asymptotic formula.

    Equals ``ks_2samp(x, y, method="asymp")`` when all values lie on the bin edges; otherwise the
    statistic is a lower bound of the raw-sample statistic.
    """
    p, q = _pair(p_counts, q_counts)
    n1, n2 = p.sum(), q.sum()
    d = float(np.max(np.abs(np.cumsum(p) / n1 - np.cumsum(q) / n2)))
    d = min(max(d, 0.0), 1.0)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = np.round(m * n / (m + n))
    if en < 1:  # one row on each side: scipy's distribution is undefined (nan); no evidence of a difference
        return d, 1.0
    pvalue = float(np.clip(sps.kstwo.sf(d, en), 0.0, 1.0))
    return d, pvalue


def wasserstein_binned(
    edges: Sequence[float], p_counts: ArrayLike, q_counts: ArrayLike, scale: float
) -> float:
    """Wasserstein-1 from counts on right-closed bins, divided by ``max(scale, 1e-3)``.

    Σ |F(e_i) − G(e_i)|·(e_{i+1} − e_i) over the interior edges: exact when every value lies on an edge
    (the CDFs are then constant between edges); mass beyond the outer edges is taken to sit on them.
    """
    p, q = _pair(p_counts, q_counts)
    e = np.asarray(edges, dtype=float)
    if p.size != e.size + 1:
        raise ValueError(f"expected len(edges)+1 = {e.size + 1} bins, got {p.size}")
    if e.size < 2:
        return 0.0
    gap = np.abs(np.cumsum(p)[:-1] / p.sum() - np.cumsum(q)[:-1] / q.sum())  # CDF gap at each edge
    return float(np.sum(gap[:-1] * np.diff(e))) / max(float(scale), MIN_SCALE)


def binned(edges: Sequence[float], values: ArrayLike) -> np.ndarray:
    """Counts of raw values in the profile's right-closed bins (NaNs not counted)."""
    return bin_counts(edges, np.asarray(values, dtype=float))


def missing_share(values: Iterable[object]) -> float:
    """Share of missing values (None, empty string or NaN)."""
    vals = list(values)
    if not vals:
        return 0.0
    return sum(1 for v in vals if is_missing(v)) / len(vals)


def is_missing(v: object) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() == ""
    if isinstance(v, float | np.floating):
        return bool(np.isnan(v))
    return False


def align_categories(
    ref_categories: Sequence[str],
    ref_counts: Sequence[float],
    current: Mapping[str, float],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Align current category counts with the reference's: unseen categories get their own bins (sorted,
    after the reference's), reference categories absent now count 0."""
    if len(ref_categories) != len(ref_counts):
        raise ValueError("reference categories and counts differ in length")
    known = list(ref_categories)
    unseen = sorted(c for c in current if c not in set(known))
    cats = known + unseen
    p = np.array([float(c) for c in ref_counts] + [0.0] * len(unseen))
    q = np.array([float(current.get(c, 0.0)) for c in cats])
    return cats, p, q


def category_counts(values: Iterable[object]) -> dict[str, int]:
    """Counts of the non-missing values as strings."""
    out: dict[str, int] = {}
    for v in values:
        if is_missing(v):
            continue
        key = str(v)
        out[key] = out.get(key, 0) + 1
    return out
