"""The /metrics exposition, parsed with prometheus_client's parser and checked against numpy counts."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families
from test_serving_support import Bundle, ServerThread, post_json, request, train_classifier, train_regressor

from onnxops.drift import stats


def scrape(port: int) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    status, headers, body = request(port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(body.decode()):
        out[fam.name] = [(s.name, dict(s.labels), float(s.value)) for s in fam.samples]
    return out


def samples(m: dict, family: str, suffix: str = "", **labels: str) -> list[tuple[dict[str, str], float]]:
    return [
        (lab, v)
        for name, lab, v in m[family]
        if name == family + suffix and all(lab.get(k) == val for k, val in labels.items())
    ]


def one(m: dict, family: str, suffix: str = "", **labels: str) -> float:
    found = samples(m, family, suffix, **labels)
    assert len(found) == 1, (family, suffix, labels, found)
    return found[0][1]


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_classifier(tmp_path_factory.mktemp("clf"))


@pytest.fixture
def server(clf: Bundle) -> Iterator[ServerThread]:
    with ServerThread(clf.config()) as s:
        yield s


def test_every_bucket_is_precreated_at_zero_with_the_profile_edges(clf: Bundle, server: ServerThread) -> None:
    m = scrape(server.port)
    for f in clf.profile.features:
        buckets = samples(m, "onnxops_feature_value", "_bucket", feature=f.name, model="iris", version="3")
        les = [lab["le"] for lab, _ in buckets]
        assert les[:-1] and [float(x) for x in les[:-1]] == f.edges and les[-1] == "+Inf"
        assert all(v == 0 for _, v in buckets)
        assert one(m, "onnxops_feature_missing", "_total", feature=f.name) == 0
    classes = {lab["class"] for lab, v in samples(m, "onnxops_prediction_class", "_total") if v == 0}
    assert classes == {"0", "1", "2"}
    assert one(m, "onnxops_model_ready", model="iris", version="3") == 1


def test_counts_equal_what_was_sent(clf: Bundle, server: ServerThread) -> None:
    rng = np.random.default_rng(7)
    name = ort.InferenceSession(str(clf.model_path)).get_inputs()[0].name
    batches = [
        clf.X[rng.integers(0, 150, n)] + rng.normal(0, 0.3, (n, 4)).astype(np.float32) for n in (1, 5, 64, 30)
    ]
    # values exactly on an edge must land in that edge's bucket (right-closed, like `le`)
    edge_row = np.array([[f.edges[2] for f in clf.profile.features]], dtype=np.float32)
    batches.append(edge_row)
    sent = []
    # v2 JSON, with one missing value (null -> NaN)
    b0 = batches[0].astype(object)
    b0[0, 1] = None
    status, _ = post_json(
        server.port,
        "/v2/models/iris/infer",
        {"inputs": [{"name": name, "shape": [1, 4], "datatype": "FP32", "data": b0.ravel().tolist()}]},
    )
    assert status == 200
    x0 = batches[0].copy()
    x0[0, 1] = np.nan
    sent.append(x0)
    # v2 binary through tritonclient
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    try:
        for x in batches[1:3]:
            inp = httpclient.InferInput(name, list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=True)
            client.infer("iris", [inp])
            sent.append(x)
    finally:
        client.close()
    # v1
    for x in batches[3:]:
        status, _ = post_json(server.port, "/v1/models/iris:predict", {"instances": x.tolist()})
        assert status == 200
        sent.append(x)
    # a bad request is counted by code, not in the drift metrics
    assert post_json(server.port, "/v2/models/iris/infer", {"inputs": []})[0] == 400

    allx = np.concatenate(sent).astype(np.float64)
    sess = ort.InferenceSession(str(clf.model_path))
    labels = np.concatenate([sess.run(None, {name: x.astype(np.float32)})[0] for x in sent])
    m = scrape(server.port)
    for f in clf.profile.features:
        col = allx[:, f.index]
        present = col[~np.isnan(col)]
        buckets = samples(m, "onnxops_feature_value", "_bucket", feature=f.name)
        for lab, value in buckets:
            bound = math.inf if lab["le"] == "+Inf" else float(lab["le"])
            assert value == np.count_nonzero(present <= bound), (f.name, lab["le"])
        assert one(m, "onnxops_feature_value", "_count", feature=f.name) == present.size
        assert one(m, "onnxops_feature_value", "_sum", feature=f.name) == pytest.approx(
            present.sum(), rel=1e-9
        )
        assert one(m, "onnxops_feature_missing", "_total", feature=f.name) == np.isnan(col).sum()
    values, counts = np.unique(labels, return_counts=True)
    for v, c in zip(values, counts, strict=True):
        assert one(m, "onnxops_prediction_class", "_total", **{"class": str(v)}) == c
    assert one(m, "onnxops_rows", "_total", model="iris", version="3") == len(allx)
    assert one(m, "onnxops_requests", "_total", protocol="v2", code="200") == 3
    assert one(m, "onnxops_requests", "_total", protocol="v1", code="200") == 2
    assert one(m, "onnxops_requests", "_total", protocol="v2", code="400") == 1
    assert one(m, "onnxops_request_duration_seconds", "_count", protocol="v2") == 4
    assert one(m, "onnxops_inference_duration_seconds", "_count") == 5
    # the in-process PSI gauge equals PSI of the same window computed from the raw rows
    assert one(m, "onnxops_drift_window_rows") == len(allx)
    for f in clf.profile.features:
        col = allx[:, f.index]
        present = col[~np.isnan(col)]
        cum = [np.count_nonzero(present <= e) for e in f.edges] + [present.size]
        live = np.diff([0, *cum])
        assert one(m, "onnxops_drift_psi", feature=f.name) == pytest.approx(
            stats.psi(f.counts, live), rel=1e-9
        )


def test_regression_prediction_histogram(tmp_path: Path) -> None:
    reg = train_regressor(tmp_path)
    name = ort.InferenceSession(str(reg.model_path)).get_inputs()[0].name
    x = reg.X[:50]
    with ServerThread(reg.config()) as s:
        status, _ = post_json(s.port, "/v1/models/diabetes:predict", {"instances": x.tolist()})
        assert status == 200
        m = scrape(s.port)
    pred = ort.InferenceSession(str(reg.model_path)).run(None, {name: x})[0].ravel().astype(np.float64)
    assert reg.profile.prediction is not None and reg.profile.prediction.kind == "numeric"
    buckets = samples(m, "onnxops_prediction_value", "_bucket")
    assert [float(lab["le"]) for lab, _ in buckets[:-1]] == reg.profile.prediction.edges
    for lab, value in buckets:
        bound = math.inf if lab["le"] == "+Inf" else float(lab["le"])
        assert value == np.count_nonzero(pred <= bound)
    assert "onnxops_prediction_class" not in m


def test_drift_metrics_off_keeps_request_metrics(clf: Bundle) -> None:
    with ServerThread(clf.config(drift_metrics=False)) as s:
        assert post_json(s.port, "/v1/models/iris:predict", {"instances": clf.X[:3].tolist()})[0] == 200
        m = scrape(s.port)
    assert "onnxops_feature_value" not in m
    assert one(m, "onnxops_rows", "_total") == 3


def test_metrics_text_is_valid_for_promtool(clf: Bundle, server: ServerThread, tmp_path: Path) -> None:
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    post_json(server.port, "/v1/models/iris:predict", {"instances": clf.X[:3].tolist()})
    body = request(server.port, "GET", "/metrics")[2]
    res = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(request(server.port, "GET", "/v2/health/ready")[2])["ready"]
