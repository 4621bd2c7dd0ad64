"""Helpers for the serving tests (no tests here): real models trained with scikit-learn and exported with
skl2onnx, their profiles, a server running in a background thread, and a raw HTTP client."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from onnxops.profile import ClassPrediction, NumericPrediction, Profile, numeric_feature, quantile_edges
from onnxops.serving.config import ServerConfig
from onnxops.serving.server import Running, start


@dataclass
class Bundle:
    name: str
    estimator: Any
    X: np.ndarray  # float32, the training features
    model_path: Path
    model_sha: str
    profile_path: Path
    profile_sha: str
    profile: Profile

    def config(self, **kw: Any) -> ServerConfig:
        base = ServerConfig(
            model_name=self.name,
            model_version="3",
            model_uri=self.model_path.as_uri(),
            sha256=self.model_sha,
            profile_uri=self.profile_path.as_uri(),
            profile_sha256=self.profile_sha,
            host="127.0.0.1",
            port=0,
            shutdown_grace_seconds=5.0,
        )
        return replace(base, **kw)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _write(tmp: Path, name: str, est: Any, X: np.ndarray, prediction: Any, task: str) -> Bundle:
    onx = to_onnx(
        est,
        X[:1],
        options={id(est): {"zipmap": False}} if task == "classification" else None,
        target_opset=17,
    )
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    model_path = d / "model.onnx"
    model_path.write_bytes(onx.SerializeToString())
    feats = [numeric_feature(f"f{i}", i, X[:, i].astype(float)) for i in range(X.shape[1])]
    profile = Profile(task=task, rows=len(X), features=feats, prediction=prediction)
    profile_path = d / "profile.json"
    profile_path.write_text(profile.to_json())
    return Bundle(name, est, X, model_path, _sha(model_path), profile_path, _sha(profile_path), profile)


def train_classifier(tmp: Path) -> Bundle:
    """LogisticRegression, 3 classes (iris), ONNX without ZipMap: outputs label + probabilities."""
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    est = LogisticRegression(max_iter=1000).fit(X, y)
    pred = est.predict(X)
    classes = [str(c) for c in est.classes_]
    counts = [int((pred == c).sum()) for c in est.classes_]
    return _write(tmp, "iris", est, X, ClassPrediction(classes=classes, counts=counts), "classification")


def train_regressor(tmp: Path) -> Bundle:
    X, y = load_diabetes(return_X_y=True)
    X = X.astype(np.float32)
    est = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    pred = est.predict(X)
    edges = quantile_edges(pred)
    counts = np.bincount(np.searchsorted(edges, pred, side="left"), minlength=len(edges) + 1)
    return _write(
        tmp, "diabetes", est, X, NumericPrediction(edges=edges, counts=[int(c) for c in counts]), "regression"
    )


class ServerThread:
    """The real server (same code as the process) on its own event loop in a background thread."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self.running: Running | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.running = self.loop.run_until_complete(start(self.cfg))
        self._started.set()
        self.loop.run_forever()

    @property
    def port(self) -> int:
        assert self.running is not None
        return self.running.port

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._started.wait(10), "server did not start"
        wait_loaded(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running is not None:
            asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def wait_loaded(port: int, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until the model has loaded or failed; the health body."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = request(port, "GET", "/v2/health/ready")
        doc = json.loads(body)
        if doc["reason"] != "Loading" or time.monotonic() > deadline:
            return dict(doc, status=status)
        time.sleep(0.02)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def post_json(port: int, path: str, doc: Any) -> tuple[int, Any]:
    status, _, body = request(port, "POST", path, json.dumps(doc), {"Content-Type": "application/json"})
    return status, json.loads(body)


def v2_body(x: np.ndarray, name: str = "X", datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": name, "shape": list(x.shape), "datatype": datatype, "data": x.ravel().tolist()}],
        **extra,
    }
