"""Vectorised drift counting against a baseline profile, plus sliding-window PSI.

Numeric features share one flat array of bin counts: the bins of feature ``j`` live at
``offsets[j] .. offsets[j] + len(edges_j)``. A batch is binned for all features at once by comparing
it with a padded edge matrix (``+inf`` beyond each feature's own edges), so a row's bin is the number
of edges strictly below it: right-closed bins ``(e_{i-1}, e_i]``, exactly Prometheus' ``le``.

Off the request path: a request only appends references to its arrays (``add``). Every ``FLUSH_BATCHES``
batches or ``FLUSH_ROWS`` rows (or when a window slice ends) the queued batches are counted together, in
order: inline on the caller's thread (what the server does: a worker thread cost more in GIL hand-offs
than it saved) or in one worker thread (``background=True``). For a model with one 2-D input and numeric
features only, a fold writes every batch's feature columns straight into one (features x rows) matrix
that it owns and sorts in place: one copy of the data per fold. Every read (``feature_bins``,
``window_psi``, the metrics' collect) first waits for the folds in flight and folds what is still queued,
so a scrape is exact: it sees every request answered before it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from onnxops.drift.names import MAX_UNSEEN_CATEGORIES
from onnxops.drift.names import OTHER_CATEGORY as OTHER
from onnxops.profile import CategoricalFeature, NumericFeature, Profile

log = logging.getLogger("onnxops.serving")
MISSING_STRINGS = frozenset({"", "nan", "NaN", "None", "null"})
FLUSH_BATCHES = 256  # queued batches counted together (see DriftState.add)
FLUSH_ROWS = 16384  # fixed costs of a fold (a sort and a search per feature) amortised over more rows


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of the window (``actual``) against the profile (``expected``), as the drift monitor computes it."""
    if expected.sum() <= 0 or actual.sum() <= 0:
        return math.nan
    from onnxops.drift.stats import psi as _psi  # scipy: imported on the first scrape, not at start-up

    return _psi(expected, actual)


