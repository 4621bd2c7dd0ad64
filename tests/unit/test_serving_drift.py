"""Vectorised drift counting against independent numpy counts, and the sliding window."""

from __future__ import annotations

import numpy as np
import pytest

from onnxops.drift import stats
from onnxops.drift.names import OTHER_CATEGORY
from onnxops.profile import ClassPrediction, Profile, categorical_feature, numeric_feature
from onnxops.serving.drift_state import DriftState, category_key


def profile(rng: np.random.Generator) -> Profile:
    x = rng.normal(size=(500, 3))
    feats = [
        numeric_feature("a", 0, x[:, 0]),
        categorical_feature("colour", 1, rng.integers(0, 3, 500).astype(float)),
        numeric_feature("c", 2, np.round(x[:, 2], 1)),
    ]  # rounded: repeated values sit exactly on edges
    return Profile(
        task="classification",
        rows=500,
        features=feats,
        prediction=ClassPrediction(classes=["0", "1"], counts=[250, 250]),
    )


def le_counts(edges: list[float], values: np.ndarray) -> np.ndarray:
    """Per-bin counts from the definition of `le` (count of values <= bound), independent of searchsorted."""
    v = values[~np.isnan(values)]
    cum = [np.count_nonzero(v <= e) for e in edges] + [v.size]
    return np.diff([0, *cum])


@pytest.mark.parametrize("n", [1, 64, 20_000])  # 20k rows takes the per-feature searchsorted path
def test_numeric_bins_match_independent_counts(n: int) -> None:
    rng = np.random.default_rng(n)
    p = profile(rng)
    d = DriftState(p, "input")
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 3, n), np.round(rng.normal(size=n), 1)])
    x[rng.random((n, 3)) < 0.05] = np.nan
    x[0, 0] = p.features[0].edges[3]  # exactly on an edge -> that edge's bucket
    d.update({"input": x.astype(np.float32)}, np.zeros(n, dtype=np.int64))
    x32 = x.astype(np.float32).astype(np.float64)
    for j, f in enumerate(d.numeric):
        np.testing.assert_array_equal(d.feature_bins(j), le_counts(f.edges, x32[:, f.index]))
        assert d.sums[j] == pytest.approx(np.nansum(x32[:, f.index]))
        assert d.missing[f.name] == np.isnan(x32[:, f.index]).sum()
    assert d.missing["colour"] == np.isnan(x[:, 1]).sum()
    cats = d.categories["colour"].known
    assert p.features[1].kind == "categorical" and p.features[1].categories == ["0.0", "1.0", "2.0"]
    for k in ("0.0", "1.0", "2.0"):
        assert cats[k] == np.count_nonzero(x[:, 1] == float(k))
    assert d.pred_classes is not None and d.pred_classes.known["0"] == n


def test_unseen_categories_are_counted_then_capped() -> None:
    rng = np.random.default_rng(0)
    d = DriftState(profile(rng), "input", category_limit=3)
    col = np.array([0, 5, 6, 7, 8, 9, 9, 1], dtype=float)
    x = np.column_stack([np.zeros(8), col, np.zeros(8)])
    d.update({"input": x}, None)
    known = d.categories["colour"].known
    assert known["5.0"] == known["6.0"] == known["7.0"] == 1
    assert known[OTHER_CATEGORY] == 3  # 8, 9, 9 beyond the cap
    assert known["0.0"] == 1 and known["1.0"] == 1 and known["2.0"] == 0


def test_float32_values_find_their_profile_category() -> None:
    p = Profile(task="regression", rows=3, features=[categorical_feature("k", 0, [0.1, 2.0, 2.0])])
    d = DriftState(p, "input")
    d.update({"input": np.array([[0.1], [2], [2], [3]], dtype=np.float32)}, None)
    assert d.categories["k"].known == {"0.1": 1, "2.0": 2, "3.0": 1}


def test_prediction_classes_unseen_label() -> None:
    d = DriftState(profile(np.random.default_rng(1)), "input")
    d.update({"input": np.zeros((4, 3))}, np.array([1, 1, 0, 7]))
    assert d.pred_classes is not None
    assert d.pred_classes.known == {"0": 1, "1": 2, "7": 1}


