"""Open Inference Protocol v2 over HTTP: JSON tensors and the binary tensor data extension.

Pure functions from bytes to numpy feeds and from outputs to bytes; every problem raises
``ProtocolError`` with the HTTP status and a message that names the tensor and what is wrong.
"""

from __future__ import annotations

import math
import struct
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .model import DATATYPES, LoadedModel, TensorInfo

HEADER_LENGTH = "inference-header-content-length"
_LITTLE_ENDIAN = sys.byteorder == "little"
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


class ProtocolError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad(message: str) -> ProtocolError:
    return ProtocolError(400, message)


@dataclass
class V2Request:
    feeds: dict[str, np.ndarray]
    outputs: list[tuple[str, bool]]  # (name, binary), in response order
    request_id: Any
    rows: int


def _loads(data: bytes | memoryview) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise bad(f"malformed JSON: {exc}") from None


def _shape(spec: dict[str, Any], name: str) -> tuple[int, ...]:
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad(f"input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}")
    return tuple(shape)


def check_shape(info: TensorInfo, shape: tuple[int, ...]) -> None:
    want = info.shape
    if want and (len(shape) != len(want) or any(w >= 0 and w != s for w, s in zip(want, shape, strict=True))):
        raise bad(
            f"input {info.name!r}: shape {list(shape)} does not match the model's {list(want)} (-1 = any)"
        )


