"""A server whose artifact is unavailable at start recovers without a restart when it appears, and stops
being live when nothing loads for too long; it never serves bytes other than the verified ones."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_serving_support import Bundle, ServerThread, post_json, request, train_classifier, train_regressor


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_classifier(tmp_path_factory.mktemp("clf"))


FAST = {"load_retry_initial_seconds": 0.05, "load_retry_max_seconds": 0.2}


def health(port: int, path: str = "/v2/health/ready") -> tuple[int, dict[str, Any]]:
    status, _, body = request(port, "GET", path)
    return status, json.loads(body)


def wait_until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def predict(b: Bundle, port: int) -> tuple[int, Any]:
    x = b.X[:5]
    doc = {"inputs": [{"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    return post_json(port, "/v2/models/iris/infer", doc)


def test_missing_artifact_then_file_appears_serves_without_restart(clf: Bundle, tmp_path: Path) -> None:
    target = tmp_path / "late" / "model.onnx"
    with ServerThread(clf.config(model_uri=target.as_uri(), **FAST)) as s:
        status, doc = health(s.port)
        assert status == 503 and doc["reason"] == "ArtifactUnavailable"
        assert "retrying in" in doc["message"]
        assert predict(clf, s.port)[0] == 503
        time.sleep(0.5)  # several failed attempts
        assert health(s.port)[1]["reason"] == "ArtifactUnavailable"
        target.parent.mkdir()
        shutil.copy(clf.model_path, target)
        wait_until(lambda: health(s.port)[0] == 200)
        status, out = predict(clf, s.port)
        assert status == 200
        assert out["outputs"][0]["data"] == clf.estimator.predict(clf.X[:5]).tolist()


def test_liveness_fails_after_the_bounded_time_without_a_model(clf: Bundle, tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    with ServerThread(clf.config(model_uri=target.as_uri(), liveness_timeout_seconds=1.0, **FAST)) as s:
        assert health(s.port, "/v2/health/live") == (200, {"live": True})
        wait_until(lambda: health(s.port, "/v2/health/live")[0] == 503, timeout=10)
        status, doc = health(s.port, "/v2/health/live")
        assert status == 503 and doc["live"] is False and doc["reason"] == "ArtifactUnavailable"
        assert "--liveness-timeout-seconds" in doc["message"]
        # a load that finally succeeds makes it live again (the kubelet may not have restarted it yet)
        shutil.copy(clf.model_path, target)
        wait_until(lambda: health(s.port)[0] == 200)
        assert health(s.port, "/v2/health/live") == (200, {"live": True})


def test_digest_mismatch_is_retried_but_only_the_verified_bytes_are_served(
    clf: Bundle, tmp_path: Path
) -> None:
    other = train_regressor(tmp_path / "other")  # a valid ONNX model, not the one whose sha256 is expected
    target = tmp_path / "model.onnx"
    shutil.copy(other.model_path, target)
    with ServerThread(clf.config(model_uri=target.as_uri(), **FAST)) as s:
        status, doc = health(s.port)
        assert status == 503 and doc["reason"] == "DigestMismatch"
        assert clf.model_sha in doc["message"] and other.model_sha in doc["message"]
        time.sleep(0.5)
        assert health(s.port)[0] == 503 and predict(clf, s.port)[0] == 503  # never the other model
        shutil.copy(clf.model_path, target)  # the expected bytes arrive (e.g. a copy that finished)
        wait_until(lambda: health(s.port)[0] == 200)
        status, out = predict(clf, s.port)
        assert status == 200
        np.testing.assert_array_equal(out["outputs"][0]["data"], clf.estimator.predict(clf.X[:5]))


def test_invalid_model_is_final_and_stays_live(clf: Bundle, tmp_path: Path) -> None:
    import hashlib

    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"not an onnx model")
    sha = hashlib.sha256(junk.read_bytes()).hexdigest()
    cfg = clf.config(model_uri=junk.as_uri(), sha256=sha, liveness_timeout_seconds=0.5, **FAST)
    with ServerThread(cfg) as s:
        status, doc = health(s.port)
        assert status == 503 and doc["reason"] == "InvalidModel"
        assert "retrying" not in doc["message"]
        time.sleep(1.0)  # past the liveness timeout: a restart cannot fix verified bytes, so stay live
        assert health(s.port, "/v2/health/live") == (200, {"live": True})
        assert health(s.port)[1]["reason"] == "InvalidModel"