def category_key(value: object) -> str | None:
    """The label a categorical value is counted under (``str(value)``, as the profile writes categories);
    None for a missing value (None, NaN, empty or "nan"/"None"/"null" strings)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    s = str(value)  # numpy scalars print their shortest round-trip form: float32(0.1) -> "0.1"
    return None if s in MISSING_STRINGS else s


def float_aliases(categories: list[str]) -> dict[float, str]:
    """Numeric categories by value, also rounded to float32, so 1 / 1.0 / float32(0.1) find "1.0" / "0.1"."""
    out: dict[float, str] = {}
    for c in categories:
        try:
            v = float(c)
        except ValueError:
            continue
        if not math.isnan(v):
            out.setdefault(v, c)
            out.setdefault(float(np.float32(v)), c)
    return out


@dataclass
class CategoryCounter:
    known: dict[str, int]
    limit: int
    unseen: int = 0

    def add(self, key: str, n: int) -> str:
        """Count ``n`` under ``key`` (or OTHER once the unseen cap is reached); the label used."""
        if key in self.known:
            self.known[key] += n
            return key
        if self.unseen < self.limit:
            self.known[key] = n
            self.unseen += 1
            return key
        self.known[OTHER] = self.known.get(OTHER, 0) + n
        return OTHER


@dataclass
class _Slice:
    start: float
    counts: np.ndarray  # numeric bins, flat like DriftState.bin_counts
    rows: int = 0
    cats: dict[str, dict[str, int]] = field(default_factory=dict)  # categorical feature -> label -> count


@dataclass
class DriftState:
    """Counts since start (for Prometheus) and a sliding window (for the PSI gauges)."""

    profile: Profile
    input_name: str | None  # the single 2-D input whose columns are the features, or None
    category_limit: int = MAX_UNSEEN_CATEGORIES
    window_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    background: bool = False  # fold queued batches in a worker thread (the server) or inline (tests, tools)
    numeric: list[NumericFeature] = field(init=False)
    categorical: list[CategoricalFeature] = field(init=False)

    def __post_init__(self) -> None:
        feats = sorted(self.profile.features, key=lambda f: f.index)
        self.numeric = [f for f in feats if isinstance(f, NumericFeature)]
        self.categorical = [f for f in feats if isinstance(f, CategoricalFeature)]
        self.num_cols = np.array([f.index for f in self.numeric], dtype=np.intp)
        k = max((len(f.edges) for f in self.numeric), default=0)
        self.edge_matrix = np.full((len(self.numeric), k + 1), np.inf)  # +inf column(s): "all present rows"
        for j, f in enumerate(self.numeric):
            self.edge_matrix[j, : len(f.edges)] = f.edges
        e32 = self.edge_matrix.astype(np.float32)
        self.edges32 = np.where(e32 > self.edge_matrix, np.nextafter(e32, np.float32(-np.inf)), e32)
        self.all_columns = bool(np.array_equal(self.num_cols, np.arange(len(self.numeric))))
        sizes = np.array([len(f.edges) + 1 for f in self.numeric], dtype=np.intp)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp) if len(sizes) else sizes
        self.total_bins = int(sizes.sum())
        # (feature, bin) of every position of the flat bin vector, to gather it from a padded matrix
        self.gather = (
            np.repeat(np.arange(len(self.numeric)), sizes),
            np.concatenate([np.arange(s) for s in sizes]) if len(sizes) else np.zeros(0, dtype=np.intp),
        )
        self.bin_counts = np.zeros(self.total_bins, dtype=np.int64)
        self.sums = np.zeros(len(self.numeric))
        self.missing = {f.name: 0 for f in feats}
        self.categories = {
            f.name: CategoryCounter({c: 0 for c in f.categories}, self.category_limit)
            for f in self.categorical
        }
        self.aliases = {f.name: float_aliases(f.categories) for f in self.categorical}
        self.expected = np.array([c for f in self.numeric for c in f.counts], dtype=float)
        pred = self.profile.prediction
        self.pred_classes = (
            CategoryCounter({c: 0 for c in pred.classes}, self.category_limit)
            if pred is not None and pred.kind == "class"
            else None
        )
        self.pred_edges = (
            np.asarray(pred.edges, dtype=float) if pred is not None and pred.kind == "numeric" else None
        )
        self.pred_counts = np.zeros(
            0 if self.pred_edges is None else len(self.pred_edges) + 1, dtype=np.int64
        )
        self.pred_sum = 0.0
        self.window: deque[_Slice] = deque()
        self._pending: list[tuple[dict[str, np.ndarray], np.ndarray | None]] = []
        self._pending_rows = 0
        self._pending_since = 0.0
        self.dropped_batches = 0
        self.slice_seconds = self.window_seconds / 10.0
        self._lock = threading.Lock()  # the counters: one fold at a time
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: deque[Future[None]] = deque()

    # -- updates ------------------------------------------------------------------------------
    def _column(self, feeds: dict[str, np.ndarray], f: NumericFeature | CategoricalFeature) -> np.ndarray:
        if self.input_name is not None:
            return feeds[self.input_name][:, f.index]
        return feeds[f.name].reshape(-1)

    def _numeric_columns(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The numeric features as rows of a C-contiguous (features x rows) float32 or float64 matrix."""
        if self.input_name is not None:
            x = feeds[self.input_name]
            if x.dtype not in (np.float32, np.float64):
                x = x.astype(np.float64)
            cols = x if self.all_columns and x.shape[1] == len(self.numeric) else x[:, self.num_cols]
            return np.ascontiguousarray(cols.T)
        return np.stack([np.asarray(feeds[f.name].reshape(-1), dtype=np.float64) for f in self.numeric])

    def update(self, feeds: dict[str, np.ndarray], prediction: np.ndarray | None) -> None:
        """Count one batch now."""
        self._update(feeds, prediction, self.clock())

    def add(
        self, feeds: dict[str, np.ndarray], prediction: np.ndarray | None, rows: int | None = None
    ) -> None:
        """Queue one batch; it is counted in bulk by ``flush()``, which runs after ``FLUSH_BATCHES`` batches
        or ``FLUSH_ROWS`` rows, when a window slice ends, and before every read. Per request this costs a
        list append instead of a dozen small numpy calls."""
        now = self.clock()
        if self._pending and now - self._pending_since >= self.slice_seconds:
            self._hand_off()
        if not self._pending:
            self._pending_since = now
        self._pending.append((feeds, prediction))
        self._pending_rows += rows if rows is not None else len(next(iter(feeds.values()))) if feeds else 0
        if len(self._pending) >= FLUSH_BATCHES or self._pending_rows >= FLUSH_ROWS:
            self._hand_off()

    def _hand_off(self) -> None:
        """Count the queued batches: in the worker thread (``background``) or now."""
        if not self.background:
            self.flush()
            return
        pending, since = self._pending, self._pending_since
        self._pending, self._pending_rows = [], 0
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-fold")
        while self._inflight and self._inflight[0].done():
            self._inflight.popleft()
        self._inflight.append(self._executor.submit(self._fold, pending, since))

    def flush(self) -> None:
        """Wait for the folds in flight, then count what is still queued: afterwards every batch added so
        far is counted (reads call this first)."""
        while self._inflight:
            self._inflight.popleft().result()
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, [], 0
        self._fold(pending, self._pending_since)

    def close(self) -> None:
        """Count everything queued and stop the worker thread."""
        self.flush()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _fold(self, pending: list[tuple[dict[str, np.ndarray], np.ndarray | None]], since: float) -> None:
        try:
            preds = [p[1] for p in pending if p[1] is not None]
            if len(preds) > 1:
                pred: np.ndarray | None = np.concatenate(
                    [p.reshape(-1) for p in preds] if any(p.ndim != 1 for p in preds) else preds
                )
            else:
                pred = preds[0] if preds else None
            if self.input_name is not None and not self.categorical:
                # one matrix: each batch's columns written straight into (features x rows) rows, which
                # the fold owns and sorts in place (no joined copy, no transposed copy, no sorted copy)
                xt = self._numeric_rows([p[0][self.input_name] for p in pending])
                with self._lock:
                    self._update(None, pred, since, xt)
                return
            if len(pending) == 1:
                feeds = pending[0][0]
            else:
                feeds = {k: np.concatenate([p[0][k] for p in pending]) for k in pending[0][0]}
            with self._lock:
                self._update(feeds, pred, since)
        except (ValueError, TypeError, IndexError):  # e.g. batches of different widths: never fail serving
            self.dropped_batches += len(pending)
            log.warning(
                "drift counting skipped batches it could not bin",
                exc_info=True,
                extra={"fields": {"batches": len(pending)}},
            )

    def _numeric_rows(self, xs: list[np.ndarray]) -> np.ndarray:
        """The numeric features of the batches ``xs`` (rows x columns each) as a new (features x rows)
        float32 or float64 matrix, C-contiguous; never a view of a request's array."""
        dtype = xs[0].dtype
        if dtype != np.float32 and dtype != np.float64:
            dtype = np.dtype(np.float64)
        every = self.all_columns and xs[0].shape[1] == len(self.numeric)
        n = sum(len(x) for x in xs)
        if n < 16 * len(xs):  # small batches: join the rows, then one transposed copy
            x = np.concatenate(xs, dtype=dtype)
            return np.array((x if every else x[:, self.num_cols]).T, order="C")
        cols = [x.T for x in xs] if every else [x[:, self.num_cols].T for x in xs]
        # C order: the rows are sorted and summed; concatenate would lay out transposed inputs in F order.
        # Batches of another width: concatenate raises ValueError (the fold drops them).
        out = np.empty((cols[0].shape[0], n), dtype=dtype)
        return np.concatenate(cols, axis=1, out=out)

    def _update(
        self,
        feeds: dict[str, np.ndarray] | None,
        prediction: np.ndarray | None,
        t: float,
        xt: np.ndarray | None = None,
    ) -> None:
        """Count one batch: ``feeds``, or ``xt`` (the numeric features as an owned features x rows matrix,
        sorted in place) when the model has one input and no categorical features."""
        window = self._window_slice(t)
        if xt is not None:
            window.rows += int(xt.shape[1])
            self._update_numeric(xt, window, owned=True)
        else:
            assert feeds is not None
            first = feeds[self.input_name] if self.input_name is not None else next(iter(feeds.values()))
            window.rows += int(first.shape[0]) if first.ndim else 1
            if self.numeric:
                self._update_numeric(self._numeric_columns(feeds), window)
            for f in self.categorical:
                self._update_categorical(f, self._column(feeds, f), window.cats.setdefault(f.name, {}))
        if prediction is not None:
            self._update_prediction(prediction.reshape(-1))

    def _update_numeric(self, xt: np.ndarray, window: _Slice, owned: bool = False) -> None:
        # Sort each feature once, then one binary search per edge gives "rows <= edge" (NaN sorts last and
        # is never <= an edge; the +inf padding counts every present row). Bins are the differences.
        # float32 data is compared with the edges rounded down to float32, which for float32 values is
        # exactly the comparison with the float64 edge.
        # The last (+inf) column counts the present values, so NaNs need no separate pass.
        # ``owned``: xt is this fold's own matrix, sorted in place (else a sorted copy is made).
        edges = self.edges32 if xt.dtype == np.float32 else self.edge_matrix
        if owned:
            xt.sort(axis=1)
            st = xt
        else:
            st = np.sort(xt, axis=1)
        le = np.empty((st.shape[0], edges.shape[1]), dtype=np.int64)
        for j in range(st.shape[0]):
            le[j] = np.searchsorted(st[j], edges[j], side="right")
        miss = st.shape[1] - le[:, -1]
        if miss.any():
            for j in np.flatnonzero(miss).tolist():
                self.missing[self.numeric[j].name] += int(miss[j])
            self.sums += np.nansum(st, axis=1, dtype=np.float64)
        else:
            self.sums += st.sum(axis=1, dtype=np.float64)
        bins = np.diff(le, axis=1, prepend=0)
        counts = bins[self.gather]
        self.bin_counts += counts
        window.counts += counts

    def _update_categorical(self, f: CategoricalFeature, col: np.ndarray, window: dict[str, int]) -> None:
        counter = self.categories[f.name]
        if col.dtype.kind in "fiub":
            values, counts = np.unique(col, return_counts=True)
            aliases = self.aliases[f.name]
            for v, c in zip(values, counts.tolist(), strict=True):
                key = aliases.get(float(v)) or category_key(v)
                if key is None:
                    self.missing[f.name] += c
                else:
                    label = counter.add(key, c)
                    window[label] = window.get(label, 0) + c
            return
        values, counts = np.unique(col.astype(str), return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
            key = category_key(v)
            if key is None:
                self.missing[f.name] += c
            else:
                label = counter.add(key, c)
                window[label] = window.get(label, 0) + c

    def _update_prediction(self, pred: np.ndarray) -> None:
        if self.pred_classes is not None:
            if (
                (pred.dtype.kind == "i" or (pred.dtype.kind == "u" and pred.dtype.itemsize < 8))
                and pred.size
                and pred.min() >= 0
                and pred.max() < 4096
            ):
                binned = np.bincount(pred)  # small integer labels: no sort needed
                nz = np.flatnonzero(binned)
                values, counts = nz, binned[nz]
            else:
                values, counts = np.unique(pred, return_counts=True)
            for v, c in zip(values.tolist(), counts.tolist(), strict=True):
                key = category_key(v)
                self.pred_classes.add(key if key is not None else OTHER, c)
        elif self.pred_edges is not None:
            p = np.asarray(pred, dtype=np.float64)
            p = p[~np.isnan(p)]
            self.pred_counts += np.bincount(
                np.searchsorted(self.pred_edges, p, side="left"), minlength=len(self.pred_edges) + 1
            )
            self.pred_sum += float(p.sum())

    def _window_slice(self, t: float) -> _Slice:
        if not self.window or t - self.window[-1].start >= self.slice_seconds:
            self.window.append(_Slice(t, np.zeros(self.total_bins, dtype=np.int64)))
            self._expire(self.clock())
        return self.window[-1]

    def _expire(self, now: float) -> None:
        while self.window and now - self.window[0].start >= self.window_seconds:
            self.window.popleft()

    # -- reads --------------------------------------------------------------------------------
    def feature_bins(self, j: int) -> np.ndarray:
        self.flush()
        o = self.offsets[j]
        return self.bin_counts[o : o + len(self.numeric[j].edges) + 1]

    def window_psi(self) -> tuple[int, dict[str, float]]:
        """Rows in the window and PSI per feature against the profile (NaN without rows). Categorical
        features are compared on the profile's categories plus every label seen in the window."""
        self.flush()
        self._expire(self.clock())
        rows = sum(s.rows for s in self.window)
        if not self.window:
            return 0, {name: math.nan for name in [*(f.name for f in self.numeric), *self.categories]}
        actual = np.sum([s.counts for s in self.window], axis=0)
        out = {}
        for j, f in enumerate(self.numeric):
            o, size = self.offsets[j], len(f.edges) + 1
            out[f.name] = psi(self.expected[o : o + size], actual[o : o + size])
        for c in self.categorical:
            seen: dict[str, int] = {}
            for s in self.window:
                for label, n in s.cats.get(c.name, {}).items():
                    seen[label] = seen.get(label, 0) + n
            labels = list(c.categories) + [k for k in seen if k not in set(c.categories)]
            expected = np.array(list(c.counts) + [0] * (len(labels) - len(c.categories)), dtype=float)
            out[c.name] = psi(expected, np.array([seen.get(k, 0) for k in labels], dtype=float))
        return rows, out