def test_window_psi_and_expiry() -> None:
    now = [1000.0]
    p = profile(np.random.default_rng(2))
    d = DriftState(p, "input", window_seconds=100.0, clock=lambda: now[0])
    rows, psis = d.window_psi()
    assert rows == 0 and all(np.isnan(v) for v in psis.values())
    rng = np.random.default_rng(3)
    old = rng.normal(3, 1, size=(50, 3))
    d.update({"input": old}, None)
    now[0] += 60
    new = rng.normal(0, 1, size=(80, 3))
    d.update({"input": new}, None)
    rows, psis = d.window_psi()
    both = np.concatenate([old, new])
    assert rows == 130
    assert psis["a"] == pytest.approx(
        stats.psi(p.features[0].counts, le_counts(p.features[0].edges, both[:, 0]))
    )
    now[0] += 50  # the first slice (t=1000) is now 110 s old
    rows, psis = d.window_psi()
    assert rows == 80
    assert psis["c"] == pytest.approx(
        stats.psi(p.features[2].counts, le_counts(p.features[2].edges, new[:, 2]))
    )
    # counts since start are unaffected by the window
    assert d.feature_bins(0).sum() == 130


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (1.0, "1.0"),
        (1.5, "1.5"),
        (float("nan"), None),
        (None, None),
        ("", None),
        ("red", "red"),
        (b"blue", "blue"),
        (np.int64(3), "3"),
        (np.float32(0.1), "0.1"),
    ],
)
def test_category_key(value: object, key: str | None) -> None:
    assert category_key(value) == key


@pytest.mark.parametrize("background", [False, True])
def test_buffered_add_counts_like_update_and_respects_slices(background: bool) -> None:
    now = [0.0]
    p = profile(np.random.default_rng(5))
    direct = DriftState(p, "input", window_seconds=100.0, clock=lambda: now[0])
    queued = DriftState(p, "input", window_seconds=100.0, clock=lambda: now[0], background=background)
    rng = np.random.default_rng(6)
    early = [rng.normal(2, 1, size=(int(n), 3)) for n in rng.integers(1, 40, 300)]  # > FLUSH_BATCHES batches
    for x in early:
        x[:, 1] = rng.integers(0, 5, len(x))  # category codes, two of them unseen in training
    for x in early:
        direct.update({"input": x}, np.ones(len(x), np.int64))
        queued.add({"input": x}, np.ones(len(x), np.int64))
    now[0] = 95.0  # a new slice; the queued rows belong to the old one
    late = rng.normal(0, 1, size=(10, 3))
    direct.update({"input": late}, None)
    queued.add({"input": late}, None)
    for j in range(len(direct.numeric)):
        np.testing.assert_array_equal(queued.feature_bins(j), direct.feature_bins(j))
    np.testing.assert_allclose(queued.sums, direct.sums)
    assert queued.missing == direct.missing
    assert queued.categories["colour"].known == direct.categories["colour"].known
    assert queued.pred_classes is not None and direct.pred_classes is not None
    assert queued.pred_classes.known == direct.pred_classes.known
    now[0] = 105.0  # the first slice (t=0) has left the 100 s window: only `late` remains
    assert queued.window_psi() == direct.window_psi()
    assert queued.window_psi()[0] == 10


def test_float32_values_next_to_a_float64_edge() -> None:
    # 0.1 is not a float32: float32(0.1) is just above it, its predecessor just below
    p = Profile(task="regression", rows=3, features=[numeric_feature("v", 0, np.array([0.0, 0.1, 0.2, 0.1]))])
    f = p.features[0]
    assert isinstance(f, type(p.features[0])) and 0.1 in f.edges
    above = np.float32(0.1)
    below = np.nextafter(above, np.float32(-1))
    assert float(above) > 0.1 >= float(below)
    x = np.array([[above], [below], [np.float32(0.1)]], dtype=np.float32)
    d = DriftState(p, "input")
    d.update({"input": x}, None)
    np.testing.assert_array_equal(d.feature_bins(0), le_counts(f.edges, x[:, 0].astype(np.float64)))
    d64 = DriftState(p, "input")
    d64.update({"input": np.array([[0.1]])}, None)  # float64 exactly on the edge: that edge's bucket
    np.testing.assert_array_equal(d64.feature_bins(0), le_counts(f.edges, np.array([0.1])))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.uint64, np.float32])
def test_prediction_counts_for_every_label_dtype(dtype: type) -> None:
    d = DriftState(profile(np.random.default_rng(1)), "input")
    d.update({"input": np.zeros((5, 3))}, np.array([1, 0, 1, 1, 0], dtype=dtype))
    assert d.pred_classes is not None
    key = "1.0" if dtype is np.float32 else "1"
    assert d.pred_classes.known[key] == 3


def test_batches_that_cannot_be_binned_together_are_dropped_not_raised() -> None:
    d = DriftState(profile(np.random.default_rng(4)), "input")
    d.add({"input": np.zeros((2, 3))}, None)
    d.add({"input": np.zeros((2, 4))}, None)  # a model with a dynamic width could send this
    d.flush()
    assert d.dropped_batches == 2
    d.update({"input": np.zeros((1, 3))}, None)
    assert d.feature_bins(0).sum() == 1


