"""The server over real HTTP, checked against onnxruntime and scikit-learn directly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from test_serving_support import (
    Bundle,
    ServerThread,
    post_json,
    request,
    train_classifier,
    train_regressor,
    v2_body,
)


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_classifier(tmp_path_factory.mktemp("clf"))


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_regressor(tmp_path_factory.mktemp("reg"))


@pytest.fixture(scope="module")
def clf_server(clf: Bundle) -> Iterator[ServerThread]:
    with ServerThread(clf.config(max_body_bytes=200_000)) as s:
        yield s


def session(b: Bundle) -> ort.InferenceSession:
    return ort.InferenceSession(str(b.model_path), providers=["CPUExecutionProvider"])


def input_name(b: Bundle) -> str:
    return str(session(b).get_inputs()[0].name)


def rows(b: Bundle, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return b.X[rng.integers(0, len(b.X), n)] + rng.normal(0, 0.05, (n, b.X.shape[1])).astype(np.float32)


# -- health and metadata -------------------------------------------------------------------------------
def test_health_and_metadata(clf: Bundle, clf_server: ServerThread) -> None:
    port = clf_server.port
    assert request(port, "GET", "/v2/health/live")[0] == 200
    status, _, body = request(port, "GET", "/v2/health/ready")
    assert status == 200 and json.loads(body)["ready"] is True
    sess = session(clf)
    status, meta = 0, {}
    status, _, raw = request(port, "GET", "/v2/models/iris/versions/3")
    meta = json.loads(raw)
    assert status == 200
    assert [i["name"] for i in meta["inputs"]] == [i.name for i in sess.get_inputs()]
    assert [o["name"] for o in meta["outputs"]] == [o.name for o in sess.get_outputs()]
    assert meta["inputs"][0]["datatype"] == "FP32" and meta["inputs"][0]["shape"] == [-1, 4]
    assert request(port, "GET", "/v2/models/iris/ready")[0] == 200
    assert json.loads(request(port, "GET", "/v1/models/iris")[2]) == {"name": "iris", "ready": True}
    assert "binary_tensor_data" in json.loads(request(port, "GET", "/v2")[2])["extensions"]


# -- v2 JSON ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/v2/models/iris/infer", "/v2/models/iris/versions/3/infer"])
@pytest.mark.parametrize("n", [1, 7, 64])
def test_v2_json_matches_onnxruntime_and_sklearn(
    clf: Bundle, clf_server: ServerThread, path: str, n: int
) -> None:
    x = rows(clf, n, seed=n)
    status, doc = post_json(clf_server.port, path, v2_body(x, input_name(clf), id="req-1"))
    assert status == 200, doc
    assert doc["model_name"] == "iris" and doc["model_version"] == "3" and doc["id"] == "req-1"
    out = {o["name"]: o for o in doc["outputs"]}
    want_label, want_proba = session(clf).run(None, {input_name(clf): x})
    assert out["label"]["datatype"] == "INT64" and out["label"]["shape"] == [n]
    assert out["label"]["data"] == want_label.tolist() == clf.estimator.predict(x).tolist()
    assert out["probabilities"]["shape"] == [n, 3]
    got = np.asarray(out["probabilities"]["data"], dtype=np.float32).reshape(n, 3)
    np.testing.assert_array_equal(got, want_proba)  # float32 survives the JSON round trip exactly
    np.testing.assert_allclose(got, clf.estimator.predict_proba(x), atol=1e-5)


def test_v2_requested_output_subset(clf: Bundle, clf_server: ServerThread) -> None:
    x = rows(clf, 3)
    status, doc = post_json(
        clf_server.port,
        "/v2/models/iris/infer",
        v2_body(x, input_name(clf), outputs=[{"name": "probabilities"}]),
    )
    assert status == 200
    assert [o["name"] for o in doc["outputs"]] == ["probabilities"]


def test_v2_nested_json_data_is_accepted(clf: Bundle, clf_server: ServerThread) -> None:
    x = rows(clf, 2)
    body = {"inputs": [{"name": input_name(clf), "shape": [2, 4], "datatype": "FP32", "data": x.tolist()}]}
    status, doc = post_json(clf_server.port, "/v2/models/iris/infer", body)
    assert status == 200
    assert doc["outputs"][0]["data"] == clf.estimator.predict(x).tolist()


# -- v2 binary through the real tritonclient -------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 64])
def test_v2_binary_with_tritonclient(clf: Bundle, clf_server: ServerThread, n: int) -> None:
    x = rows(clf, n, seed=100 + n)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{clf_server.port}")
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
        meta = client.get_model_metadata("iris")
        assert meta["inputs"][0]["name"] == input_name(clf)
        inp = httpclient.InferInput(input_name(clf), list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        outs = [
            httpclient.InferRequestedOutput("label", binary_data=True),
            httpclient.InferRequestedOutput("probabilities", binary_data=True),
        ]
        result = client.infer("iris", [inp], outputs=outs, model_version="3")
        want_label, want_proba = session(clf).run(None, {input_name(clf): x})
        np.testing.assert_array_equal(result.as_numpy("label"), want_label)
        np.testing.assert_array_equal(result.as_numpy("probabilities"), want_proba)
        np.testing.assert_array_equal(result.as_numpy("label"), clf.estimator.predict(x))
        # no outputs named: tritonclient asks for all of them in binary
        result = client.infer("iris", [inp])
        np.testing.assert_array_equal(result.as_numpy("probabilities"), want_proba)
        # binary input, JSON outputs
        result = client.infer(
            "iris", [inp], outputs=[httpclient.InferRequestedOutput("label", binary_data=False)]
        )
        np.testing.assert_array_equal(result.as_numpy("label"), want_label)
    finally:
        client.close()


# -- v1 ------------------------------------------------------------------------------------------------
def test_v1_predict_matches_sklearn(clf: Bundle, clf_server: ServerThread) -> None:
    x = rows(clf, 5)
    status, doc = post_json(clf_server.port, "/v1/models/iris:predict", {"instances": x.tolist()})
    assert status == 200, doc
    assert doc["predictions"] == clf.estimator.predict(x).tolist()
    _, want_proba = session(clf).run(None, {input_name(clf): x})
    np.testing.assert_array_equal(np.asarray(doc["probabilities"], dtype=np.float32), want_proba)


def test_v1_instances_as_objects_by_feature_name(clf: Bundle, clf_server: ServerThread) -> None:
    x = rows(clf, 2)
    instances = [{f"f{i}": float(v) for i, v in enumerate(row)} for row in x]
    status, doc = post_json(clf_server.port, "/v1/models/iris:predict", {"instances": instances})
    assert status == 200, doc
    assert doc["predictions"] == clf.estimator.predict(x).tolist()


def test_regressor_v1_and_v2(reg: Bundle) -> None:
    with ServerThread(reg.config()) as s:
        x = rows(reg, 9)
        want = session(reg).run(None, {input_name(reg): x})[0]
        status, doc = post_json(s.port, "/v2/models/diabetes/infer", v2_body(x, input_name(reg)))
        assert status == 200
        out = doc["outputs"][0]
        assert out["datatype"] == "FP32" and out["shape"] == list(want.shape)
        np.testing.assert_array_equal(np.asarray(out["data"], dtype=np.float32), want.ravel())
        np.testing.assert_allclose(want.ravel(), reg.estimator.predict(x), rtol=1e-4, atol=1e-3)
        status, doc = post_json(s.port, "/v1/models/diabetes:predict", {"instances": x.tolist()})
        assert status == 200
        np.testing.assert_array_equal(np.asarray(doc["predictions"], dtype=np.float32), want.ravel())
        assert "probabilities" not in doc


# -- bad requests ----------------------------------------------------------------------------------------
GOOD = [[5.1, 3.5, 1.4, 0.2]]


def _v2(name: str = "X", shape: list[int] | None = None, datatype: str = "FP32", data: object = None) -> dict:
    return {
        "inputs": [
            {
                "name": name,
                "shape": shape or [1, 4],
                "datatype": datatype,
                "data": GOOD[0] if data is None else data,
            }
        ]
    }


BAD_V2 = [
    ("/v2/models/nope/infer", _v2(), "unknown model 'nope'"),
    ("/v2/models/iris/versions/9/infer", _v2(), "unknown version '9'"),
    ("/v2/models/iris/infer", _v2(name="features"), "unknown input tensor 'features'"),
    ("/v2/models/iris/infer", _v2(shape=[1, 5], data=[1, 2, 3, 4, 5]), "shape [1, 5] does not match"),
    ("/v2/models/iris/infer", _v2(shape=[4]), "shape [4] does not match"),
    ("/v2/models/iris/infer", _v2(datatype="FP64"), "datatype 'FP64' does not match the model's 'FP32'"),
    ("/v2/models/iris/infer", _v2(data=[1.0, 2.0, 3.0]), "data has 3 elements but shape [1, 4] needs 4"),
    ("/v2/models/iris/infer", _v2(shape=[2, 4]), "data has 4 elements but shape [2, 4] needs 8"),
    ("/v2/models/iris/infer", _v2(data=["a", "b", "c", "d"]), "not a valid FP32 array"),
    ("/v2/models/iris/infer", {"inputs": []}, "'inputs' must be a non-empty array"),
    ("/v2/models/iris/infer", [1, 2], "must be a JSON object"),
    ("/v2/models/iris/infer", {**_v2(), "outputs": [{"name": "proba"}]}, "unknown output tensor 'proba'"),
    ("/v1/models/nope:predict", {"instances": GOOD}, "unknown model 'nope'"),
    ("/v1/models/iris:predict", {"instances": [[1.0, 2.0, 3.0]]}, "shape [1, 3] does not match"),
    ("/v1/models/iris:predict", {"rows": GOOD}, "'instances' must be a non-empty array"),
    ("/v1/models/iris:predict", {"instances": [1.0, 2.0, 3.0, 4.0]}, "list of rows"),
]


@pytest.mark.parametrize(("path", "doc", "message"), BAD_V2)
def test_bad_requests_get_400_naming_the_problem(
    clf_server: ServerThread, path: str, doc: object, message: str
) -> None:
    status, body = post_json(clf_server.port, path, doc)
    assert status == 400
    assert message in body["error"]


@pytest.mark.parametrize("path", ["/v2/models/iris/infer", "/v1/models/iris:predict"])
def test_malformed_json_gets_400(clf_server: ServerThread, path: str) -> None:
    status, _, body = request(clf_server.port, "POST", path, b'{"inputs": [')
    assert status == 400
    assert "malformed JSON" in json.loads(body)["error"]


def test_body_over_the_limit_gets_400(clf_server: ServerThread) -> None:
    status, _, body = request(clf_server.port, "POST", "/v2/models/iris/infer", b"x" * 200_001)
    assert status == 400
    assert "over the limit of 200000 bytes" in json.loads(body)["error"]
    assert request(clf_server.port, "GET", "/v2/health/ready")[0] == 200


def test_binary_length_mismatch_gets_400(clf: Bundle, clf_server: ServerThread) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": input_name(clf),
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 12},
                }
            ]
        }
    ).encode()
    body = header + np.zeros(3, np.float32).tobytes()
    status, _, raw = request(
        clf_server.port,
        "POST",
        "/v2/models/iris/infer",
        body,
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert status == 400
    assert "binary data has 12 bytes but shape [1, 4] of FP32 needs 16" in json.loads(raw)["error"]


def test_unknown_endpoint_and_method(clf_server: ServerThread) -> None:
    assert request(clf_server.port, "GET", "/nope")[0] == 404
    status, _, body = request(clf_server.port, "GET", "/v2/models/iris/infer")
    assert status == 405 and "use POST" in json.loads(body)["error"]


# -- not ready: digest mismatch, missing artifact ------------------------------------------------------------
def test_digest_mismatch_is_not_ready_and_refuses_inference(clf: Bundle) -> None:
    wrong = "0" * 64
    with ServerThread(clf.config(sha256=wrong)) as s:
        status, _, body = request(s.port, "GET", "/v2/health/ready")
        health = json.loads(body)
        assert status == 503
        assert health["ready"] is False and health["reason"] == "DigestMismatch"
        assert wrong in health["message"] and clf.model_sha in health["message"]
        status, doc = post_json(s.port, "/v2/models/iris/infer", _v2(name=input_name(clf)))
        assert status == 503 and "DigestMismatch" in doc["error"]
        status, doc = post_json(s.port, "/v1/models/iris:predict", {"instances": GOOD})
        assert status == 503
        assert request(s.port, "GET", "/v2/health/live")[0] == 200


def test_missing_artifact_is_not_ready(clf: Bundle, tmp_path: Path) -> None:
    with ServerThread(clf.config(model_uri=(tmp_path / "absent.onnx").as_uri())) as s:
        status, _, body = request(s.port, "GET", "/v2/health/ready")
        assert status == 503
        assert json.loads(body)["reason"] == "ArtifactUnavailable"


def test_corrupt_artifact_with_matching_digest_is_not_ready(clf: Bundle, tmp_path: Path) -> None:
    import hashlib

    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"not an onnx model")
    sha = hashlib.sha256(junk.read_bytes()).hexdigest()
    with ServerThread(clf.config(model_uri=junk.as_uri(), sha256=sha)) as s:
        status, _, body = request(s.port, "GET", "/v2/health/ready")
        assert status == 503 and json.loads(body)["reason"] == "InvalidModel"


def test_profile_digest_mismatch_is_not_ready(clf: Bundle) -> None:
    with ServerThread(clf.config(profile_sha256="f" * 64)) as s:
        status, _, body = request(s.port, "GET", "/v2/health/ready")
        assert status == 503 and json.loads(body)["reason"] == "ProfileDigestMismatch"


def test_silent_connections_are_closed(clf: Bundle) -> None:
    import socket

    with ServerThread(clf.config(head_timeout_seconds=0.3, idle_timeout_seconds=0.3)) as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nContent-Le")  # stalls mid-header
            assert c.recv(100) == b""  # closed by the server, no reply
        assert request(s.port, "GET", "/v2/health/live")[0] == 200


def _read_responses(sock: object, count: int) -> list[tuple[bytes, bytes]]:
    import socket

    assert isinstance(sock, socket.socket)
    buf, out = b"", []
    while len(out) < count:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        buf += chunk
        while b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            length = int(
                next(
                    ln.split(b":")[1]
                    for ln in head.split(b"\r\n")
                    if ln.lower().startswith(b"content-length")
                )
            )
            if len(rest) < length:
                break
            out.append((head, rest[:length]))
            buf = rest[length:]
    return out


def test_pipelined_requests_and_expect_continue(clf: Bundle, clf_server: ServerThread) -> None:
    import socket

    x = rows(clf, 2)
    body = json.dumps(v2_body(x, input_name(clf))).encode()
    infer = (
        f"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", clf_server.port), timeout=5) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n" + infer + infer)  # three at once
        (h1, b1), (h2, b2), (h3, b3) = _read_responses(s, 3)
        assert h1.startswith(b"HTTP/1.1 200") and json.loads(b1) == {"live": True}
        for h, b in ((h2, b2), (h3, b3)):
            assert h.startswith(b"HTTP/1.1 200")
            assert json.loads(b)["outputs"][0]["data"] == clf.estimator.predict(x).tolist()
        # curl sends Expect: 100-continue for large bodies and waits for the interim response
        s.sendall(
            (
                f"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        ((h4, b4),) = _read_responses(s, 1)
        assert (
            h4.startswith(b"HTTP/1.1 200")
            and json.loads(b4)["outputs"][0]["data"] == clf.estimator.predict(x).tolist()
        )
