"""The server as a real process: --help, env config, SIGTERM with a request in flight, --verify-only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from test_serving_support import Bundle, request, train_classifier, train_regressor, wait_loaded


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_classifier(tmp_path_factory.mktemp("clf"))


def env_for(b: Bundle, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONNXOPS_")}
    env.update(
        {
            "ONNXOPS_MODEL_NAME": b.name,
            "ONNXOPS_MODEL_VERSION": "3",
            "ONNXOPS_MODEL_URI": b.model_path.as_uri(),
            "ONNXOPS_MODEL_SHA256": b.model_sha,
            "ONNXOPS_PROFILE_URI": b.profile_path.as_uri(),
            "ONNXOPS_PROFILE_SHA256": b.profile_sha,
            "ONNXOPS_HOST": "127.0.0.1",
            "ONNXOPS_PORT": "0",
            "ONNXOPS_GRPC_PORT": "0",  # off: several servers on 127.0.0.1 must not share the default port
        }
    )
    env.update(extra)
    return env


def run(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onnxops.serving", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_is_usable() -> None:
    res = run(["--help"])
    assert res.returncode == 0
    for word in (
        "--model-uri",
        "--sha256",
        "--profile-uri",
        "--host",
        "--port",
        "--verify-only",
        "ONNXOPS_MODEL_URI",
        "ONNXOPS_HOST",
        "--intra-op-threads",
        "/v2/health/ready",
    ):
        assert word in res.stdout


def test_missing_sha256_is_a_usage_error(clf: Bundle) -> None:
    res = run(
        ["--model-name", "iris", "--model-uri", clf.model_path.as_uri()],
        env=env_for(clf, ONNXOPS_MODEL_SHA256=""),
    )
    assert res.returncode == 2
    assert "--sha256" in res.stderr


class Proc:
    def __init__(self, env: dict[str, str]) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "onnxops.serving"],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[dict] = []
        self.port = 0
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 30
        assert self.p.stderr is not None
        while time.monotonic() < deadline:
            line = self.p.stderr.readline()
            if not line:
                break
            doc = json.loads(line)  # every log line is one JSON object
            self.lines.append(doc)
            if doc["msg"] == "listening":
                self.port = doc["port"]
                break
        assert self.port, self.lines

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(10)


@pytest.fixture
def proc(clf: Bundle) -> Iterator[Proc]:
    p = Proc(env_for(clf))
    try:
        yield p
    finally:
        p.stop()


def test_sigterm_finishes_the_request_in_flight_then_exits_0(clf: Bundle, proc: Proc) -> None:
    assert wait_loaded(proc.port)["ready"] is True
    name = ort.InferenceSession(str(clf.model_path)).get_inputs()[0].name
    x = clf.X[:4]
    body = json.dumps(
        {"inputs": [{"name": name, "shape": [4, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
    ).encode()
    idle = socket.create_connection(("127.0.0.1", proc.port), timeout=5)  # an idle keep-alive connection
    s = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
    head = (f"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    s.sendall(head + body[:10])
    time.sleep(0.3)
    proc.p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert proc.p.poll() is None, "exited with a request in flight"
    assert idle.recv(10) == b""  # idle connections are closed
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proc.port), timeout=2).close()  # no longer accepting
    s.sendall(body[10:])
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    s.close()
    idle.close()
    head_raw, _, payload = reply.partition(b"\r\n\r\n")
    assert head_raw.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in head_raw
    doc = json.loads(payload)
    assert doc["outputs"][0]["data"] == clf.estimator.predict(x).tolist()
    assert proc.p.wait(10) == 0
    assert proc.p.stderr is not None
    rest = [json.loads(line) for line in proc.p.stderr.read().splitlines()]
    assert "stopped" in [d["msg"] for d in rest]
    assert not any(d["msg"] == "request" for d in rest)  # no access log by default


def test_shutdown_delay_keeps_serving_while_not_ready(clf: Bundle) -> None:
    """ONNXOPS_SHUTDOWN_DELAY_SECONDS (set by the operator on serving pods): after SIGTERM the server says
    ShuttingDown on /v2/health/ready but still answers new requests, so a pod that a rollout scales down
    fails none of the requests a Service still sends it; then it stops as usual."""
    p = Proc(env_for(clf, ONNXOPS_SHUTDOWN_DELAY_SECONDS="3"))
    try:
        assert wait_loaded(p.port)["ready"] is True
        p.p.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        status, _, body = request(p.port, "GET", "/v2/health/ready")
        assert status == 503 and json.loads(body)["reason"] == "ShuttingDown"
        name = ort.InferenceSession(str(clf.model_path)).get_inputs()[0].name
        doc = {"inputs": [{"name": name, "shape": [1, 4], "datatype": "FP32", "data": clf.X[0].tolist()}]}
        status, _, body = request(p.port, "POST", "/v2/models/iris/infer", json.dumps(doc).encode())
        assert status == 200, body
        assert p.p.poll() is None
        assert p.p.wait(15) == 0
    finally:
        p.stop()


def test_env_config_and_access_log_flag(clf: Bundle) -> None:
    p = Proc(env_for(clf, ONNXOPS_ACCESS_LOG="true", ONNXOPS_MODEL_VERSION="7"))
    try:
        assert wait_loaded(p.port)["ready"] is True
        status, _, body = request(p.port, "GET", "/v2/models/iris/versions/7")
        assert status == 200 and json.loads(body)["versions"] == ["7"]
        p.p.send_signal(signal.SIGTERM)
        assert p.p.wait(10) == 0
        assert p.p.stderr is not None
        msgs = [json.loads(line) for line in p.p.stderr.read().splitlines()]
        assert any(d["msg"] == "request" and d["path"] == "/v2/models/iris/versions/7" for d in msgs)
    finally:
        p.stop()


def test_env_timeouts_and_recovery_of_a_late_artifact(clf: Bundle, tmp_path: Path) -> None:
    import shutil

    target = tmp_path / "model.onnx"
    env = env_for(
        clf,
        ONNXOPS_MODEL_URI=target.as_uri(),
        ONNXOPS_LOAD_RETRY_INITIAL_SECONDS="0.05",
        ONNXOPS_LOAD_RETRY_MAX_SECONDS="0.2",
        ONNXOPS_LIVENESS_TIMEOUT_SECONDS="1",
        ONNXOPS_HEAD_TIMEOUT_SECONDS="0.5",
    )
    p = Proc(env)
    try:
        assert wait_loaded(p.port)["reason"] == "ArtifactUnavailable"
        deadline = time.monotonic() + 15
        while request(p.port, "GET", "/v2/health/live")[0] == 200:
            assert time.monotonic() < deadline, "liveness never failed"
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", p.port), timeout=10) as c:
            c.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost:")  # never finished
            t0 = time.monotonic()
            assert c.recv(100) == b""
            assert time.monotonic() - t0 < 5
        shutil.copy(clf.model_path, target)
        while request(p.port, "GET", "/v2/health/ready")[0] != 200:
            assert time.monotonic() < deadline + 15, "never became ready"
            time.sleep(0.1)
        assert request(p.port, "GET", "/v2/health/live")[0] == 200
        p.p.send_signal(signal.SIGTERM)
        assert p.p.wait(10) == 0
    finally:
        p.stop()


# -- --verify-only ---------------------------------------------------------------------------------------
def signature_of(b: Bundle) -> dict:
    sess = ort.InferenceSession(str(b.model_path))
    dt = {"tensor(float)": "FP32", "tensor(int64)": "INT64"}

    def spec(a: ort.NodeArg) -> dict:
        return {
            "name": a.name,
            "datatype": dt[a.type],
            "shape": [d if isinstance(d, int) else -1 for d in a.shape],
        }

    return {"inputs": [spec(a) for a in sess.get_inputs()], "outputs": [spec(a) for a in sess.get_outputs()]}


def verify(b: Bundle, tmp: Path, sig: dict | None, **env: str) -> tuple[int, dict]:
    term = tmp / "termination-log"
    args = ["--verify-only"] + (["--expect-signature-json", json.dumps(sig)] if sig is not None else [])
    res = run(args, env=env_for(b, ONNXOPS_TERMINATION_LOG=str(term), **env))
    return res.returncode, json.loads(term.read_text())


def test_verify_only_ok(clf: Bundle, tmp_path: Path) -> None:
    sig = signature_of(clf)
    sig["classLabels"] = ["0", "1", "2"]
    sig["featureNames"] = ["f0", "f1", "f2", "f3"]
    rc, result = verify(clf, tmp_path, sig)
    assert rc == 0 and result["ok"] is True, result
    assert result["sha256"] == clf.model_sha
    assert result["signature"]["inputs"] == sig["inputs"]
    assert result["smoke"]["outputs"] == {"label": [1], "probabilities": [1, 3]}
    assert len(json.dumps(result)) < 4096


def test_verify_only_regressor_without_signature(tmp_path: Path) -> None:
    reg = train_regressor(tmp_path)
    rc, result = verify(reg, tmp_path, None)
    assert rc == 0 and result["ok"] is True


@pytest.mark.parametrize(
    ("change", "reason", "fragment"),
    [
        ("digest", "DigestMismatch", "sha256 mismatch"),
        ("datatype", "SignatureMismatch", "has datatype FP32, expected FP64"),
        ("shape", "SignatureMismatch", "has shape [-1, 4], expected [-1, 5]"),
        ("name", "SignatureMismatch", "expected ['features']"),
        ("classes", "SignatureMismatch", "classLabels"),
    ],
)
def test_verify_only_failures(clf: Bundle, tmp_path: Path, change: str, reason: str, fragment: str) -> None:
    sig = signature_of(clf)
    env: dict[str, str] = {}
    if change == "digest":
        env["ONNXOPS_MODEL_SHA256"] = "a" * 64
    elif change == "datatype":
        sig["inputs"][0]["datatype"] = "FP64"
    elif change == "shape":
        sig["inputs"][0]["shape"] = [-1, 5]
    elif change == "name":
        sig["inputs"][0]["name"] = "features"
    else:
        sig["classLabels"] = ["setosa", "versicolor", "virginica"]
    rc, result = verify(clf, tmp_path, sig, **env)
    assert rc == 1
    assert result["ok"] is False and result["reason"] == reason
    assert fragment in result["message"]


def test_verify_only_corrupt_model(clf: Bundle, tmp_path: Path) -> None:
    import hashlib

    junk = tmp_path / "model.onnx"
    junk.write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    rc, result = verify(
        clf,
        tmp_path,
        None,
        ONNXOPS_MODEL_URI=junk.as_uri(),
        ONNXOPS_MODEL_SHA256=hashlib.sha256(junk.read_bytes()).hexdigest(),
    )
    assert rc == 1 and result["reason"] == "InvalidModel"


def test_verify_only_reads_pvc_uris(clf: Bundle, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "pvc"
    (root / "artifacts" / "iris" / "run-1").mkdir(parents=True)
    shutil.copy(clf.model_path, root / "artifacts" / "iris" / "run-1" / "model.onnx")
    shutil.copy(clf.profile_path, root / "artifacts" / "iris" / "run-1" / "profile.json")
    rc, result = verify(
        clf,
        tmp_path,
        signature_of(clf),
        ONNXOPS_PVC_ROOT=str(root),
        ONNXOPS_MODEL_URI="pvc://artifacts/iris/run-1/model.onnx",
        ONNXOPS_PROFILE_URI="pvc://artifacts/iris/run-1/profile.json",
    )
    assert rc == 0 and result["ok"] is True, result