def test_window_psi_of_a_categorical_feature_includes_unseen_labels() -> None:
    p = profile(np.random.default_rng(8))
    d = DriftState(p, "input")
    col = np.array([0, 0, 1, 2, 2, 2, 7, 7], dtype=float)  # 7 was never seen in training
    d.update({"input": np.column_stack([np.zeros(8), col, np.zeros(8)])}, None)
    rows, psis = d.window_psi()
    assert rows == 8
    f = p.features[1]
    assert f.categories == ["0.0", "1.0", "2.0"]
    expected = np.array([*f.counts, 0])
    live = np.array([2, 1, 3, 2])
    assert psis["colour"] == pytest.approx(stats.psi(expected, live))


def right_closed_histogram(edges: list[float], values: np.ndarray) -> np.ndarray:
    """Counts per bin (e_{i-1}, e_i] with numpy's histogram: its bins are left-closed [a, b), so count the
    negated values on the negated edges and read the bins backwards."""
    v = values[~np.isnan(values)]
    lo, hi = min(float(v.min(initial=0)), edges[0]) - 1, max(float(v.max(initial=0)), edges[-1]) + 1
    bounds = -np.array([hi, *edges[::-1], lo])  # ascending
    return np.histogram(-v, bins=bounds)[0][::-1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_background_folding_counts_equal_numpys_histogram_and_reads_are_exact(dtype: type) -> None:
    rng = np.random.default_rng(11)
    p = profile(rng)
    d = DriftState(p, "input", background=True)
    a_edges, c_edges = p.features[0].edges, p.features[2].edges
    batches = []
    for i in range(600):  # several hand-offs to the worker, then a remainder still queued at the read
        n = int(rng.integers(1, 40))
        x = np.column_stack(
            [rng.normal(size=n), rng.integers(0, 3, n), np.round(rng.normal(size=n), 1)]
        ).astype(dtype)
        x[0, 0] = a_edges[i % len(a_edges)]  # exactly on a bound: counted in that bound's `le` bucket
        x[-1, 2] = c_edges[i % len(c_edges)]
        if i % 7 == 0:
            x[0, 2] = np.nan
        batches.append(x)
        d.add({"input": x}, np.zeros(n, np.int64), n)
    assert d._inflight or d._executor is not None  # the worker was used
    allx = np.concatenate(batches).astype(np.float64)
    for j, f in enumerate(d.numeric):
        col = allx[:, f.index]
        want = right_closed_histogram(f.edges, col)
        np.testing.assert_array_equal(d.feature_bins(j), want)
        np.testing.assert_array_equal(want, le_counts(f.edges, col))  # the two references agree
        assert d.missing[f.name] == np.isnan(col).sum()
    assert d.pred_classes is not None and d.pred_classes.known["0"] == len(allx)
    d.add({"input": batches[0]}, None)  # queued after the read: the next read sees it
    assert d.feature_bins(0).sum() == (~np.isnan(allx[:, 0])).sum() + len(batches[0])
    d.close()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("rows", [(1, 3), (20, 90)])  # small batches (rows joined) and large (columns joined)
def test_queued_batches_of_a_numeric_only_model_match_numpys_histogram(
    dtype: type, rows: tuple[int, int]
) -> None:
    rng = np.random.default_rng(12)
    x0 = rng.normal(size=(500, 4))
    p = Profile(  # numeric features only, one input column (3) not a feature: the folds' one-matrix path
        task="classification",
        rows=500,
        features=[numeric_feature(n, i, np.round(x0[:, i], 1)) for n, i in (("a", 0), ("b", 1), ("c", 2))],
        prediction=ClassPrediction(classes=["0", "1"], counts=[250, 250]),
    )
    d = DriftState(p, "input")
    assert not d.categorical
    batches = []
    for i in range(700):  # more than one fold (FLUSH_BATCHES), then a remainder still queued at the read
        n = int(rng.integers(*rows))
        x = np.round(rng.normal(size=(n, 4)) * 3, 1).astype(dtype)
        x[0, 0] = p.features[0].edges[i % len(p.features[0].edges)]  # exactly on a bound
        if i % 5 == 0 and dtype != np.int64:
            x[-1, 1] = np.nan
        batches.append(x)
        d.add({"input": x}, np.ones(n, np.int64), n)
    before = [b.copy() for b in batches]
    allx = np.concatenate(batches).astype(np.float64)
    for j, f in enumerate(d.numeric):
        col = allx[:, f.index]
        np.testing.assert_array_equal(d.feature_bins(j), right_closed_histogram(f.edges, col))
        assert d.sums[j] == pytest.approx(np.nansum(col))
        assert d.missing[f.name] == np.isnan(col).sum()
    assert d.pred_classes is not None and d.pred_classes.known["1"] == len(allx)
    assert sum(s.rows for s in d.window) == len(allx)
    for b, orig in zip(batches, before, strict=True):  # the fold sorts its own copy, never a request's array
        np.testing.assert_array_equal(b, orig)
