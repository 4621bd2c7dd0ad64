"""Loading one model version: fetch, verify sha256 first, ONNX Runtime session, signature, profile.

``load_model`` either returns a ``LoadedModel`` or raises ``LoadError`` with a reason code and a message
for the health endpoint and the log; nothing else is ever served.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from onnxops.profile import Profile, load_profile
from onnxops.storage import redact

from ._artifacts import ArtifactError, DigestError, read_verified
from .config import ServerConfig
from .loading import is_live

log = logging.getLogger("onnxops.serving")

# ONNX Runtime element type -> (Open Inference Protocol datatype, numpy dtype)
ORT_TYPES: dict[str, tuple[str, Any]] = {
    "tensor(float)": ("FP32", np.float32),
    "tensor(double)": ("FP64", np.float64),
    "tensor(float16)": ("FP16", np.float16),
    "tensor(int8)": ("INT8", np.int8),
    "tensor(int16)": ("INT16", np.int16),
    "tensor(int32)": ("INT32", np.int32),
    "tensor(int64)": ("INT64", np.int64),
    "tensor(uint8)": ("UINT8", np.uint8),
    "tensor(uint16)": ("UINT16", np.uint16),
    "tensor(uint32)": ("UINT32", np.uint32),
    "tensor(uint64)": ("UINT64", np.uint64),
    "tensor(bool)": ("BOOL", np.bool_),
    "tensor(string)": ("BYTES", np.object_),
}

# OIP datatype -> numpy dtype used on the wire
DATATYPES: dict[str, Any] = {dt: np_t for dt, np_t in ORT_TYPES.values()}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension
    dtype: Any

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class LoadError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _tensor_info(arg: Any) -> TensorInfo:
    if arg.type not in ORT_TYPES:
        raise LoadError("UnsupportedModel", f"tensor {arg.name!r} has unsupported type {arg.type}")
    datatype, dtype = ORT_TYPES[arg.type]
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or []))
    return TensorInfo(arg.name, datatype, shape, dtype)


@dataclass
class LoadedModel:
    name: str
    version: str
    session: ort.InferenceSession
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    profile: Profile | None
    sha256: str
    input_by_name: dict[str, TensorInfo] = field(default_factory=dict)
    output_by_name: dict[str, TensorInfo] = field(default_factory=dict)
    output_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.input_by_name = {t.name: t for t in self.inputs}
        self.output_by_name = {t.name: t for t in self.outputs}
        self.output_names = [t.name for t in self.outputs]

    @property
    def task(self) -> str:
        if self.profile is not None:
            return self.profile.task
        return (
            "classification" if len(self.outputs) >= 2 and self.outputs[0].shape[1:] == () else "regression"
        )

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, feeds)  # type: ignore[no-any-return]

    def signature(self) -> dict[str, Any]:
        """The ModelVersion signature of the loaded model, read from the session (camelCase keys)."""
        sig: dict[str, Any] = {
            "inputs": [t.metadata() for t in self.inputs],
            "outputs": [t.metadata() for t in self.outputs],
        }
        if self.profile is not None:
            sig["task"] = self.profile.task
            sig["featureNames"] = [f.name for f in sorted(self.profile.features, key=lambda f: f.index)]
            if self.profile.prediction is not None and self.profile.prediction.kind == "class":
                sig["classLabels"] = list(self.profile.prediction.classes)
        return sig


def session_options(intra_op: int, inter_op: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_op
    so.inter_op_num_threads = inter_op
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


def load_model(cfg: ServerConfig) -> LoadedModel:
    """Fetch and verify the artifact (and profile), then build the session. Raises LoadError."""
    t0 = time.perf_counter()
    try:
        data = read_verified(cfg.model_uri, cfg.sha256)
    except DigestError as exc:
        raise LoadError("DigestMismatch", str(exc)) from None
    except ArtifactError as exc:
        raise LoadError("ArtifactUnavailable", str(exc)) from None
    profile: Profile | None = None
    if cfg.profile_uri:
        try:
            raw = read_verified(cfg.profile_uri, cfg.profile_sha256 or "")
        except DigestError as exc:
            raise LoadError("ProfileDigestMismatch", str(exc)) from None
        except ArtifactError as exc:
            raise LoadError("ProfileUnavailable", str(exc)) from None
        try:
            profile = load_profile(raw)
        except ValueError as exc:
            raise LoadError(
                "InvalidProfile", f"profile {redact(cfg.profile_uri)} is not a valid profile: {exc}"
            ) from None
    try:
        session = ort.InferenceSession(
            data,
            sess_options=session_options(cfg.intra_op_threads, cfg.inter_op_threads),
            providers=["CPUExecutionProvider"],
        )
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt models
        raise LoadError("InvalidModel", f"ONNX Runtime cannot load {redact(cfg.model_uri)}: {exc}") from None
    inputs = [_tensor_info(a) for a in session.get_inputs()]
    outputs = [_tensor_info(a) for a in session.get_outputs()]
    model = LoadedModel(cfg.model_name, cfg.model_version, session, inputs, outputs, profile, cfg.sha256)
    if profile is not None:
        problem = profile_mismatch(model, profile)
        if problem:
            raise LoadError("ProfileMismatch", problem)
    log.info(
        "model loaded",
        extra={
            "fields": {
                "model": cfg.model_name,
                "version": cfg.model_version,
                "sha256": cfg.sha256,
                "inputs": [t.metadata() for t in inputs],
                "outputs": [t.metadata() for t in outputs],
                "profile": bool(profile),
                "seconds": round(time.perf_counter() - t0, 3),
            }
        },
    )
    return model


def profile_mismatch(model: LoadedModel, profile: Profile) -> str | None:
    """Why a profile cannot describe this model's inputs, or None."""
    if len(model.inputs) == 1 and len(model.inputs[0].shape) == 2:
        width = model.inputs[0].shape[1]
        for f in profile.features:
            if width >= 0 and not 0 <= f.index < width:
                return (
                    f"profile feature {f.name!r} has index {f.index} but input {model.inputs[0].name!r} "
                    f"has {width} columns"
                )
        return None
    for f in profile.features:
        if f.name not in model.input_by_name:
            return f"profile feature {f.name!r} is neither a column of a single 2-D input nor an input name"
    return None


