"""Random bodies and paths thrown at a running server: never a 5xx, and it keeps answering correctly."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_serving_support import Bundle, ServerThread, post_json, request, train_classifier

PATHS = [
    "/v2/models/iris/infer",
    "/v2/models/iris/versions/3/infer",
    "/v1/models/iris:predict",
    "/v2/models/iris",
    "/v2/health/ready",
    "/metrics",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["X", "input", "", "label"]),
        "shape": st.lists(st.integers(-2, 70), max_size=3),
        "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "BOOL", "FP16", "XYZ"]),
    },
    optional={
        "data": json_values | st.lists(st.floats(width=32) | st.none(), max_size=300),
        "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-5, 300) | json_values}),
    },
)
infer_docs = st.fixed_dictionaries(
    {"inputs": st.lists(tensor, max_size=3) | json_values},
    optional={
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["label", "probabilities", "x"])},
                optional={"parameters": json_values},
            ),
            max_size=3,
        ),
        "parameters": st.fixed_dictionaries({"binary_data_output": json_values}),
        "instances": json_values | st.lists(st.lists(st.floats(width=32), max_size=6), max_size=4),
        "id": json_values,
    },
)
bodies = (
    infer_docs.map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda d: json.dumps(d).encode())
    | st.binary(max_size=400)
)
path_chars = st.sampled_from(list("abcdefghijklmnopqrstuvwxyz0123456789/:%?=.-_~"))
paths = st.sampled_from(PATHS) | st.lists(path_chars, min_size=1, max_size=40).map(lambda c: "/" + "".join(c))


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_classifier(tmp_path_factory.mktemp("clf"))


@pytest.fixture(scope="module")
def server(clf: Bundle) -> Iterator[ServerThread]:
    with ServerThread(clf.config(max_body_bytes=100_000)) as s:
        yield s


def _check_still_correct(clf: Bundle, port: int) -> None:
    sess = ort.InferenceSession(str(clf.model_path))
    name = sess.get_inputs()[0].name
    x = clf.X[::30]
    status, doc = post_json(
        port,
        "/v2/models/iris/infer",
        {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]},
    )
    assert status == 200
    want_label, want_proba = sess.run(None, {name: x})
    assert doc["outputs"][0]["data"] == want_label.tolist()
    np.testing.assert_array_equal(
        np.asarray(doc["outputs"][1]["data"], dtype=np.float32).reshape(want_proba.shape), want_proba
    )


@settings(
    max_examples=200,
    deadline=None,
    database=None,  # no example database written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["POST", "GET", "PUT"]),
    path=paths,
    body=bodies,
    header_len=st.none() | st.integers(-3, 500).map(str) | st.text(alphabet="0123456789-+.abcx", max_size=4),
)
def test_random_requests_never_5xx(
    server: ServerThread, method: str, path: str, body: bytes, header_len: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if header_len is not None and header_len.isprintable() and header_len.strip() == header_len:
        headers["Inference-Header-Content-Length"] = header_len
    status, _, raw = request(server.port, method, path, body, headers)
    assert status < 500, (status, raw[:300])
    if status >= 400 and path not in ("/metrics",):
        assert json.loads(raw)["error"]


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(min_size=1, max_size=300))
def test_random_bytes_on_the_socket_do_not_hurt_the_server(server: ServerThread, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(2)
        try:
            reply = s.recv(200)
        except TimeoutError:
            reply = b""
    assert not reply or reply.startswith(b"HTTP/1.1 ")
    assert b" 500 " not in reply[:20]


def test_server_is_still_correct_after_fuzzing(clf: Bundle, server: ServerThread) -> None:
    # runs after the fuzz tests in this module (same server)
    _check_still_correct(clf, server.port)
    assert request(server.port, "GET", "/v2/health/ready")[0] == 200
