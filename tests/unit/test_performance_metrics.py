"""Live performance from the feedback counters equals scikit-learn's metrics on the same rows."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error

from onnxops.drift import performance as P
from onnxops.serving import feedback as F


def confusion(y_true: list[str], y_pred: list[str]) -> dict[tuple[str, str], float]:
    return {k: float(v) for k, v in Counter(zip(y_true, y_pred, strict=True)).items()}


@pytest.mark.parametrize("seed", range(30))
def test_accuracy_and_macro_f1_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    n = int(rng.integers(1, 200))
    y_true = [f"c{v}" for v in rng.integers(0, k, n)]
    # a prediction that is often right, sometimes a class never in the truth
    y_pred = [t if rng.random() < 0.6 else f"c{rng.integers(0, k + 1)}" for t in y_true]
    c = confusion(y_true, y_pred)
    assert P.accuracy(c) == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    want = f1_score(y_true, y_pred, average="macro", zero_division=0)
    assert P.macro_f1(c) == pytest.approx(want, abs=1e-12)


def test_macro_f1_edge_cases_equal_sklearn() -> None:
    for y_true, y_pred in (
        (["a"], ["a"]),
        (["a"], ["b"]),
        (["a", "a"], ["b", "b"]),
        (["a", "b", "c"], ["a", "a", "a"]),
    ):
        assert P.macro_f1(confusion(y_true, y_pred)) == pytest.approx(
            f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12
        )
    assert P.accuracy({}) is None and P.macro_f1({}) is None
    assert P.macro_f1({("a", "a"): 0.0}) is None  # a series at 0 in the window: no labels


@pytest.mark.parametrize("seed", range(10))
def test_mae_and_rmse_from_sums_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    t, p = rng.normal(50, 20, n), rng.normal(50, 25, n)
    err = t - p
    assert P.mae(n, float(np.abs(err).sum())) == pytest.approx(mean_absolute_error(t, p), rel=1e-12)
    assert P.rmse(n, float((err**2).sum())) == pytest.approx(math.sqrt(mean_squared_error(t, p)), rel=1e-12)
    assert P.mae(0, 0.0) is None and P.rmse(0, 0.0) is None


def test_metric_value_and_direction() -> None:
    clf = P.PerfCounts(confusion={("a", "a"): 3.0, ("a", "b"): 1.0}, labels=4.0)
    reg = P.PerfCounts(labels=4.0, abs_err=8.0, sq_err=36.0)
    assert P.metric_value("accuracy", clf) == 0.75
    assert P.metric_value("mae", reg) == 2.0 and P.metric_value("rmse", reg) == 3.0
    assert P.metric_value("rmse", clf) is None and P.metric_value("f1", reg) is None
    with pytest.raises(ValueError, match="unknown metric"):
        P.metric_value("auc", clf)
    assert P.is_worse("accuracy", 0.8, 0.9) and not P.is_worse("accuracy", 0.85, 0.9, 0.1)
    assert P.is_worse("rmse", 3.5, 3.0) and not P.is_worse("mae", 2.0, 3.0)


def test_samples_from_several_replicas_are_summed_by_the_answering_version() -> None:
    s = [
        (P.FEEDBACK_PREDICTIONS, {"version": "2", "truth": "a", "predicted": "a", "pod": "x"}, 2.0),
        (P.FEEDBACK_PREDICTIONS, {"version": "2", "truth": "a", "predicted": "a", "pod": "y"}, 3.0),
        (P.FEEDBACK_PREDICTIONS, {"version": "3", "truth": "a", "predicted": "b", "pod": "y"}, 1.0),
        (P.FEEDBACK_LABELS, {"version": "2"}, 5.0),
        (P.FEEDBACK_LABELS, {"version": "3"}, 1.0),
        (P.FEEDBACK_UNRESOLVED, {"version": "3"}, 4.0),
        ("onnxops_rows_total", {"version": "2"}, 9.0),
    ]
    got = P.from_samples(s)
    assert got["2"].confusion == {("a", "a"): 5.0} and got["2"].n == 5
    assert got["3"].confusion == {("a", "b"): 1.0} and P.unresolved(s) == 4.0


def test_the_server_and_the_monitor_agree_on_the_names() -> None:
    assert (
        F.FEEDBACK_PREDICTIONS,
        F.FEEDBACK_LABELS,
        F.FEEDBACK_ABS_ERROR,
        F.FEEDBACK_SQ_ERROR,
        F.FEEDBACK_UNRESOLVED,
    ) == (
        P.FEEDBACK_PREDICTIONS,
        P.FEEDBACK_LABELS,
        P.FEEDBACK_ABS_ERROR,
        P.FEEDBACK_SQ_ERROR,
        P.FEEDBACK_UNRESOLVED,
    )
    assert (F.LABEL_TRUTH, F.LABEL_PREDICTED) == (P.LABEL_TRUTH, P.LABEL_PREDICTED)


def test_prometheus_queries_are_scoped_and_grouped_by_version() -> None:
    qs = P.prometheus_queries("iris", "10m", {"namespace": "prod", "inferenceservice": "iris"})
    q = qs[P.FEEDBACK_PREDICTIONS]
    assert 'namespace="prod"' in q and 'inferenceservice="iris"' in q and 'model="iris"' in q
    assert "by (version, truth, predicted)" in q and "[10m]" in q
    assert set(qs) == P.FAMILIES


def test_feedback_items_for_string_classes_and_row_ids_of_batches() -> None:
    space = F.LabelSpace("classification", ("cat", "dog"), integer_labels=False)
    items = F.parse_items(
        b'[{"id": "r:1", "truth": "dog"}, {"id": "s", "truth": "cat", "prediction": "dog", "version": "4"}]',
        space,
    )
    assert [(i.id, i.truth, i.version, i.prediction) for i in items] == [
        ("r:1", "dog", None, None),
        ("s", "cat", "4", "dog"),
    ]
    with pytest.raises(F.FeedbackError, match=r"items\[0\]\.truth: '1' is not a class label"):
        F.parse_items(b'{"id": "x", "truth": 1}', space)
    # an item another version answered (the Service sent its feedback to this replica of version 4): this
    # replica does not know version 5's class labels, so only their types are checked
    [it] = F.parse_items(b'{"id": "y", "truth": 1, "prediction": "bird", "version": 5}', space, "4")
    assert (it.truth, it.raw_truth, it.prediction, it.version) == ("1", 1, "bird", "5")
    with pytest.raises(F.FeedbackError, match=r"items\[0\]\.prediction: 'bird' is not a class label"):
        F.parse_items(b'{"id": "y", "truth": "cat", "prediction": "bird", "version": 4}', space, "4")
    with pytest.raises(F.FeedbackError, match=r"items\[0\]\.truth: a class label must be a string"):
        F.parse_items(b'{"id": "y", "truth": [1], "version": 5}', space, "4")
    recent = F.RecentPredictions("4", capacity=2)
    recent.record("r", [np.array([b"cat", b"dog", b"cat"], dtype=object)], 3)
    recent.record("one", [np.array([b"dog"], dtype=object)], 1)
    assert recent.resolve("r:1", "classification") == "dog"
    assert recent.resolve("one", "classification") == "dog"
    assert recent.resolve("r:3", "classification") is None and recent.resolve("r", "classification") is None
    recent.record("next", [np.array([b"cat"], dtype=object)], 1)  # "r" is forgotten
    assert recent.resolve("r:0", "classification") is None


def test_feedback_metrics_are_documented_as_exposed() -> None:
    """docs/metrics.md "Feedback" table: every family the server exposes, with its type and labels."""
    import re
    from pathlib import Path

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    section = doc.split("## Feedback", 1)[1].split("\n## ", 1)[0]
    table = {
        m[1]: (m[2], re.findall(r"`(\w+)`", m[3]))
        for m in re.finditer(r"^\| `(onnxops_\w+)` \| (\w+) \| ([^|]*) \|", section, re.M)
    }

    class _Sink:
        uri = "memory://"

        def write(self, relpath: str, data: bytes) -> None:
            pass

    fb = F.Feedback(F.FeedbackConfig(), "iris", "2", "svc", _Sink())
    fb.counts.confusion[("2", "a", "b")] = 1
    fb.counts.abs_err["2"] = fb.counts.sq_err["2"] = 1.0
    reg = CollectorRegistry()
    reg.register(fb)
    exposed = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        name = fam.name + ("_total" if fam.type == "counter" else "")
        labels = sorted({k for s in fam.samples for k in s.labels})
        exposed[name] = (fam.type, labels)
    assert set(exposed) == set(table)
    for name, (typ, labels) in exposed.items():
        assert table[name][0] == typ and sorted(table[name][1]) == labels, name


class _ListSink:
    """A label sink that keeps what it is given, and fails while ``down``."""

    uri = "memory://"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.down = False

    def write(self, relpath: str, data: bytes) -> None:
        if self.down:
            raise OSError("sink unreachable")
        self.files[relpath] = data


def _written(sink: _ListSink) -> list[dict[str, object]]:
    import io

    import pyarrow.parquet as pq

    return [r for data in sink.files.values() for r in pq.read_table(io.BytesIO(data)).to_pylist()]


def test_labels_of_another_versions_type_are_written_beside_this_versions() -> None:
    """A replica of v1 (class indices) also gets feedback for v2's answers (class names: the Service sends
    feedback to any replica). Both reach the label sink, each in a file of its own type; before, the mixed
    column failed to encode on every flush and this replica's own labels never reached the sink."""
    import asyncio

    space = F.LabelSpace("classification", None, integer_labels=True)
    sink = _ListSink()
    fb = F.Feedback(F.FeedbackConfig(), "iris", "1", "svc", sink)
    body = (
        b'[{"id": "a", "truth": 2, "prediction": 2, "version": "1"},'
        b' {"id": "b", "truth": "virginica", "prediction": "setosa", "version": "2"},'
        b' {"id": "c", "truth": 0, "prediction": 1, "version": "1"}]'
    )
    items = F.parse_items(body, space, "1")
    for it in items:
        fb._buffer(1.8e9, it, it.version, it.prediction)
    assert asyncio.run(fb.flush()) is True
    rows = sorted(_written(sink), key=lambda r: str(r["id"]))
    assert [(r["id"], r[fb.cfg.target], r["version"]) for r in rows] == [
        ("a", 2, "1"),
        ("b", "virginica", "2"),
        ("c", 0, "1"),
    ]
    assert len(sink.files) == 2 and fb.buffer == [] and (fb.written, fb.dropped) == (3, 0)


def test_a_failing_label_sink_keeps_the_rows_for_the_next_flush() -> None:
    import asyncio

    space = F.LabelSpace("classification", None, integer_labels=True)
    sink = _ListSink()
    fb = F.Feedback(F.FeedbackConfig(), "iris", "1", "svc", sink)
    for it in F.parse_items(b'[{"id": "a", "truth": 1, "prediction": 1, "version": "1"}]', space, "1"):
        fb._buffer(1.8e9, it, it.version, it.prediction)
    sink.down = True
    assert asyncio.run(fb.flush()) is False
    assert fb.sink_up is False and len(fb.buffer) == 1 and sink.files == {}
    sink.down = False
    assert asyncio.run(fb.flush()) is True
    assert [r["id"] for r in _written(sink)] == ["a"] and fb.sink_up is True and fb.dropped == 0