class ModelState:
    """Readiness and liveness as seen by the HTTP handlers; set by the loader."""

    def __init__(self, liveness_timeout: float = 0.0) -> None:
        self.model: LoadedModel | None = None
        self.reason = "Loading"
        self.message = "the model is loading"
        self.draining = False
        self.settled = False  # a model loaded, or a failure no retry can fix
        self.started = time.monotonic()
        self.liveness_timeout = liveness_timeout
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.model is not None and not self.draining

    def set_loaded(self, model: LoadedModel) -> None:
        with self._lock:
            self.model, self.reason, self.message = model, "Ready", "model loaded and verified"
            self.settled = True

    def set_failed(self, reason: str, message: str, *, final: bool = True) -> None:
        with self._lock:
            self.model, self.reason, self.message = None, reason, message
            self.settled = final

    def health(self) -> dict[str, Any]:
        if self.draining:
            return {"ready": False, "reason": "ShuttingDown", "message": "the server is shutting down"}
        return {"ready": self.model is not None, "reason": self.reason, "message": self.message}

    def liveness(self, now: float | None = None) -> dict[str, Any]:
        t = time.monotonic() if now is None else now
        if is_live(self.settled, self.started, t, self.liveness_timeout):
            return {"live": True}
        return {
            "live": False,
            "reason": self.reason,
            "message": f"no model loaded {t - self.started:.0f}s after start "
            f"(--liveness-timeout-seconds {self.liveness_timeout:g}); last: {self.message}",
        }
