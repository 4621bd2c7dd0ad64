"""Ground truth in (docs/feedback.md): the feedback endpoint of two real server replicas.

Feedback for a request answered by one replica reaches the OTHER one (with the version and prediction the
client echoes), the same one (resolved from its recent predictions), or comes late (after the replica has
forgotten the request). The counters of both replicas, summed, give per-version accuracy / macro-F1 /
MAE / RMSE equal to scikit-learn's on the same rows; the direct-scrape source gives the same numbers.
Bad items get a 4xx naming the item; unknown ids are counted, never an error. Every item lands in the
label sink in the label-file format that ``dataset.fromServing`` reads.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_diabetes, load_iris
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error
from test_serving_process import Proc, env_for
from test_serving_support import (
    Bundle,
    ServerThread,
    post_json,
    request,
    train_classifier,
    train_regressor,
    v2_body,
    wait_loaded,
)

from onnxops.drift.performance import PerfCounts, accuracy, from_samples, macro_f1, mae, rmse
from onnxops.drift.performance_source import Performance, fetch_performance_scrape
from onnxops.drift.scrape import Target
from onnxops.trainer.from_serving import read_labels


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_classifier(tmp_path_factory.mktemp("clf"))


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_regressor(tmp_path_factory.mktemp("reg"))


def samples(port: int) -> list[tuple[str, dict[str, str], float]]:
    text = request(port, "GET", "/metrics")[2].decode()
    return [
        (s.name, dict(s.labels), float(s.value))
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    ]


def counts(*ports: int) -> dict[str, PerfCounts]:
    """What Prometheus' sum over the replicas gives (every sample of every replica)."""
    return from_samples([s for p in ports for s in samples(p)])


def metric_sum(port: int, name: str) -> float:
    return sum(v for n, _, v in samples(port) if n == name)


def infer(port: int, x: np.ndarray, rid: str) -> dict[str, Any]:
    status, doc = post_json(port, "/v2/models/iris/infer", v2_body(x.astype(np.float32), "X", id=rid))
    assert status == 200, doc
    return doc  # type: ignore[no-any-return]


@pytest.fixture
def replicas(clf: Bundle, tmp_path: Path) -> Iterator[tuple[Proc, Proc, Path]]:
    labels = tmp_path / "labels"
    common = {
        "ONNXOPS_FEEDBACK_LABELS_URI": labels.as_uri(),
        "ONNXOPS_FEEDBACK_TARGET": "species",
        "ONNXOPS_FEEDBACK_FLUSH_INTERVAL": "0.2",
        "ONNXOPS_INFERENCE_SERVICE": "iris-svc",
    }
    a = Proc(env_for(clf, ONNXOPS_POD_NAME="pod-a", ONNXOPS_FEEDBACK_RECENT_REQUESTS="2", **common))
    try:
        b = Proc(env_for(clf, ONNXOPS_POD_NAME="pod-b", **common))
        try:
            assert wait_loaded(a.port)["ready"] and wait_loaded(b.port)["ready"]
            yield a, b, labels
        finally:
            b.stop()
    finally:
        a.stop()


