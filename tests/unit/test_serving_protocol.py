"""OIP v2 and KServe v1 decoding/encoding on a real ONNX model, without HTTP."""

from __future__ import annotations

import struct

import numpy as np
import onnxruntime as ort
import orjson
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from onnxops.serving import protocol_v1, protocol_v2
from onnxops.serving.model import LoadedModel, TensorInfo, _tensor_info
from onnxops.serving.protocol_v2 import ProtocolError, _binary, _from_binary


@pytest.fixture(scope="module")
def model() -> tuple[LoadedModel, LogisticRegression]:
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    est = LogisticRegression(max_iter=500).fit(X, y)
    onx = to_onnx(est, X[:1], options={id(est): {"zipmap": False}}, target_opset=17)
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    m = LoadedModel(
        "iris",
        "1",
        sess,
        [_tensor_info(a) for a in sess.get_inputs()],
        [_tensor_info(a) for a in sess.get_outputs()],
        None,
        "0" * 64,
    )
    return m, est


def test_binary_request_and_response_round_trip(model: tuple[LoadedModel, LogisticRegression]) -> None:
    m, est = model
    x = load_iris().data[:10].astype(np.float32)
    name = m.inputs[0].name
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": [10, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "probabilities"}],
        }
    )
    req = protocol_v2.decode_request(m, header + x.tobytes(), len(header))
    np.testing.assert_array_equal(req.feeds[name], x)
    body, json_len = protocol_v2.encode_response(m, req, m.run(req.feeds))
    assert json_len is not None
    doc = orjson.loads(body[:json_len])
    label_meta, proba_meta = doc["outputs"]
    assert label_meta["parameters"]["binary_data_size"] == 80 and "data" not in label_meta
    labels = np.frombuffer(body[json_len:], dtype="<i8")
    np.testing.assert_array_equal(labels, est.predict(x))
    np.testing.assert_allclose(proba_meta["data"], est.predict_proba(x).ravel(), atol=1e-5)


def test_v2_errors(model: tuple[LoadedModel, LogisticRegression]) -> None:
    m, _ = model
    name = m.inputs[0].name
    good = {"name": name, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    cases = [
        ({"inputs": [good, good]}, "given twice"),
        ({"inputs": [{**good, "shape": [1, -4]}]}, "non-negative integers"),
        ({"inputs": [{k: v for k, v in good.items() if k != "data"}]}, "neither 'data' nor"),
        ({"inputs": [good], "outputs": "label"}, "'outputs' must be an array"),
    ]
    for doc, message in cases:
        with pytest.raises(ProtocolError) as exc:
            protocol_v2.decode_request(m, orjson.dumps(doc), None)
        assert exc.value.status == 400 and message in exc.value.message
    header = orjson.dumps({"inputs": [good]})
    with pytest.raises(ProtocolError, match="not claimed by any input"):
        protocol_v2.decode_request(m, header + b"\0" * 4, len(header))
    with pytest.raises(ProtocolError, match="outside the body"):
        protocol_v2.decode_request(m, header, len(header) + 5)


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("BOOL", np.array([True, False, True])),
        ("INT32", np.array([-1, 0, 2**31 - 1], dtype=np.int32)),
        ("FP16", np.array([0.5, -2.0, 65504.0], dtype=np.float16)),
        ("FP64", np.array([1e300, -0.0, 3.25])),
        ("UINT8", np.array([0, 255, 7], dtype=np.uint8)),
    ],
)
def test_binary_codec_every_numeric_datatype(datatype: str, values: np.ndarray) -> None:
    from onnxops.serving.model import DATATYPES

    info = TensorInfo("t", datatype, (-1,), DATATYPES[datatype])
    raw = _binary(values, datatype)
    assert len(raw) == values.size * (1 if datatype == "BOOL" else values.itemsize)
    np.testing.assert_array_equal(_from_binary(info, memoryview(raw), (3,)), values)


def test_binary_codec_bytes() -> None:
    info = TensorInfo("s", "BYTES", (-1,), object)
    values = np.array(["red", "", "grün"], dtype=object)
    raw = _binary(values, "BYTES")
    assert raw[:4] == struct.pack("<I", 3)  # 4-byte little-endian length prefix per element
    assert _from_binary(info, memoryview(raw), (3,)).tolist() == ["red", "", "grün"]
    with pytest.raises(ProtocolError, match="overruns"):
        _from_binary(info, memoryview(raw[:-1]), (3,))


def test_v1_decode_and_encode(model: tuple[LoadedModel, LogisticRegression]) -> None:
    m, est = model
    x = load_iris().data[:3].astype(np.float32)
    feeds, rows = protocol_v1.decode_request(m, orjson.dumps({"instances": x.tolist()}))
    assert rows == 3
    doc = orjson.loads(protocol_v1.encode_response(m, m.run(feeds)))
    assert doc["predictions"] == est.predict(x).tolist()
    with pytest.raises(ProtocolError, match="need feature names"):
        protocol_v1.decode_request(m, orjson.dumps({"instances": [{"a": 1}]}))