def _from_json(info: TensorInfo, data: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(data, list):
        raise bad(f"input {info.name!r}: 'data' must be a JSON array")
    try:
        if info.datatype == "BYTES":
            arr = np.array(data, dtype=object).ravel()
            if not all(isinstance(v, str) for v in arr):
                raise bad(f"input {info.name!r}: BYTES data must be strings")
        else:
            arr = np.asarray(data, dtype=info.dtype).ravel()
    except (ValueError, TypeError, OverflowError) as exc:
        raise bad(f"input {info.name!r}: data is not a valid {info.datatype} array: {exc}") from None
    n = math.prod(shape)
    if arr.size != n:
        raise bad(f"input {info.name!r}: data has {arr.size} elements but shape {list(shape)} needs {n}")
    return arr.reshape(shape)


def _from_binary(info: TensorInfo, raw: memoryview, shape: tuple[int, ...]) -> np.ndarray:
    n = math.prod(shape)
    if info.datatype == "BYTES":
        items, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise bad(f"input {info.name!r}: truncated BYTES element length")
            (size,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + size > len(raw):
                raise bad(f"input {info.name!r}: BYTES element overruns its binary data")
            items.append(bytes(raw[pos : pos + size]).decode("utf-8", "replace"))
            pos += size
        arr = np.array(items, dtype=object)
    else:
        dtype = _WIRE_DTYPE.get(info.datatype)
        if dtype is None:  # not `or`: a plain dtype is falsy (its len() is 0)
            dtype = _wire_dtype(info)
        if len(raw) != n * dtype.itemsize:
            raise bad(
                f"input {info.name!r}: binary data has {len(raw)} bytes but shape {list(shape)} "
                f"of {info.datatype} needs {n * dtype.itemsize}"
            )
        arr = np.frombuffer(raw, dtype=dtype)
        arr = arr.astype(bool) if info.datatype == "BOOL" else arr.astype(info.dtype, copy=False)
    if arr.size != n:
        raise bad(
            f"input {info.name!r}: binary data has {arr.size} elements but shape {list(shape)} needs {n}"
        )
    return arr.reshape(shape)


_WIRE_DTYPE: dict[str, np.dtype[Any]] = {}  # datatype -> the little-endian dtype of its raw bytes


def _wire_dtype(info: TensorInfo) -> np.dtype[Any]:
    dtype = np.dtype(np.uint8 if info.datatype == "BOOL" else info.dtype).newbyteorder("<")
    _WIRE_DTYPE[info.datatype] = dtype
    return dtype


def from_binary(info: TensorInfo, raw: bytes | memoryview, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor from its raw little-endian bytes (the binary extension, gRPC ``raw_input_contents``)."""
    return _from_binary(info, memoryview(raw), shape)


def from_values(info: TensorInfo, values: Any, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor from a flat sequence of typed values (gRPC ``InferTensorContents``)."""
    n = math.prod(shape)
    try:
        if info.datatype == "BYTES":
            arr = np.array(
                [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values], dtype=object
            )
        else:
            arr = np.array(values, dtype=info.dtype)  # out-of-range integers raise OverflowError
    except (ValueError, TypeError, OverflowError) as exc:
        raise bad(f"input {info.name!r}: contents are not a valid {info.datatype} array: {exc}") from None
    if arr.size != n:
        raise bad(f"input {info.name!r}: contents have {arr.size} elements but shape {list(shape)} needs {n}")
    return arr.reshape(shape)


def rows_of(feeds: dict[str, np.ndarray]) -> int:
    """The batch size the inputs agree on (400 when they do not)."""
    return _rows(feeds)


def to_binary(arr: np.ndarray, datatype: str) -> bytes:
    """An output's raw little-endian bytes (BYTES: 4-byte length + bytes per element)."""
    return _binary(arr, datatype)


def decode_request(model: LoadedModel, body: bytes, header_length: int | None) -> V2Request:
    """Parse an infer request (JSON, or JSON header + binary tensors) into validated feeds."""
    doc, binary = _split_body(body, header_length)
    if not isinstance(doc, dict):
        raise bad("the request body must be a JSON object")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise bad("'inputs' must be a non-empty array of tensors")
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for spec in inputs:
        offset = _decode_input(model, spec, feeds, binary, offset)
    if offset != len(binary):
        raise bad(
            f"{len(binary) - offset} bytes of binary data after the last tensor are not claimed by any input"
        )
    for info in model.inputs:
        if info.name not in feeds:
            raise bad(f"missing input tensor {info.name!r}")
    rows = _rows(feeds)
    return V2Request(feeds, _requested_outputs(model, doc), doc.get("id"), rows)


def _split_body(body: bytes, header_length: int | None) -> tuple[Any, memoryview]:
    """(the parsed JSON document, the binary tensor data after it)."""
    view = memoryview(body)
    if header_length is None:
        return _loads(view), view[len(view) :]
    if not 0 < header_length <= len(body):
        raise bad(f"Inference-Header-Content-Length {header_length} is outside the body of {len(body)} bytes")
    return _loads(view[:header_length]), view[header_length:]


def _decode_input(
    model: LoadedModel, spec: Any, feeds: dict[str, np.ndarray], binary: memoryview, offset: int
) -> int:
    """Validate one input tensor and add it to ``feeds``; returns the offset of the next binary tensor."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise bad("each input must be an object with a 'name'")
    name = spec["name"]
    info = model.input_by_name.get(name)
    if info is None:
        raise bad(
            f"unknown input tensor {name!r}; model {model.name!r} takes "
            + ", ".join(repr(t.name) for t in model.inputs)
        )
    if name in feeds:
        raise bad(f"input {name!r} is given twice")
    datatype = spec.get("datatype")
    if datatype != info.datatype:
        raise bad(f"input {name!r}: datatype {datatype!r} does not match the model's {info.datatype!r}")
    shape = _shape(spec, name)
    check_shape(info, shape)
    params = spec.get("parameters")
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if type(size) is not int or size < 0:
            raise bad(f"input {name!r}: binary_data_size must be a non-negative integer")
        if offset + size > len(binary):
            raise bad(
                f"input {name!r}: binary_data_size {size} overruns the {len(binary) - offset} "
                "binary bytes left in the body"
            )
        feeds[name] = _from_binary(info, binary[offset : offset + size], shape)
        return offset + size
    if "data" in spec:
        feeds[name] = _from_json(info, spec["data"], shape)
        return offset
    raise bad(f"input {name!r}: neither 'data' nor parameters.binary_data_size given")


def _rows(feeds: dict[str, np.ndarray]) -> int:
    if len(feeds) == 1:  # one input (the common case): nothing to agree on
        (a,) = feeds.values()
        return a.shape[0] if a.ndim else 1
    sizes = {a.shape[0] if a.ndim else 1 for a in feeds.values()}
    if len(sizes) != 1:
        raise bad(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def _requested_outputs(model: LoadedModel, doc: dict[str, Any]) -> list[tuple[str, bool]]:
    params = doc.get("parameters")
    default_binary = bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    requested = doc.get("outputs")
    if requested is None:
        return [(n, default_binary) for n in model.output_names]
    if not isinstance(requested, list):
        raise bad("'outputs' must be an array")
    out: list[tuple[str, bool]] = []
    for spec in requested:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise bad("each requested output must be an object with a 'name'")
        if spec["name"] not in model.output_by_name:
            raise bad(
                f"unknown output tensor {spec['name']!r}; model {model.name!r} returns "
                + ", ".join(repr(n) for n in model.output_names)
            )
        p = spec.get("parameters")
        binary = bool(p.get("binary_data", default_binary)) if isinstance(p, dict) else default_binary
        out.append((spec["name"], binary))
    return out


def _binary(arr: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for v in arr.ravel():
            b = v if isinstance(v, bytes) else str(v).encode()
            parts.append(struct.pack("<I", len(b)) + b)
        return b"".join(parts)
    if datatype == "BOOL":
        return arr.astype(np.uint8).tobytes()
    if _LITTLE_ENDIAN and arr.dtype.byteorder in "=<|":
        return arr.tobytes()  # C order, already little-endian
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def _json_data(arr: np.ndarray, datatype: str) -> Any:
    flat = arr.ravel()
    if datatype == "BYTES":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
    if datatype == "FP16":
        return flat.astype(np.float32)
    return np.ascontiguousarray(flat)


def encode_response(
    model: LoadedModel, req: V2Request, results: list[np.ndarray]
) -> tuple[bytes, int | None]:
    """Response body and, when any output is binary, the JSON header length."""
    by_name = dict(zip(model.output_names, results, strict=True))
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in req.outputs:
        arr = by_name[name]
        datatype = model.output_by_name[name].datatype
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if binary:
            blob = _binary(arr, datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_data(arr, datatype)
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": outputs}
    if req.request_id is not None:
        doc["id"] = req.request_id
    header = orjson.dumps(doc, option=_JSON_OPTS)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def model_metadata(model: LoadedModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "onnxruntime_onnx",
        "inputs": [t.metadata() for t in model.inputs],
        "outputs": [t.metadata() for t in model.outputs],
    }


__all__ = [
    "DATATYPES",
    "HEADER_LENGTH",
    "ProtocolError",
    "V2Request",
    "bad",
    "decode_request",
    "encode_response",
    "from_binary",
    "from_values",
    "model_metadata",
    "rows_of",
    "to_binary",
]