def test_two_replicas_other_replica_same_replica_and_late_feedback_match_sklearn(
    clf: Bundle, replicas: tuple[Proc, Proc, Path]
) -> None:
    a, b, labels_dir = replicas
    _, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(3)
    targets = [
        Target("pod-a", "3", f"http://127.0.0.1:{a.port}/metrics"),
        Target("pod-b", "3", f"http://127.0.0.1:{b.port}/metrics"),
    ]
    perf0, state = asyncio.run(
        fetch_performance_scrape(targets, "iris", {}, 3600, time.time(), service="iris-svc")
    )
    assert not isinstance(perf0, Performance) and perf0.reason == "WarmingUp"

    truth_rows: list[tuple[str, int, str, Any]] = []  # (id, truth, answering pod, predicted label)
    for k in range(6):  # batches of 8 rows on A, one-row requests on B
        idx = rng.integers(0, 150, 8)
        doc = infer(a.port, clf.X[idx], f"a-{k}")
        assert doc["model_version"] == "3"
        labels = doc["outputs"][0]["data"]
        truth_rows += [(f"a-{k}:{i}", int(y[j]), "a", labels[i]) for i, j in enumerate(idx)]
    for k in range(20):
        j = int(rng.integers(0, 150))
        doc = infer(b.port, clf.X[j : j + 1], f"b-{k}")
        truth_rows.append((f"b-{k}", int(y[j]), "b", doc["outputs"][0]["data"][0]))
    # concept drift for part of the rows: their true label changed
    flipped = [
        (rid, (t + 1) % 3 if n % 3 == 0 else t, pod, p) for n, (rid, t, pod, p) in enumerate(truth_rows)
    ]

    # A's requests: feedback to the OTHER replica (B), echoing version and prediction.
    other = [
        {"id": rid, "truth": t, "version": "3", "prediction": p} for rid, t, pod, p in flipped if pod == "a"
    ]
    status, doc = post_json(b.port, "/v2/models/iris/feedback", other)
    assert status == 200 and doc["accepted"] == len(other) and doc["unresolved"] == 0, doc
    # B's requests: the first half to B without echo (B resolves them from its recent predictions)
    mine = [r for r in flipped if r[2] == "b"]
    same = [{"id": rid, "truth": str(t)} for rid, t, _, _ in mine[:10]]
    status, doc = post_json(b.port, "/v1/models/iris:feedback", {"items": same})
    assert status == 200 and doc["accepted"] == 10 and doc["unresolved"] == 0, doc
    # ... the second half to A without echo: A never served them -> unresolved, left to the batch path
    status, doc = post_json(
        a.port, "/v2/models/iris/versions/3/feedback", [{"id": rid, "truth": t} for rid, t, _, _ in mine[10:]]
    )
    assert status == 200 and doc["accepted"] == 0 and doc["unresolved"] == 10 and doc["unknownIds"] == 10, doc
    # Late: A has long forgotten a-0 (it remembers 2 requests); with the echo it still counts exactly,
    # without the echo it is unresolved.
    late = [r for r in flipped if r[0].startswith("a-0:")]
    for k in range(5):
        infer(a.port, clf.X[:1], f"later-{k}")
    status, doc = post_json(
        a.port, "/v2/models/iris/feedback", [{"id": rid, "truth": t} for rid, t, _, _ in late[:2]]
    )
    assert doc["unresolved"] == 2, doc
    status, doc = post_json(
        a.port,
        "/v2/models/iris/feedback",
        [{"id": rid, "truth": t, "version": 3, "prediction": p} for rid, t, _, p in late],
    )
    assert status == 200 and doc["accepted"] == len(late), doc

    counted = [r for r in flipped if r[2] == "a"] + late + mine[:10]  # late rows are counted twice
    y_true = [str(t) for _, t, _, _ in counted]
    y_pred = [str(p) for _, _, _, p in counted]
    got = counts(a.port, b.port)
    assert set(got) == {"3"}
    assert got["3"].n == len(counted)
    assert accuracy(got["3"].confusion) == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert macro_f1(got["3"].confusion) == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    assert metric_sum(a.port, "onnxops_feedback_unresolved_total") == 12
    # the direct-scrape source: the window's increase over both pods, same numbers
    perf, state = asyncio.run(
        fetch_performance_scrape(targets, "iris", state, 3600, time.time(), service="iris-svc")
    )
    assert isinstance(perf, Performance), perf
    assert perf.versions["3"].confusion == got["3"].confusion and perf.unresolved == 12

    # every item is in the label sink, in the label-file format fromServing reads
    deadline = time.monotonic() + 10
    want = len(other) + len(same) + 10 + 2 + len(late)
    while time.monotonic() < deadline:
        if (
            labels_dir.exists()
            and sum(1 for _ in labels_dir.rglob("*.parquet"))
            and metric_sum(a.port, "onnxops_feedback_sink_rows_total")
            + metric_sum(b.port, "onnxops_feedback_sink_rows_total")
            >= want
        ):
            break
        time.sleep(0.1)
    frame, _ = read_labels(labels_dir.as_uri(), "species")
    expect = {rid: t for rid, t, _, _ in flipped}
    assert len(frame) == len(expect)  # duplicates by id: the last label wins
    assert {r.id: int(r.species) for r in frame.itertuples()} == expect


