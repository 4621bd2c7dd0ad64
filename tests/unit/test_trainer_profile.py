"""The one-sort profile builder gives exactly what quantile_edges + bin_counts give, and its edges/counts
match numpy's type-7 quantiles with explicit right-closed counting."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from onnxops.profile import bin_counts, numeric_feature, quantile_edges
from onnxops.trainer.profile import categorical_codes, prediction_profile

values = arrays(
    np.float32,
    st.integers(0, 400),
    elements=st.one_of(
        st.floats(-1e6, 1e6, width=32), st.sampled_from([0.0, 1.0, 2.5]), st.just(float("nan"))
    ),
)


@settings(max_examples=300, deadline=None)
@given(values, st.integers(0, 10))
def test_one_sort_builder_equals_quantile_edges_and_bin_counts(x: np.ndarray, seed: int) -> None:
    f = numeric_feature("f", 3, x, seed=seed)
    edges = quantile_edges(x.astype(np.float64))
    assert f.edges == edges
    assert f.counts == [int(c) for c in bin_counts(edges, x.astype(np.float64))]
    present = x[~np.isnan(x)].astype(np.float64)
    assert f.missing_share == (float(np.isnan(x).mean()) if x.size else 0.0)
    assert len(f.sample) == min(present.size, 2000) and set(f.sample) <= set(present.tolist())


def test_edges_and_counts_against_numpy() -> None:
    rng = np.random.default_rng(5)
    x = np.round(rng.gamma(2.0, size=5000), 1).astype(np.float32)  # many ties on the edges
    f = numeric_feature("f", 0, x)
    x64 = x.astype(np.float64)
    edges = np.unique(np.quantile(x64, np.arange(1, 10) / 10))
    assert f.edges == edges.tolist()
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    assert f.counts == [int(((x64 > lo) & (x64 <= hi)).sum()) for lo, hi in itertools.pairwise(bounds)]


def test_prediction_profiles() -> None:
    p = prediction_profile("classification", np.array(["b", "a", "b", "b"], dtype=object), ["a", "b", "c"])
    assert (p.classes, p.counts) == (["a", "b", "c"], [1, 3, 0])
    y = np.arange(100, dtype=np.float32)
    r = prediction_profile("regression", y, None)
    assert r.edges == np.quantile(y.astype(np.float64), np.arange(1, 10) / 10).tolist()
    assert sum(r.counts) == 100 and r.counts[0] == int((y <= r.edges[0]).sum())


def test_categorical_codes() -> None:
    c = categorical_codes("shop", 1, np.array([2, 10, 2, np.nan, 1], dtype=np.float32))
    assert (c.categories, c.counts, c.missing_share) == (["1", "10", "2"], [1, 1, 2], 0.2)
