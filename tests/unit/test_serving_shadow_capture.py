"""A shadow receives mirrored copies (header ``X-Onnxops-Shadow``, serving/mirror.py): it answers them, but
its payload capture and feedback skip them, so rows captured for ``fromServing`` training data are not doubled
(the stable pod captured the original request already)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from onnxops.serving.config import parse_config
from onnxops.serving.handlers import Handlers
from onnxops.serving.metrics import ServerMetrics
from onnxops.serving.model import ModelState, load_model


class Recorder:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def record(self, model: Any, request_id: str, feeds: Any, outputs: Any, rows: int) -> None:
        self.ids.append(request_id)


@pytest.fixture(scope="module")
def handlers(tmp_path_factory: pytest.TempPathFactory) -> Handlers:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    blob = to_onnx(
        LogisticRegression(max_iter=300).fit(x, y), x[:1], options={"zipmap": False}
    ).SerializeToString()
    path = Path(tmp_path_factory.mktemp("m")) / "model.onnx"
    path.write_bytes(blob)
    cfg = parse_config(
        [],
        {
            "ONNXOPS_MODEL_NAME": "iris",
            "ONNXOPS_MODEL_URI": f"file://{path}",
            "ONNXOPS_MODEL_SHA256": hashlib.sha256(blob).hexdigest(),
        },
    )
    state = ModelState()
    state.set_loaded(load_model(cfg))
    return Handlers("iris", "1", state, ServerMetrics("iris", "1", ""), drift=False)


V1 = ("/v1/models/iris:predict", {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]})
V2 = (
    "/v2/models/iris/infer",
    {
        "inputs": [
            {
                "name": "X",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3],
            }
        ]
    },
)


@pytest.mark.parametrize("path,doc", [V1, V2], ids=["v1", "v2"])
@pytest.mark.parametrize("header", ["x-onnxops-shadow", "X-Onnxops-Shadow"])
def test_mirrored_requests_are_answered_but_not_captured(
    handlers: Handlers, path: str, doc: Any, header: str
) -> None:
    rec = Recorder()
    handlers.capture = rec  # type: ignore[assignment]
    try:
        _, plain = handlers.handle("POST", path, {"x-request-id": "r-1"}, json.dumps(doc).encode())
        _, mirrored = handlers.handle(
            "POST", path, {header: "1", "x-request-id": "r-1"}, json.dumps(doc).encode()
        )
    finally:
        handlers.capture = None
    assert plain.status == 200 and mirrored.status == 200
    assert plain.body == mirrored.body  # the shadow answers the copy like any request
    assert rec.ids == ["r-1"]  # ... but captures only the client's own request