def test_bad_items_get_4xx_naming_the_item_and_unknown_ids_are_counted(clf: Bundle, reg: Bundle) -> None:
    with ServerThread(clf.config()) as s:

        def post(doc: Any, path: str = "/v2/models/iris/feedback") -> tuple[int, Any]:
            raw = doc if isinstance(doc, str) else json.dumps(doc)
            status, _, body = request(s.port, "POST", path, raw, {"Content-Type": "application/json"})
            return status, json.loads(body)

        assert post("")[0] == 400 and "empty body" in post("")[1]["error"]
        assert post([])[0] == 400
        assert post("{nope")[0] == 400
        st, doc = post([{"id": "x", "truth": 1}, {"truth": 1}])
        assert st == 422 and doc["item"] == 1 and "items[1].id" in doc["error"]
        st, doc = post([{"id": "x"}])
        assert st == 422 and "items[0].truth" in doc["error"]
        st, doc = post([{"id": "x", "truth": "setosa"}])
        assert st == 422 and "not a class label" in doc["error"] and "classLabels" in doc["error"]
        st, doc = post([{"id": "x", "truth": 1.5}])
        assert st == 422 and "regression" in doc["error"]
        st, doc = post([{"id": "x", "truth": 1, "version": "v2"}])
        assert st == 422 and "items[0].version" in doc["error"]
        st, doc = post([{"id": "x", "truth": 1, "colour": "red"}])
        assert st == 422 and "colour" in doc["error"]
        assert post({"id": "x", "truth": 1}, "/v2/models/other/feedback")[0] == 400
        assert request(s.port, "GET", "/v2/models/iris/feedback")[0] == 405
        # nothing of a refused request was counted; an unknown id is counted and ignored
        st, doc = post([{"id": "never-served", "truth": 2}, {"id": "nor-this", "truth": "0"}])
        assert st == 200 and doc == {
            "accepted": 0,
            "unresolved": 2,
            "unknownIds": 2,
            "items": 2,
            "model_name": "iris",
            "model_version": "3",
        }
        assert metric_sum(s.port, "onnxops_feedback_labels_total") == 0
        assert metric_sum(s.port, "onnxops_feedback_unresolved_total") == 2
        # v1 responses carry the served version too
        st, _, body = request(
            s.port, "POST", "/v1/models/iris:predict", json.dumps({"instances": clf.X[:2].tolist()})
        )
        assert st == 200 and json.loads(body)["model_version"] == "3"
    with ServerThread(reg.config()) as r:
        st, doc = post_json(r.port, "/v2/models/diabetes/feedback", [{"id": "x", "truth": "high"}])
        assert st == 422 and "regressor" in doc["error"] and doc["item"] == 0
        st, doc = post_json(r.port, "/v2/models/diabetes/feedback", [{"id": "x", "truth": True}])
        assert st == 422


def test_regression_two_versions_across_replicas_match_sklearn(reg: Bundle) -> None:
    """v1 and v2 replicas side by side (a canary): each one's labels, wherever they land, count for it."""
    _, y = load_diabetes(return_X_y=True)
    with ServerThread(reg.config(model_version="1")) as v1, ServerThread(reg.config(model_version="2")) as v2:
        rows: dict[str, list[tuple[str, float, float]]] = {"1": [], "2": []}
        for srv, ver in ((v1, "1"), (v2, "2")):
            for k in range(3):
                idx = np.arange(k * 10 + int(ver), k * 10 + int(ver) + 10)
                st, doc = post_json(
                    srv.port,
                    "/v2/models/diabetes/infer",
                    v2_body(reg.X[idx].astype(np.float32), "X", id=f"{ver}-{k}"),
                )
                assert st == 200 and doc["model_version"] == ver
                truth = y[idx] * (1.3 if ver == "2" else 1.0)  # v2's traffic: the world changed
                rows[ver] += [
                    (f"{ver}-{k}:{i}", float(truth[i]), float(doc["outputs"][0]["data"][i]))
                    for i in range(10)
                ]
        # v1's feedback goes to the v2 replica with the echo, v2's to its own replica without
        st, doc = post_json(
            v2.port,
            "/v2/models/diabetes/feedback",
            [{"id": i, "truth": t, "version": "1", "prediction": p} for i, t, p in rows["1"]],
        )
        assert st == 200 and doc["accepted"] == 30, doc
        st, doc = post_json(
            v2.port, "/v2/models/diabetes/feedback", [{"id": i, "truth": t} for i, t, _ in rows["2"]]
        )
        assert st == 200 and doc["accepted"] == 30, doc
        got = counts(v1.port, v2.port)
        for ver in ("1", "2"):
            t = [r[1] for r in rows[ver]]
            p = [r[2] for r in rows[ver]]
            assert got[ver].n == 30
            assert mae(got[ver].labels, got[ver].abs_err) == pytest.approx(
                mean_absolute_error(t, p), rel=1e-6
            )
            assert rmse(got[ver].labels, got[ver].sq_err) == pytest.approx(
                float(np.sqrt(mean_squared_error(t, p))), rel=1e-6
            )


