"""Live model performance per served version, from the feedback counters (serving/feedback.py).

Pure functions: the counters' window increases (summed over every replica, whichever received the
feedback) become per-version ``PerfCounts``, and those give accuracy and macro-F1 (classification, from
the confusion counts) or MAE and RMSE (regression, from count / sum |err| / sum err²), defined exactly as
scikit-learn's ``accuracy_score``, ``f1_score(average="macro")``, ``mean_absolute_error`` and the root of
``mean_squared_error`` on the same rows (the unit tests check that). Hand-written: scikit-learn needs the
rows, and the operator only has counts.

Sources (same shape as the drift sources): ``prometheus_queries`` (``sum by (version, truth, predicted)
(increase(...[window]))``, scoped by namespace and inferenceservice) and ``from_scrape_delta`` (the window
increase of a direct scrape of every pod, ``drift/scrape.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from onnxops.drift import names as N

# The families of the feedback counters (the server defines them in serving/feedback.py; the names are
# repeated here because drift/ must not import serving/; a unit test checks they are the same).
FEEDBACK_PREDICTIONS = "onnxops_feedback_predictions_total"
FEEDBACK_LABELS = "onnxops_feedback_labels_total"
FEEDBACK_ABS_ERROR = "onnxops_feedback_absolute_error_total"
FEEDBACK_SQ_ERROR = "onnxops_feedback_squared_error_total"
FEEDBACK_UNRESOLVED = "onnxops_feedback_unresolved_total"
LABEL_TRUTH, LABEL_PREDICTED = "truth", "predicted"
FAMILIES = frozenset(
    {FEEDBACK_PREDICTIONS, FEEDBACK_LABELS, FEEDBACK_ABS_ERROR, FEEDBACK_SQ_ERROR, FEEDBACK_UNRESOLVED}
)

METRICS = ("accuracy", "f1", "mae", "rmse")
CLASSIFICATION_METRICS = ("accuracy", "f1")
REGRESSION_METRICS = ("mae", "rmse")
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "mae": False, "rmse": False}


@dataclass
class PerfCounts:
    """One version's labelled predictions in a window."""

    confusion: dict[tuple[str, str], float] = field(default_factory=dict)  # (truth, predicted) -> n
    labels: float = 0.0  # labelled predictions (both tasks)
    abs_err: float = 0.0
    sq_err: float = 0.0

    @property
    def n(self) -> int:
        return round(self.labels)


@dataclass(frozen=True)
class PerfValues:
    """One version's metrics as computed elsewhere from its rows (the label-file evaluation Job,
    ``trainer/evaluate_labels.py``, which has the rows and not only counts)."""

    labels: int
    values: Mapping[str, float] = field(default_factory=dict)  # metric name (METRICS) -> value

    @property
    def n(self) -> int:
        return self.labels


def accuracy(confusion: Mapping[tuple[str, str], float]) -> float | None:
    total = sum(confusion.values())
    if total <= 0:
        return None
    return sum(n for (t, p), n in confusion.items() if t == p) / total


def macro_f1(confusion: Mapping[tuple[str, str], float]) -> float | None:
    """Mean over the classes seen as truth or prediction of 2tp / (2tp + fp + fn) (scikit-learn's macro F1:
    a class never predicted correctly scores 0)."""
    if sum(confusion.values()) <= 0:
        return None
    seen = [k for k, n in confusion.items() if n > 0]
    classes = {t for t, _ in seen} | {p for _, p in seen}
    scores = []
    for c in sorted(classes):
        tp = confusion.get((c, c), 0.0)
        fp = sum(n for (t, p), n in confusion.items() if p == c and t != c)
        fn = sum(n for (t, p), n in confusion.items() if t == c and p != c)
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom > 0 else 0.0)
    return sum(scores) / len(scores)


def mae(count: float, abs_err: float) -> float | None:
    return abs_err / count if count > 0 else None


def rmse(count: float, sq_err: float) -> float | None:
    return math.sqrt(max(sq_err, 0.0) / count) if count > 0 else None


def metric_value(metric: str, counts: PerfCounts | PerfValues) -> float | None:
    """The named metric of one version's counts; None without labels (or for the other task's metric)."""
    if isinstance(counts, PerfValues):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
        value = counts.values.get(metric)
        return None if value is None or counts.labels <= 0 else float(value)
    if metric == "accuracy":
        return accuracy(counts.confusion)
    if metric == "f1":
        return macro_f1(counts.confusion)
    if metric == "mae":
        return None if counts.confusion else mae(counts.labels, counts.abs_err)
    if metric == "rmse":
        return None if counts.confusion else rmse(counts.labels, counts.sq_err)
    raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")


def is_worse(metric: str, value: float, reference: float, tolerance: float = 0.0) -> bool:
    """``value`` worse than ``reference`` by more than ``tolerance`` (absolute, in the metric's unit)."""
    if HIGHER_IS_BETTER[metric]:
        return value < reference - tolerance
    return value > reference + tolerance


# --- from samples (Prometheus vectors or a scrape's window delta) -------------------------------------------
def from_samples(samples: Iterable[tuple[str, Mapping[str, str], float]]) -> dict[str, PerfCounts]:
    """Per version, the counts of ``(family name, labels, value)`` samples (values: window increases).

    The ``version`` label of a feedback series is the version that answered the request, whichever
    replica counted it; samples of several pods/replicas are summed."""
    out: dict[str, PerfCounts] = {}
    for name, labels, value in samples:
        if name not in FAMILIES or name == FEEDBACK_UNRESOLVED:
            continue
        version = labels.get(N.LABEL_VERSION, "")
        if not version:
            continue
        pc = out.setdefault(version, PerfCounts())
        if name == FEEDBACK_PREDICTIONS:
            key = (labels.get(LABEL_TRUTH, ""), labels.get(LABEL_PREDICTED, ""))
            pc.confusion[key] = pc.confusion.get(key, 0.0) + value
        elif name == FEEDBACK_LABELS:
            pc.labels += value
        elif name == FEEDBACK_ABS_ERROR:
            pc.abs_err += value
        elif name == FEEDBACK_SQ_ERROR:
            pc.sq_err += value
    return out


def unresolved(samples: Iterable[tuple[str, Mapping[str, str], float]]) -> float:
    return sum(v for name, _, v in samples if name == FEEDBACK_UNRESOLVED)


def prometheus_queries(model: str, window: str, matchers: Mapping[str, str]) -> dict[str, str]:
    """PromQL per family: the window's increase summed over every pod, by version (and truth/predicted).
    ``window_increase`` also counts series born inside the window (a first label of a new class pair)."""
    from onnxops.drift.prometheus import selector, window_increase

    sel = selector(model, matchers)
    v = N.LABEL_VERSION

    def q(name: str, by: str) -> str:
        return window_increase(name + sel, window, by)

    return {
        FEEDBACK_PREDICTIONS: q(FEEDBACK_PREDICTIONS, f"{v}, {LABEL_TRUTH}, {LABEL_PREDICTED}"),
        FEEDBACK_LABELS: q(FEEDBACK_LABELS, v),
        FEEDBACK_ABS_ERROR: q(FEEDBACK_ABS_ERROR, v),
        FEEDBACK_SQ_ERROR: q(FEEDBACK_SQ_ERROR, v),
        FEEDBACK_UNRESOLVED: q(FEEDBACK_UNRESOLVED, v),
    }
