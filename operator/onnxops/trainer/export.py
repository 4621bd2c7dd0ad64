"""scikit-learn Pipeline -> ONNX (skl2onnx) and the ModelVersion signature.

The graph has one input ``input`` (FP32, ``[-1, n_features]``). skl2onnx names the outputs:
classifiers ``label`` (INT64, or BYTES for string classes; ``[-1]``) and ``probabilities`` (FP32,
``[-1, n_classes]``; no ZipMap); regressors ``variable`` (FP32, ``[-1, 1]``). Converters that pick other
names (KNeighborsRegressor: ``variable1``) get their outputs renamed to these. For classifiers without
``predict_proba`` (RidgeClassifier, LinearSVC, SGDClassifier with hinge loss, SVC without probability)
``probabilities`` holds decision-function scores, and a binary one may have a single column; the signature
records the shape ONNX Runtime actually returned, and metadata.json says which it is (``scores``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .errors import ExportFailed

INPUT_NAME = "input"
# Opsets every onnxruntime >= 1.17 (the serving image's floor) runs; ai.onnx.ml 3 has the tree
# ensembles' missing-value tracking that HistGradientBoosting needs.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
ORT_TO_OIP = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(int16)": "INT16",
    "tensor(int8)": "INT8",
    "tensor(uint64)": "UINT64",
    "tensor(uint32)": "UINT32",
    "tensor(uint16)": "UINT16",
    "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


CLASSIFIER_OUTPUTS = ("label", "probabilities")
REGRESSOR_OUTPUTS = ("variable",)


def _rename_outputs(model: Any, names: Sequence[str]) -> None:
    """Give the graph outputs stable names (skl2onnx sometimes says ``variable1`` or ``output_label``)."""
    graph = model.graph
    if len(graph.output) != len(names):
        raise ExportFailed(f"ONNX graph has outputs {[o.name for o in graph.output]}, expected {list(names)}")
    taken = {n for node in graph.node for n in [*node.input, *node.output]} | {i.name for i in graph.input}
    for out, new in zip(graph.output, names, strict=True):
        old = out.name
        if old == new:
            continue
        if new in {o.name for o in graph.output} | {i.name for i in graph.input}:
            raise ExportFailed(f"cannot rename ONNX output {old!r} to {new!r}: the name is taken")
        if new in taken:  # an intermediate tensor has the name: move it aside first
            k = 0
            while f"{new}_internal{k}" in taken:
                k += 1
            _rename_tensor(graph, new, f"{new}_internal{k}")
        _rename_tensor(graph, old, new)
        out.name = new
        taken |= {new}


def _rename_tensor(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        node.output[:] = [new if n == old else n for n in node.output]
        node.input[:] = [new if n == old else n for n in node.input]


@contextlib.contextmanager
def _bool_attribute_fix() -> Iterator[None]:
    """skl2onnx 1.20 passes Python ``False`` among ints in a tree attribute list for histogram gradient
    boosting leaves, which protobuf refuses. Coerce bools in list attributes to ints while converting."""
    import skl2onnx.common._container as container

    original = container.make_node

    def make_node(*args: Any, **kwargs: Any) -> Any:
        for k, v in kwargs.items():
            if isinstance(v, list) and any(isinstance(x, bool | np.bool_) for x in v):
                kwargs[k] = [int(x) if isinstance(x, bool | np.bool_) else x for x in v]
        return original(*args, **kwargs)

    container.make_node = make_node
    try:
        yield
    finally:
        container.make_node = original


def to_onnx(pipeline: Any, n_features: int, *, classifier: bool, name: str = "onnxops") -> bytes:
    """Convert the fitted pipeline; classifiers get plain tensor outputs (no ZipMap)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from . import boosting

    try:
        boosting.register_for(pipeline)
    except ImportError as e:
        raise ExportFailed(
            f"cannot convert {type(pipeline[-1]).__name__}: onnxmltools is missing ({e})"
        ) from None
    initial = [(INPUT_NAME, FloatTensorType([None, n_features]))]
    attempts: list[dict[int, dict[str, Any]] | None] = []
    if classifier:
        attempts.append({id(pipeline): {"zipmap": False}})
    # Estimators without a ZipMap option (LinearSVC) already output tensors; naming them in the options
    # stops the Pipeline parser from adding its default zipmap=True.
    attempts.append({id(pipeline[-1]): {}} if classifier else None)
    last: Exception | None = None
    for options in attempts:
        try:
            with _bool_attribute_fix():
                onx = convert_sklearn(
                    pipeline, name=name, initial_types=initial, options=options, target_opset=TARGET_OPSET
                )
            _rename_outputs(onx, CLASSIFIER_OUTPUTS if classifier else REGRESSOR_OUTPUTS)
            return bytes(onx.SerializeToString())
        except NameError as e:  # skl2onnx's "Option 'zipmap' not in [...]"
            last = e
            if "zipmap" not in str(e):
                break
        except Exception as e:
            last = e
            break
    raise ExportFailed(
        f"skl2onnx cannot convert {type(pipeline[-1]).__name__}: {type(last).__name__}: {str(last)[:300]}"
    )


def session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def run(sess: Any, X: np.ndarray, batch: int = 1 << 17) -> list[np.ndarray]:
    """Run the model in batches (bounded memory for big inputs); outputs in graph order."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if len(X) <= batch:
        return [np.asarray(o) for o in sess.run(None, {INPUT_NAME: X})]
    parts = [sess.run(None, {INPUT_NAME: X[i : i + batch]}) for i in range(0, len(X), batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def signature(
    sess: Any,
    outputs: Sequence[np.ndarray],
    feature_names: Sequence[str],
    *,
    task: str,
    class_labels: Sequence[str] | None,
) -> dict[str, Any]:
    """ModelVersion ``signature`` (camelCase, validates against api.v1alpha1.modelversion.Signature).
    Output shapes: the dynamic batch dimension as -1, the others as ONNX Runtime actually returned them."""

    def spec(node: Any, actual: np.ndarray | None) -> dict[str, Any]:
        dims = [d if isinstance(d, int) and d >= 0 else -1 for d in node.shape]
        if actual is not None:
            dims = [-1, *[int(d) for d in actual.shape[1:]]]
        if node.type not in ORT_TO_OIP:
            raise ExportFailed(f"ONNX tensor {node.name} has unsupported type {node.type}")
        return {"name": node.name, "datatype": ORT_TO_OIP[node.type], "shape": dims}

    sig: dict[str, Any] = {
        "inputs": [spec(i, None) for i in sess.get_inputs()],
        "outputs": [spec(o, a) for o, a in zip(sess.get_outputs(), outputs, strict=True)],
        "featureNames": list(feature_names),
        "task": task,
    }
    if class_labels is not None:
        sig["classLabels"] = list(class_labels)
    return sig