def test_batch_label_files_give_the_same_per_version_numbers(clf: Bundle, tmp_path: Path) -> None:
    """A warehouse drops a label file; the batch evaluation (captured rows joined on id) gives per version
    what scikit-learn gives on the same rows, and what the live counters give for the same labels."""
    from dataclasses import replace

    from onnxops.serving.capture_config import CaptureConfig
    from onnxops.trainer import evaluate_labels

    sink = (tmp_path / "traffic").as_uri() + "/"
    cap = CaptureConfig(sink_uri=sink, flush_interval=60.0)
    _, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(11)
    with (
        ServerThread(clf.config(model_version="1", capture=replace(cap, pod="p1"))) as s1,
        ServerThread(clf.config(model_version="2", capture=replace(cap, pod="p2"))) as s2,
    ):
        rows: list[tuple[str, str, int, Any]] = []  # (id, version, truth, prediction)
        for srv, ver in ((s1, "1"), (s2, "2")):
            for k in range(4):
                idx = rng.integers(0, 150, 5)
                st, doc = post_json(
                    srv.port,
                    "/v2/models/iris/infer",
                    v2_body(clf.X[idx].astype(np.float32), "X", id=f"{ver}-{k}"),
                )
                assert st == 200
                rows += [
                    (
                        f"{ver}-{k}:{i}",
                        ver,
                        int((y[j] + (i % 2)) % 3) if ver == "2" else int(y[j]),
                        doc["outputs"][0]["data"][i],
                    )
                    for i, j in enumerate(idx)
                ]
        for srv in (s1, s2):
            assert srv.running is not None and srv.running.capture is not None
            assert asyncio.run_coroutine_threadsafe(srv.running.capture.flush(), srv.loop).result(10)
        labels_dir = tmp_path / "warehouse"
        labels_dir.mkdir()
        (labels_dir / "labels.csv").write_text("id,species\n" + "".join(f"{r[0]},{r[2]}\n" for r in rows))
        # the same labels through the endpoint (echoed, to the other replica)
        st, doc = post_json(
            s1.port,
            "/v2/models/iris/feedback",
            [{"id": i, "truth": t, "version": v, "prediction": p} for i, v, t, p in rows],
        )
        assert st == 200 and doc["accepted"] == len(rows)
        live = counts(s1.port, s2.port)
    batch = evaluate_labels.evaluate(sink, labels_dir.as_uri(), "species", "1h", datetime.now(UTC))
    assert batch["task"] == "classification" and batch["rowsCaptured"] == len(rows)
    for ver in ("1", "2"):
        t = [str(r[2]) for r in rows if r[1] == ver]
        p = [str(r[3]) for r in rows if r[1] == ver]
        got = batch["versions"][ver]
        assert got["labels"] == len(t) == live[ver].n
        assert got["accuracy"] == pytest.approx(accuracy_score(t, p), abs=1e-12)
        assert got["f1"] == pytest.approx(f1_score(t, p, average="macro"), abs=1e-12)
        assert got["accuracy"] == pytest.approx(accuracy(live[ver].confusion), abs=1e-12)
        assert got["f1"] == pytest.approx(macro_f1(live[ver].confusion), abs=1e-12)
    assert batch["versions"]["2"]["accuracy"] < batch["versions"]["1"]["accuracy"]
    # the CLI: the same summary in the termination-message file
    out = tmp_path / "result.json"
    assert (
        evaluate_labels.main(
            [
                "--sink-uri",
                sink,
                "--labels-uri",
                labels_dir.as_uri(),
                "--target",
                "species",
                "--window",
                "1h",
                "--termination-log",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["versions"]["1"]["labels"] == batch["versions"]["1"]["labels"]
    assert (
        evaluate_labels.main(
            [
                "--sink-uri",
                (tmp_path / "none").as_uri() + "/",
                "--labels-uri",
                labels_dir.as_uri(),
                "--target",
                "species",
                "--termination-log",
                str(out),
            ]
        )
        == 2
    )
    assert "no captured traffic" in json.loads(out.read_text())["message"]
