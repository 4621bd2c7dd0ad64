"""KServe v1 protocol: ``POST /v1/models/<name>:predict`` with ``{"instances": [...]}``.

An optional string ``id`` names the request (else the ``X-Request-Id`` header, else the server makes one);
the response carries it as ``id`` and in the ``X-Request-Id`` header.

Rows are lists in column order, or objects keyed by feature name when the profile names the features.
``predictions`` holds the first model output (labels for classifiers, values for regressors, with a
trailing dimension of 1 dropped, as scikit-learn's ``predict`` returns them); classifiers also return
``probabilities`` when the model has a second output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from .model import LoadedModel
from .protocol_v2 import _loads, bad, check_shape


def decode_request(model: LoadedModel, body: bytes) -> tuple[dict[str, np.ndarray], int]:
    feeds, rows, _ = decode_request_with_id(model, body)
    return feeds, rows


def decode_request_with_id(model: LoadedModel, body: bytes) -> tuple[dict[str, np.ndarray], int, str | None]:
    """Feeds, rows and the request's optional ``id`` (a non-empty string; the server makes one if absent)."""
    if len(model.inputs) != 1:
        raise bad(
            f"the v1 protocol needs a model with one input; {model.name!r} has {len(model.inputs)} "
            "(use /v2/models/<name>/infer)"
        )
    info = model.inputs[0]
    doc = _loads(body)
    if not isinstance(doc, dict):
        raise bad("the request body must be a JSON object")
    instances = doc.get("instances")
    if not isinstance(instances, list) or not instances:
        raise bad("'instances' must be a non-empty array")
    if isinstance(instances[0], dict):
        instances = _rows_from_objects(model, instances)
    try:
        if info.datatype == "BYTES":
            arr = np.array(instances, dtype=object)
        else:
            arr = np.asarray(instances, dtype=info.dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise bad(
            f"'instances' is not a valid {info.datatype} array for input {info.name!r}: {exc}"
        ) from None
    if arr.ndim == len(info.shape) - 1:  # a single row instead of a list of rows is an error in v1
        raise bad(f"'instances' must be a list of rows of shape {list(info.shape[1:])}")
    check_shape(info, tuple(arr.shape))
    rid = doc.get("id")
    if rid is not None and (not isinstance(rid, str) or not rid or len(rid) > 256):
        raise bad("'id' must be a non-empty string of at most 256 characters")
    return {info.name: arr}, int(arr.shape[0]), rid


def _rows_from_objects(model: LoadedModel, instances: list[Any]) -> list[list[Any]]:
    if model.profile is None:
        raise bad("instances given as objects need feature names, and this model has no profile")
    names = [f.name for f in sorted(model.profile.features, key=lambda f: f.index)]
    rows = []
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise bad(f"instance {i} is not an object like the first one")
        missing = [n for n in names if n not in inst]
        if missing:
            raise bad(f"instance {i} lacks feature(s) {', '.join(map(repr, missing[:5]))}")
        extra = [k for k in inst if k not in names]
        if extra:
            raise bad(f"instance {i} has unknown feature(s) {', '.join(map(repr, extra[:5]))}")
        rows.append([inst[n] for n in names])
    return rows


def encode_response(model: LoadedModel, results: list[np.ndarray], request_id: str | None = None) -> bytes:
    first = results[0]
    if first.ndim == 2 and first.shape[1] == 1:
        first = first[:, 0]
    doc: dict[str, Any] = {"predictions": _plain(first), "model_version": model.version}
    if len(results) > 1 and model.task == "classification":
        doc["probabilities"] = _plain(results[1])
    if request_id is not None:
        doc["id"] = request_id
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def _plain(arr: np.ndarray) -> Any:
    if arr.dtype == object:
        return [v.decode() if isinstance(v, bytes) else v for v in arr.tolist()]
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    return np.ascontiguousarray(arr)
