"""Release control end to end (issue 15): the real operator (kopf) on the local runtime with real ONNX Runtime
servers. A manual gate holds the canary (reason, Paused condition, PAUSED column) until `onnxops promote`;
`onnxops abort` mid-canary rolls back with the stable version keeping all traffic, held until spec changes;
pause/resume; `onnxops status` prints the rollout. The commands write only status.control. Every decision
reaches a local webhook receiver: the chart-level (global) sink as generic JSON, the service's own sink (URL
from a Secret) as a Slack body after the receiver failed twice."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _operator_env import Cluster, local_cluster, operator
from test_operator_governance import kubectl_get

from onnxops import rolloutctl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def onnx_model() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    x = x.astype("float32")
    model = LogisticRegression(max_iter=300).fit(x, y)
    return bytes(to_onnx(model, x[:1], options={id(model): {"zipmap": False}}).SerializeToString())


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1: records (path, headers, JSON body); /flaky/... answers 503 twice."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], Any]] = []
        self.flaky_failures = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    def bodies(self, prefix: str) -> list[Any]:
        with self.lock:
            return [b for p, _, b in self.got if p.startswith(prefix)]


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            fail = self.path.startswith("/flaky/") and self.server.flaky_failures < 2
            if fail:
                self.server.flaky_failures += 1
            else:
                self.server.got.append((self.path, dict(self.headers), json.loads(data)))
        self.send_response(503 if fail else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    t = threading.Thread(target=r.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield r
    finally:
        r.shutdown()
        r.server_close()
        t.join(timeout=5)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[tuple[Cluster, Path]]:
    work = tmp_path_factory.mktemp("control")
    port = receiver.server_address[1]
    with (
        local_cluster(work / "rt") as c,
        operator(
            c,
            {
                "ONNXOPS_METRICS_PROVIDER": "_fake_metrics:provider",
                "ONNXOPS_FAKE_METRICS": str(work / "metrics.json"),
                # the chart's notifications.sinks: the URL from an env var (a Secret in the chart)
                "ONNXOPS_NOTIFY_SINKS": json.dumps([{"name": "ops", "urlEnv": "ONNXOPS_NOTIFY_URL_0"}]),
                "ONNXOPS_NOTIFY_URL_0": f"http://127.0.0.1:{port}/global",
                "ONNXOPS_NOTIFY_BACKOFF_SECONDS": "0.2",
            },
        ),
    ):
        yield c, work


def add_version(c: Cluster, work: Path, blob: bytes, model: str, v: int) -> None:
    path = work / model / str(v) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    c.create(
        {
            "apiVersion": "onnxops.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": f"{model}-v{v}"},
            "spec": {
                "model": model,
                "version": v,
                "artifact": {"uri": f"file://{path}", "sha256": hashlib.sha256(blob).hexdigest()},
            },
        }
    )
    st = c.wait_status(
        "ModelVersion", f"{model}-v{v}", lambda s: s.get("phase") in ("Ready", "Failed"), timeout=90
    )
    assert st["status"]["phase"] == "Ready", st["status"]


def isvc(name: str, version: int, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "model": name,
            "version": version,
            "replicas": 1,
            "rollout": {"steps": steps, "bakeTime": "1s", "progressDeadline": "90s"},
            **spec,
        },
    }


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def serving(version: int) -> Any:
    return lambda s: (
        s.get("stableVersion") == version
        and s.get("canaryVersion") is None
        and cond(s, "Ready").get("status") == "True"
    )


def cli(c: Cluster, main: Any, *args: str) -> int:
    return int(main([*args, "--kubeconfig", c.kubeconfig]))


def test_manual_gate_waits_then_promote_and_abort(
    env: tuple[Cluster, Path], onnx_model: bytes, capsys: pytest.CaptureFixture[str], receiver: Receiver
) -> None:
    c, work = env
    for v in (1, 2, 3):
        add_version(c, work, onnx_model, "gate", v)
    steps = [{"weight": 50, "pause": "1s", "awaitPromotion": True}, {"weight": 80, "pause": "1s"}]
    url = f"http://127.0.0.1:{receiver.server_address[1]}/flaky/T0KEN"
    c.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook"},
            "data": {"url": base64.b64encode(url.encode()).decode()},
        }
    )
    sink = {
        "format": "Slack",
        "events": ["AwaitingPromotion", "RolledBack"],
        "urlSecretRef": {"name": "hook", "key": "url"},
    }
    c.create(isvc("gate", 1, steps, notifications=[sink]))
    c.wait_status("InferenceService", "gate", serving(1), timeout=90)
    spec_before = c.get("InferenceService", "gate")["spec"]  # type: ignore[index]

    # v2: the canary passes its check at step 1, then waits for a person (no timeout)
    c.patch("InferenceService", "gate", {"spec": {"version": 2}})
    st = c.wait_status(
        "InferenceService", "gate", lambda s: s.get("reason") == "AwaitingPromotion", timeout=90
    )["status"]
    assert st["canaryVersion"] == 2 and st["currentStep"] == 0 and st["phase"] == "Progressing"
    assert cond(st, "Paused")["status"] == "True" and "onnxops promote" in st["message"]
    assert st["lastAnalysis"]["verdict"] == "Pass"
    assert {r["NAME"]: r for r in kubectl_get(c, "oisvc")}["gate"]["PAUSED"] == "AwaitingPromotion"
    assert cli(c, rolloutctl.status_main, "gate") == 0
    view = capsys.readouterr().out
    assert "Progressing / AwaitingPromotion" in view and ">>  1.  50%" in view, view
    assert cli(c, rolloutctl.status_main, "gate", "-w", "--interval", "0.2s", "--watch-timeout", "1s") == 0
    assert capsys.readouterr().out.count("Progressing / AwaitingPromotion") == 1  # printed once: unchanged

    # pause / resume on top of the gate: idempotent, visible
    assert cli(c, rolloutctl.pause_main, "gate") == 0
    assert cli(c, rolloutctl.pause_main, "gate") == 0
    assert "already paused" in capsys.readouterr().out
    c.wait_status("InferenceService", "gate", lambda s: s.get("reason") == "PausedByUser")
    assert cli(c, rolloutctl.resume_main, "gate") == 0
    c.wait_status("InferenceService", "gate", lambda s: s.get("reason") == "AwaitingPromotion")

    # promote: step 2 (automatic) follows, then v2 is stable; the request is consumed
    assert cli(c, rolloutctl.promote_main, "gate") == 0
    assert "promote of canary v2 past step 1 requested" in capsys.readouterr().out
    st = c.wait_status("InferenceService", "gate", serving(2), timeout=90)["status"]
    assert not st.get("control") and not cond(st, "Paused")
    assert [h["action"] for h in st["history"]][-1] == "Promoted"
    reasons = [e["reason"] for e in c.events("gate")]
    assert "AwaitingPromotion" in reasons and "CanaryStep" in reasons

    # v3: abort mid-canary -> the stable v2 keeps 100 %, the canary's Deployment goes, held until spec changes
    c.patch("InferenceService", "gate", {"spec": {"version": 3}})
    c.wait_status("InferenceService", "gate", lambda s: s.get("reason") == "AwaitingPromotion", timeout=90)
    assert cli(c, rolloutctl.abort_main, "gate", "--reason", "labels look wrong") == 0
    st = c.wait_status(
        "InferenceService", "gate", lambda s: (s.get("rollback") or {}).get("from") == 3, timeout=60
    )["status"]
    assert st["stableVersion"] == 2 and st.get("canaryVersion") is None and st.get("canaryWeight") is None
    assert st["rollback"]["reason"] == "AbortedByUser" and "labels look wrong" in st["rollback"]["message"]
    assert st["phase"] == "Degraded" and not st.get("control")
    assert c.wait("v3 Deployment removed", lambda: c.get("Deployment", "gate-v3", api="apps/v1") is None)
    assert cli(c, rolloutctl.abort_main, "gate") == 0
    assert "already aborted" in capsys.readouterr().out
    # the commands never touched spec (GitOps sees nothing to revert)
    obj = c.get("InferenceService", "gate")
    assert obj is not None and obj["spec"] == {**spec_before, "version": 3}
    assert obj["metadata"]["generation"] == 3

    # notifications: every decision reached the global sink (generic JSON), in order
    def global_types() -> list[str]:
        return [b["type"] for b in receiver.bodies("/global") if b["inferenceService"]["name"] == "gate"]

    # (the gate is announced again after `resume`: the canary waits for a person once more)
    want = [
        "StepAdvanced",
        "AwaitingPromotion",
        "AwaitingPromotion",
        "StepAdvanced",
        "Promoted",
        "StepAdvanced",
        "AwaitingPromotion",
        "RolledBack",
    ]
    c.wait("global notifications", lambda: len(global_types()) >= len(want), timeout=30)
    assert global_types() == want
    rolled = receiver.bodies("/global")[-1]
    assert rolled["reason"] == "AbortedByUser" and rolled["rollback"]["from"] == 3 and rolled["version"] == 3
    # the service's own sink (Secret URL, Slack body, filtered events) got its after two 503s
    slack = c.wait("slack notifications", lambda: len(receiver.bodies("/flaky/")) == 4 or None, timeout=30)
    assert slack and receiver.flaky_failures == 2
    texts = [b["text"] for b in receiver.bodies("/flaky/")]
    assert sorted(t.split("*")[1] for t in texts) == ["AwaitingPromotion"] * 3 + ["RolledBack"]
