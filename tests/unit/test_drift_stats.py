"""Drift statistics against scipy/numpy computed directly, and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from onnxops.drift import stats
from onnxops.profile import bin_counts, quantile_edges

TOL = 1e-6


def _psi_ref(p: np.ndarray, q: np.ndarray) -> float:
    # independent formulation: loop over bins
    total = 0.0
    ps, qs = p / p.sum(), q / q.sum()
    for a, b in zip(ps, qs, strict=True):
        a = a if a > 0 else 1e-4
        b = b if b > 0 else 1e-4
        total += (b - a) * math.log(b / a)
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binned_statistics_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 1, 500)
    cur = rng.normal(0.4, 1.3, 300)
    edges = quantile_edges(ref)
    p, q = bin_counts(edges, ref), bin_counts(edges, cur)
    assert stats.psi(p, q) == pytest.approx(_psi_ref(p.astype(float), q.astype(float)), abs=TOL)
    assert stats.js(p, q) == pytest.approx(float(jensenshannon(p / p.sum(), q / q.sum())), abs=TOL)
    res = sps.chi2_contingency(np.vstack([p, q]))
    assert stats.chi2_pvalue(p, q)[1] == pytest.approx(res.pvalue, abs=TOL)
    assert stats.chi2_pvalue(p, q)[0] == pytest.approx(res.statistic, abs=TOL)


@pytest.mark.parametrize("n_ref,n_cur", [(500, 300), (3, 2), (20000, 15000)])
def test_sample_statistics_match_scipy(n_ref: int, n_cur: int) -> None:
    rng = np.random.default_rng(n_ref)
    ref = rng.lognormal(0, 0.5, n_ref)
    cur = rng.lognormal(0.1, 0.5, n_cur)
    res = sps.ks_2samp(ref, cur)
    assert stats.ks(ref, cur) == pytest.approx((res.statistic, res.pvalue), abs=TOL)
    expected = sps.wasserstein_distance(ref, cur) / max(np.std(ref), 1e-3)
    assert stats.wasserstein(ref, cur) == pytest.approx(expected, abs=TOL)


def test_identical_distributions_score_zero() -> None:
    counts = [10, 0, 5, 7]
    assert stats.psi(counts, counts) == 0.0
    assert stats.js(counts, counts) == 0.0
    assert stats.chi2_pvalue(counts, counts)[1] == pytest.approx(1.0)
    x = np.arange(50.0)
    assert stats.ks(x, x) == (0.0, 1.0)
    assert stats.wasserstein(x, x) == 0.0
    # same shares, different totals
    assert stats.psi([1, 2, 3], [10, 20, 30]) == pytest.approx(0.0, abs=1e-15)


def test_psi_hand_computed_with_empty_bins() -> None:
    # p = [0.5, 0.5, 0], q = [0.25, 0.25, 0.5]; empty share 0 -> 1e-4, not renormalised
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) * 2 + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert stats.psi([2, 2, 0], [1, 1, 2]) == pytest.approx(expected, abs=1e-12)
    # empty in the current window too
    expected2 = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert stats.psi([1, 1], [0, 4]) == pytest.approx(expected2, abs=1e-12)


def test_js_hand_computed() -> None:
    # disjoint supports: JS divergence = ln 2, distance = sqrt(ln 2)
    assert stats.js([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)), abs=1e-12)


def test_constant_feature() -> None:
    ref = np.full(100, 3.0)
    edges = quantile_edges(ref)
    assert edges == [3.0]
    cur_same = np.full(10, 3.0)
    cur_up = np.full(10, 4.0)
    assert stats.psi(stats.binned(edges, ref), stats.binned(edges, cur_same)) == 0.0
    # all mass moves from bin 0 to bin 1: 2 * (1 - 1e-4) * ln(1/1e-4)
    expected = 2 * (1 - 1e-4) * math.log(1 / 1e-4)
    assert stats.psi(stats.binned(edges, ref), stats.binned(edges, cur_up)) == pytest.approx(expected)
    # std 0 -> the 1e-3 floor: distance 1 / 1e-3
    assert stats.wasserstein(ref, cur_up) == pytest.approx(1.0 / 1e-3)
    assert stats.ks(ref, cur_up)[0] == 1.0


def test_nans_dropped_and_missing_share() -> None:
    ref = np.array([1.0, 2.0, np.nan, 3.0])
    cur = np.array([np.nan, 2.0, 3.0, np.nan])
    assert stats.ks(ref, cur) == pytest.approx(tuple(sps.ks_2samp([1, 2, 3], [2, 3])), abs=TOL)
    assert stats.missing_share(cur) == 0.5
    assert stats.missing_share(["a", "", None, "b"]) == 0.5
    assert stats.missing_share([]) == 0.0
    assert list(stats.binned([1.5], cur)) == [0, 2]


def test_tiny_windows() -> None:
    # one observation in the current window is still a valid (if noisy) window
    assert stats.psi([5, 5], [1, 0]) == pytest.approx(_psi_ref(np.array([5.0, 5]), np.array([1.0, 0])))
    assert stats.ks([1.0, 2.0], [5.0]) == pytest.approx(tuple(sps.ks_2samp([1.0, 2.0], [5.0])), abs=TOL)


def test_empty_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="current: no observations"):
        stats.psi([1, 2], [0, 0])
    with pytest.raises(ValueError, match="different numbers of bins"):
        stats.js([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="reference: no non-missing values"):
        stats.ks([np.nan], [1.0])
    with pytest.raises(ValueError, match=">= 0"):
        stats.psi([1, -1], [1, 1])


def test_chi2_drops_all_zero_columns_and_unseen_categories() -> None:
    cats, p, q = stats.align_categories(["a", "b", "c"], [10, 0, 5], {"a": 3, "z": 4})
    assert cats == ["a", "b", "c", "z"]
    assert list(p) == [10, 0, 5, 0] and list(q) == [3, 0, 0, 4]
    expected = sps.chi2_contingency(np.array([[10, 5, 0], [3, 0, 4]]))
    assert stats.chi2_pvalue(p, q) == pytest.approx((expected.statistic, expected.pvalue), abs=TOL)
    # a single non-empty column: nothing to test
    assert stats.chi2_pvalue([3, 0], [7, 0]) == (0.0, 1.0)


def test_ks_binned_equals_scipy_asymp_when_values_sit_on_edges() -> None:
    rng = np.random.default_rng(7)
    ref = rng.integers(0, 10, 400).astype(float)
    cur = rng.integers(2, 10, 250).astype(float)
    edges = [float(v) for v in range(0, 10)]  # every value is an edge
    p, q = bin_counts(edges, ref), bin_counts(edges, cur)
    res = sps.ks_2samp(ref, cur, method="asymp")
    assert stats.ks_binned(p, q) == pytest.approx((res.statistic, res.pvalue), abs=TOL)
    assert stats.ks_binned(p, p) == (0.0, 1.0)


def test_wasserstein_binned_equals_scipy_when_values_sit_on_edges() -> None:
    rng = np.random.default_rng(8)
    edges = [0.0, 0.5, 2.0, 3.0, 7.5]
    ref = rng.choice(edges, 300)
    cur = rng.choice(edges, 200, p=[0.1, 0.1, 0.2, 0.2, 0.4])
    p, q = bin_counts(edges, ref), bin_counts(edges, cur)
    scale = float(np.std(ref))
    expected = sps.wasserstein_distance(ref, cur) / scale
    assert stats.wasserstein_binned(edges, p, q, scale) == pytest.approx(expected, abs=TOL)
    assert stats.wasserstein_binned(edges, p, q, 0.0) == pytest.approx(
        sps.wasserstein_distance(ref, cur) / 1e-3, abs=1e-3
    )
    with pytest.raises(ValueError, match="len\\(edges\\)\\+1"):
        stats.wasserstein_binned(edges, [1, 2], [1, 2], 1.0)


counts_lists = st.lists(st.integers(min_value=0, max_value=1000), min_size=2, max_size=12)


@settings(max_examples=200, deadline=None)
@given(counts_lists, st.data())
def test_properties_of_binned_statistics(p: list[int], data: st.DataObject) -> None:
    q = data.draw(st.lists(st.integers(min_value=0, max_value=1000), min_size=len(p), max_size=len(p)))
    assume(sum(p) > 0 and sum(q) > 0)
    # every PSI term (q-p)·ln(q/p) is >= 0, so PSI >= 0, and 0 only for equal shares
    assert stats.psi(p, q) >= 0
    d = stats.js(p, q)
    assert 0 <= d <= math.sqrt(math.log(2)) + 1e-12
    assert d == pytest.approx(stats.js(q, p), abs=1e-12)
    assert 0 <= stats.chi2_pvalue(p, q)[1] <= 1
    ks_d, ks_p = stats.ks_binned(p, q)
    assert 0 <= ks_d <= 1 and 0 <= ks_p <= 1


def test_ks_binned_with_one_row_on_each_side_is_no_evidence() -> None:
    # scipy answers nan here (effective n rounds to 0); a p-value must stay in [0, 1]
    d, p = stats.ks_binned([0, 1], [1, 0])
    assert d == 1.0 and p == 1.0
