"""Offline comparison of two tables of raw values (the `onnxops drift compare` command's engine).

A *frame* is a mapping ``column name -> sequence of values`` (strings as read from a CSV, numbers, None or
NaN). A column is numeric when every non-missing value in both frames parses as a float, categorical
otherwise. Missing values (None, empty string, NaN) are dropped per feature and reported as the current
frame's missing share.

Per feature, every selected method that applies is computed:

- numeric: ``psi`` and ``js`` on the reference's type-7 decile edges (``onnxops.profile.quantile_edges``)
  with right-closed bins; ``ks`` (statistic and p-value, ``scipy.stats.ks_2samp``); ``wasserstein``
  (normalised by the reference's std).
- categorical: ``psi`` and ``js`` on category shares (unseen categories are their own bins) and ``chi2``.

A feature drifts when any computed statistic breaches its threshold: PSI > psi, JS > js,
Wasserstein > wasserstein, or a p-value below ``alpha / m`` (Bonferroni), where ``m`` is the number of
features the test (KS or chi2) was computed for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from onnxops.drift import stats
from onnxops.profile import quantile_edges

Method = Literal["psi", "js", "ks", "wasserstein", "chi2"]
METHODS: tuple[Method, ...] = ("psi", "js", "ks", "wasserstein", "chi2")
NUMERIC_METHODS: frozenset[str] = frozenset({"psi", "js", "ks", "wasserstein"})
CATEGORICAL_METHODS: frozenset[str] = frozenset({"psi", "js", "chi2"})

Frame = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class Thresholds:
    psi: float = 0.2
    js: float = 0.1
    ks_alpha: float = 0.05
    wasserstein: float = 0.1
    chi2_alpha: float = 0.05

    def validate(self) -> None:
        for name in ("psi", "js", "wasserstein"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} threshold must be > 0, got {getattr(self, name)}")
        for name in ("ks_alpha", "chi2_alpha"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")


@dataclass
class FeatureReport:
    name: str
    kind: Literal["numeric", "categorical"]
    n_reference: int
    n_current: int
    missing_share: float
    psi: float | None = None
    js: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    chi2_pvalue: float | None = None
    drift: bool = False
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("psi", "js", "ks_statistic", "ks_pvalue", "wasserstein", "chi2_pvalue"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["missing_share"] = self.missing_share
        out["drift"] = self.drift
        return out


@dataclass
class Report:
    features: dict[str, FeatureReport] = field(default_factory=dict)
    drift: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"features": {k: f.to_json() for k, f in self.features.items()}, "drift": self.drift}


def _as_float(v: Any) -> float | None:
    if stats.is_missing(v):
        return None
    if isinstance(v, bool):
        raise ValueError("bool")
    return float(v)


def is_numeric(*columns: Sequence[Any]) -> bool:
    """True when every non-missing value of every column parses as a float."""
    for col in columns:
        for v in col:
            try:
                _as_float(v)
            except (TypeError, ValueError):
                return False
    return True


def numeric_values(column: Sequence[Any]) -> np.ndarray:
    """Floats of a numeric column with missing values (and NaN) removed."""
    out = [x for x in (_as_float(v) for v in column) if x is not None and not math.isnan(x)]
    return np.asarray(out, dtype=float)


def _numeric_report(
    name: str, ref_col: Sequence[Any], cur_col: Sequence[Any], methods: frozenset[str]
) -> FeatureReport:
    ref, cur = numeric_values(ref_col), numeric_values(cur_col)
    rep = FeatureReport(name, "numeric", int(ref.size), int(cur.size), stats.missing_share(cur_col))
    if ref.size == 0 or cur.size == 0:
        rep.note = "no non-missing values in " + ("reference" if ref.size == 0 else "current")
        return rep
    if methods & {"psi", "js"}:
        edges = quantile_edges(ref)
        p, q = stats.binned(edges, ref), stats.binned(edges, cur)
        if "psi" in methods:
            rep.psi = stats.psi(p, q)
        if "js" in methods:
            rep.js = stats.js(p, q)
    if "ks" in methods:
        rep.ks_statistic, rep.ks_pvalue = stats.ks(ref, cur)
    if "wasserstein" in methods:
        rep.wasserstein = stats.wasserstein(ref, cur)
    return rep


def _categorical_report(
    name: str, ref_col: Sequence[Any], cur_col: Sequence[Any], methods: frozenset[str]
) -> FeatureReport:
    ref_counts, cur_counts = stats.category_counts(ref_col), stats.category_counts(cur_col)
    n_ref, n_cur = sum(ref_counts.values()), sum(cur_counts.values())
    rep = FeatureReport(name, "categorical", n_ref, n_cur, stats.missing_share(cur_col))
    if n_ref == 0 or n_cur == 0:
        rep.note = "no non-missing values in " + ("reference" if n_ref == 0 else "current")
        return rep
    cats = sorted(ref_counts)
    _, p, q = stats.align_categories(cats, [ref_counts[c] for c in cats], cur_counts)
    if "psi" in methods:
        rep.psi = stats.psi(p, q)
    if "js" in methods:
        rep.js = stats.js(p, q)
    if "chi2" in methods:
        rep.chi2_pvalue = stats.chi2_pvalue(p, q)[1]
    return rep


def compare_frames(
    reference: Frame,
    current: Frame,
    methods: Sequence[str] | None = None,
    thresholds: Thresholds | None = None,
) -> Report:
    """Compare every column of ``reference`` with the same column of ``current``.

    Raises ``ValueError`` for an unknown method, bad thresholds, or a reference column absent from
    ``current``. Columns only in ``current`` are ignored.
    """
    th = thresholds or Thresholds()
    th.validate()
    chosen = frozenset(methods or METHODS)
    unknown = sorted(chosen - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    missing = [c for c in reference if c not in current]
    if missing:
        raise ValueError(f"column(s) {missing} of the reference are missing from the current data")
    report = Report()
    for name, ref_col in reference.items():
        cur_col = current[name]
        if is_numeric(ref_col, cur_col):
            report.features[name] = _numeric_report(name, ref_col, cur_col, chosen & NUMERIC_METHODS)
        else:
            report.features[name] = _categorical_report(name, ref_col, cur_col, chosen & CATEGORICAL_METHODS)
    _judge(report, th)
    return report


def _judge(report: Report, th: Thresholds) -> None:
    feats = list(report.features.values())
    m_ks = sum(1 for f in feats if f.ks_pvalue is not None)
    m_chi2 = sum(1 for f in feats if f.chi2_pvalue is not None)
    for f in feats:
        f.drift = bool(
            (f.psi is not None and f.psi > th.psi)
            or (f.js is not None and f.js > th.js)
            or (f.wasserstein is not None and f.wasserstein > th.wasserstein)
            or (f.ks_pvalue is not None and f.ks_pvalue < th.ks_alpha / m_ks)
            or (f.chi2_pvalue is not None and f.chi2_pvalue < th.chi2_alpha / m_chi2)
        )
    report.drift = any(f.drift for f in feats)
