"""The Open Inference Protocol's gRPC form, talked to with Triton's real client (tritonclient.grpc).

Reference values come from scikit-learn (the estimator the ONNX model was exported from); status codes
from the protocol: a malformed request INVALID_ARGUMENT, an unknown model or version NOT_FOUND, a model
that is not loaded UNAVAILABLE.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from sklearn.linear_model import LogisticRegression
from test_serving_support import Bundle, ServerThread, _write, request, train_classifier, wait_loaded
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from onnxops.profile import ClassPrediction


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_classifier(tmp_path_factory.mktemp("clf"))


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory, clf: Bundle) -> Bundle:
    """The iris classifier with string labels: its ONNX label output is BYTES (tensor(string))."""
    names = np.array(["setosa", "versicolor", "virginica"])
    y = names[clf.estimator.predict(clf.X)]
    est = LogisticRegression(max_iter=1000).fit(clf.X, y)
    pred = est.predict(clf.X)
    classes = [str(c) for c in est.classes_]
    counts = [int((pred == c).sum()) for c in est.classes_]
    b = _write(
        tmp_path_factory.mktemp("named"),
        "flowers",
        est,
        clf.X,
        ClassPrediction(classes=classes, counts=counts),
        "classification",
    )
    return b


class Served:
    def __init__(self, srv: ServerThread) -> None:
        assert srv.running is not None and srv.running.grpc is not None
        self.srv = srv
        self.http = srv.port
        self.grpc = srv.running.grpc_port
        self.url = f"127.0.0.1:{self.grpc}"
        self.client = tc.InferenceServerClient(self.url)

    def stub(self) -> tuple[grpc.Channel, Any]:
        ch = grpc.insecure_channel(self.url)
        return ch, service_pb2_grpc.GRPCInferenceServiceStub(ch)


@pytest.fixture(scope="module")
def served(clf: Bundle) -> Iterator[Served]:
    with ServerThread(clf.config(grpc_port=0)) as srv:
        s = Served(srv)
        yield s
        s.client.close()


def _infer(s: Served, x: np.ndarray, model: str = "iris", version: str = "", dtype: str = "FP32") -> Any:
    inp = tc.InferInput("X", list(x.shape), dtype)
    inp.set_data_from_numpy(x)
    return s.client.infer(model, [inp], model_version=version, request_id="req-1")


def _code(exc: InferenceServerException) -> str:
    return str(exc.status())


def test_health_and_metadata(served: Served, clf: Bundle) -> None:
    c = served.client
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("iris") and c.is_model_ready("iris", "3")
    meta = c.get_model_metadata("iris", "3", as_json=True)
    assert meta["name"] == "iris" and meta["versions"] == ["3"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("label", "INT64"),
        ("probabilities", "FP32"),
    ]
    assert c.get_server_metadata(as_json=True)["name"] == "onnxops"
    with pytest.raises(InferenceServerException) as e:
        c.is_model_ready("nope")
    assert _code(e.value) == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as e:
        c.get_model_metadata("iris", "9")
    assert _code(e.value) == "StatusCode.NOT_FOUND"


@pytest.mark.parametrize("rows", [1, 64])
def test_raw_contents_match_scikit_learn(served: Served, clf: Bundle, rows: int) -> None:
    x = clf.X[np.arange(rows) * 2 % len(clf.X)]
    res = _infer(served, x, version="3")
    np.testing.assert_array_equal(res.as_numpy("label"), clf.estimator.predict(x))
    np.testing.assert_allclose(
        res.as_numpy("probabilities"), clf.estimator.predict_proba(x), rtol=1e-4, atol=1e-6
    )
    r = res.get_response()
    assert r.model_name == "iris" and r.model_version == "3" and r.id == "req-1"
    assert len(r.raw_output_contents) == 2  # raw in, raw out


def test_typed_contents_match_scikit_learn(served: Served, clf: Bundle) -> None:
    x = clf.X[:5]
    req = service_pb2.ModelInferRequest(model_name="iris", id="typed")
    t = req.inputs.add(name="X", datatype="FP32", shape=[5, 4])
    t.contents.fp32_contents.extend(x.ravel().tolist())
    req.outputs.add(name="probabilities")
    req.outputs.add(name="label")
    ch, stub = served.stub()
    with ch:
        resp = stub.ModelInfer(req, timeout=10)
    assert not resp.raw_output_contents and [o.name for o in resp.outputs] == ["probabilities", "label"]
    proba, label = resp.outputs
    assert list(proba.shape) == [5, 3] and list(label.shape) == [5]
    np.testing.assert_allclose(
        np.array(proba.contents.fp32_contents).reshape(5, 3),
        clf.estimator.predict_proba(x),
        rtol=1e-4,
        atol=1e-6,
    )
    np.testing.assert_array_equal(np.array(label.contents.int64_contents), clf.estimator.predict(x))
    assert resp.id == "typed"


def test_bytes_labels_raw_and_typed(named: Bundle) -> None:
    x = named.X[::15]
    want = named.estimator.predict(x)
    with ServerThread(named.config(grpc_port=0)) as srv:
        s = Served(srv)
        res = _infer(s, x, model="flowers")
        got = res.as_numpy("label")
        assert [v.decode() for v in got.ravel()] == list(want)
        req = service_pb2.ModelInferRequest(model_name="flowers")
        t = req.inputs.add(name="X", datatype="FP32", shape=list(x.shape))
        t.contents.fp32_contents.extend(x.ravel().tolist())
        ch, stub = s.stub()
        with ch:
            resp = stub.ModelInfer(req, timeout=10)
        label = next(o for o in resp.outputs if o.name == "label")
        assert label.datatype == "BYTES" and [v.decode() for v in label.contents.bytes_contents] == list(want)
        s.client.close()


def _raw_request(shape: list[int], datatype: str, raw: bytes, model: str = "iris", name: str = "X") -> Any:
    req = service_pb2.ModelInferRequest(model_name=model)
    req.inputs.add(name=name, datatype=datatype, shape=shape)
    req.raw_input_contents.append(raw)
    return req


def _with_output(req: Any, name: str) -> Any:
    req.outputs.add(name=name)
    return req


@pytest.mark.parametrize(
    ("req", "code", "words"),
    [
        (_raw_request([2, 3], "FP32", b"\0" * 24), grpc.StatusCode.INVALID_ARGUMENT, "shape [2, 3]"),
        (_raw_request([2, 4], "FP64", b"\0" * 64), grpc.StatusCode.INVALID_ARGUMENT, "datatype 'FP64'"),
        (_raw_request([2, 4], "FP32", b"\0" * 31), grpc.StatusCode.INVALID_ARGUMENT, "31 bytes"),
        (
            _raw_request([2, 4], "FP32", b"\0" * 32, name="Y"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown input",
        ),
        (service_pb2.ModelInferRequest(model_name="iris"), grpc.StatusCode.INVALID_ARGUMENT, "inputs"),
        (
            _with_output(_raw_request([1, 4], "FP32", b"\0" * 16), "proba"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown output tensor 'proba'",
        ),
        (_raw_request([2, 4], "FP32", b"\0" * 32, model="nope"), grpc.StatusCode.NOT_FOUND, "unknown model"),
    ],
    ids=["shape", "dtype", "size", "unknown-input", "missing-input", "unknown-output", "unknown-model"],
)
def test_bad_requests_get_the_protocols_status(
    served: Served, req: Any, code: grpc.StatusCode, words: str
) -> None:
    ch, stub = served.stub()
    with ch, pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(req, timeout=10)
    assert e.value.code() == code
    assert words in e.value.details()


def test_unknown_version_and_typed_size_mismatch(served: Served, clf: Bundle) -> None:
    with pytest.raises(InferenceServerException) as e:
        _infer(served, clf.X[:2], version="4")
    assert _code(e.value) == "StatusCode.NOT_FOUND" and "version '4'" in e.value.message()
    req = service_pb2.ModelInferRequest(model_name="iris")
    t = req.inputs.add(name="X", datatype="FP32", shape=[2, 4])
    t.contents.fp32_contents.extend([1.0] * 7)
    ch, stub = served.stub()
    with ch, pytest.raises(grpc.RpcError) as e2:
        stub.ModelInfer(req, timeout=10)
    assert e2.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "7 elements" in e2.value.details()


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_and_drift_are_shared_with_http(served: Served, clf: Bundle) -> None:
    def scrape() -> str:
        return request(served.http, "GET", "/metrics")[2].decode()

    before = scrape()
    x = clf.X[:10]
    _infer(served, x)
    ch, stub = served.stub()
    with ch, pytest.raises(grpc.RpcError):
        stub.ModelInfer(_raw_request([1, 4], "FP32", b"\0" * 16, model="nope"), timeout=10)
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    assert delta("onnxops_requests_total", protocol="grpc", code="200") == 1
    assert delta("onnxops_requests_total", protocol="grpc", code="404") == 1
    assert delta("onnxops_rows_total") == 10
    # the feature histogram counts exactly the rows sent, bucketed like numpy (right-closed bins)
    f0 = next(f for f in clf.profile.features if f.name == "f0")
    edges = list(f0.edges)
    x0 = x[:, 0].astype(np.float64)  # the exact comparison, not one rounded to float32
    for e in edges:
        want = int((x0 <= e).sum())
        assert delta("onnxops_feature_value_bucket", feature="f0", le=repr(float(e))) == want, e
    assert delta("onnxops_feature_value_count", feature="f0") == 10
    pred = clf.estimator.predict(x)
    for c in np.unique(pred):
        assert delta("onnxops_prediction_class_total", **{"class": str(c)}) == int((pred == c).sum())


def test_capture_gets_the_grpc_request(served: Served, clf: Bundle) -> None:
    got: list[tuple[str, int]] = []

    class Recorder:
        def record(self, model: Any, rid: str, feeds: Any, outs: Any, rows: int) -> None:
            got.append((rid, rows))

    assert served.srv.running is not None and served.srv.running.grpc is not None
    h = served.srv.running.grpc.service.h
    h.capture = Recorder()  # type: ignore[assignment]
    try:
        _infer(served, clf.X[:3])
    finally:
        h.capture = None
    assert got == [("req-1", 3)]


def test_not_ready_is_unavailable(clf: Bundle, tmp_path: Path) -> None:
    cfg = clf.config(grpc_port=0, sha256="0" * 64, load_retry_initial_seconds=30.0)
    with ServerThread(cfg) as srv:
        s = Served(srv)
        assert s.client.is_server_live() and not s.client.is_server_ready()
        assert not s.client.is_model_ready("iris")
        with pytest.raises(InferenceServerException) as e:
            _infer(s, clf.X[:1])
        assert _code(e.value) == "StatusCode.UNAVAILABLE" and "DigestMismatch" in e.value.message()
        s.client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_process_serves_grpc_beside_http_and_stops_both_on_sigterm(clf: Bundle) -> None:
    gport = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONNXOPS_")}
    env.update(
        ONNXOPS_MODEL_NAME="iris",
        ONNXOPS_MODEL_URI=clf.model_path.as_uri(),
        ONNXOPS_MODEL_SHA256=clf.model_sha,
        ONNXOPS_HOST="127.0.0.1",
        ONNXOPS_PORT="0",
        ONNXOPS_GRPC_PORT=str(gport),
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "onnxops.serving"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert p.stderr is not None
        listening = json.loads(p.stderr.readline())
        assert listening["msg"] == "listening" and listening["grpcPort"] == gport
        wait_loaded(listening["port"])
        client = tc.InferenceServerClient(f"127.0.0.1:{gport}")
        inp = tc.InferInput("X", [2, 4], "FP32")
        inp.set_data_from_numpy(clf.X[:2])
        np.testing.assert_array_equal(
            client.infer("iris", [inp]).as_numpy("label"), clf.estimator.predict(clf.X[:2])
        )
        client.close()
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        for port in (gport, listening["port"]):  # both listeners are closed
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
