"""The real operator (kopf) on the local runtime with real ONNX Runtime servers: a rollout of a healthy
version under steady traffic fails no request (issue 23 §6: surge, the stable shrinks only once the canary's
pods are Ready), and an inconclusive analysis holds the step, says why, and aborts at its limit (issue 22)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _operator_env import Cluster, local_cluster, operator

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


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    work = tmp_path_factory.mktemp("rollout")
    metrics = work / "metrics.json"
    with (
        local_cluster(work / "rt") as c,
        operator(
            c, {"ONNXOPS_METRICS_PROVIDER": "_fake_metrics:provider", "ONNXOPS_FAKE_METRICS": str(metrics)}
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
    st = c.wait_status("ModelVersion", f"{model}-v{v}", lambda s: s.get("phase") in ("Ready", "Failed"))
    assert st["status"]["phase"] == "Ready", st["status"]


def isvc(name: str, version: int, rollout: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"model": name, "version": version, "replicas": 2, "rollout": rollout},
    }


def kubectl_get(c: Cluster, *args: str) -> list[dict[str, str]]:
    """`kubectl get ...` rows as {COLUMN: cell} (cells cut at the header's column starts)."""
    kubectl = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    if not Path(kubectl).exists():
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        [kubectl, "--kubeconfig", c.kubeconfig, "get", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    header, *lines = out.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    rows = []
    for line in lines:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(header.split(), cells, strict=True)))
    return rows


def cond(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


class Traffic:
    """Steady requests (OIP v2 infer) through the runtime's Service proxy; counts answers by code."""

    BODY = json.dumps(
        {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
    ).encode()

    def __init__(self, url: str, model: str, rate: float = 20.0) -> None:
        self.url = f"{url}/v2/models/{model}/infer"
        self.period = 1.0 / rate
        self.codes: Counter[str] = Counter()
        self.samples: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def _one(self) -> None:
        req = urllib.request.Request(
            self.url, data=self.BODY, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                code = str(r.status)
        except urllib.error.HTTPError as e:
            code = str(e.code)
            self.samples.setdefault(code, e.read()[:300].decode(errors="replace"))
        except (OSError, urllib.error.URLError) as e:
            code = "error"
            self.samples.setdefault(code, repr(e)[:300])
        self.codes[code] += 1

    def _run(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            self._one()
            nxt += self.period
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    @property
    def failed(self) -> int:
        return sum(n for code, n in self.codes.items() if code != "200")


def test_rollout_of_a_healthy_version_fails_no_request(env: tuple[Cluster, Path], onnx_model: bytes) -> None:
    c, work = env
    for v in (1, 2):
        add_version(c, work, onnx_model, "surge", v)
    rollout = {"steps": [{"weight": 50, "pause": "3s"}], "bakeTime": "3s", "progressDeadline": "90s"}
    c.create(isvc("surge", 1, rollout))
    c.wait_status(
        "InferenceService",
        "surge",
        lambda s: (
            s.get("stableVersion") == 1
            and (cond(s, "Ready") or {}).get("status") == "True"
            and s.get("reason") == "Available"
        ),
        timeout=90,
    )
    url = c.call(lambda: c.runtime.service_proxy("default", "surge", 80))
    with Traffic(url, "surge") as traffic:
        time.sleep(2.0)
        c.patch("InferenceService", "surge", {"spec": {"version": 2}})
        # while the canary starts, the stable keeps both of its pods (surge)
        st = c.wait_status("InferenceService", "surge", lambda s: s.get("canaryVersion") == 2)["status"]
        v1 = c.get("Deployment", "surge-v1", api="apps/v1")
        v2 = c.get("Deployment", "surge-v2", api="apps/v1") or {}
        v2_ready = int((v2.get("status") or {}).get("readyReplicas") or 0)
        assert v1 is not None and v1["spec"]["replicas"] == 2 - v2_ready, (st, v2_ready)
        c.wait_status(
            "InferenceService",
            "surge",
            lambda s: s.get("stableVersion") == 2 and s.get("previousVersion") is None,
            timeout=120,
        )
        c.wait(
            "v1 gone",
            lambda: (
                c.get("Deployment", "surge-v1", api="apps/v1") is None
                and len(c.runtime.service_backends("default", "surge", 80)) == 2
            ),
            timeout=60,
        )
        time.sleep(2.0)
    total = sum(traffic.codes.values())
    assert total > 100, traffic.codes
    assert traffic.failed == 0, (traffic.codes, traffic.samples)


def test_inconclusive_analysis_holds_then_aborts(env: tuple[Cluster, Path], onnx_model: bytes) -> None:
    c, work = env
    for v in (1, 7):
        add_version(c, work, onnx_model, "quiet", v)
    # v7's canary sees too few requests: every check is inconclusive
    (work / "metrics.json").write_text(json.dumps({"7": [3, 0, 5.0]}))
    rollout = {
        "steps": [{"weight": 50, "pause": "1s"}],
        "bakeTime": "1s",
        "analysis": {"minRequests": 10, "inconclusiveLimit": 3},
    }
    c.create(isvc("quiet", 1, rollout))
    c.wait_status("InferenceService", "quiet", lambda s: s.get("stableVersion") == 1, timeout=90)
    c.patch("InferenceService", "quiet", {"spec": {"version": 7}})
    st = c.wait_status(
        "InferenceService", "quiet", lambda s: s.get("reason") == "AnalysisInconclusive", timeout=90
    )["status"]
    assert st["canaryVersion"] == 7 and st["stableVersion"] == 1 and st["phase"] == "Progressing"
    held = cond(st, "AnalysisInconclusive")
    assert held and held["status"] == "True" and "3 requests < minRequests 10" in held["message"], held
    assert st["lastAnalysis"]["verdict"] == "Inconclusive"
    # never promoted without evidence: after inconclusiveLimit windows (>= 10 s apart) it aborts
    st = c.wait_status(
        "InferenceService", "quiet", lambda s: (s.get("rollback") or {}).get("from") == 7, timeout=120
    )["status"]
    assert st["rollback"]["reason"] == "AnalysisInconclusive" and st["stableVersion"] == 1
    assert st["phase"] == "Degraded" and st["reason"] == "AnalysisInconclusive"
    assert [h["action"] for h in st["history"]] == ["Deployed", "Aborted"]
    assert cond(st, "AnalysisInconclusive") is None
    assert c.get("ModelVersion", "quiet-v7")["status"].get("rejected") is True
    reasons = [e["reason"] for e in c.events("quiet")]
    assert "AnalysisInconclusive" in reasons and "Promoted" not in reasons, reasons
    # the on-call view: kubectl shows the incident, -o wide the URL and the message
    (row,) = kubectl_get(c, "oisvc", "quiet", "-o", "wide")
    assert (row["STABLE"], row["STATUS"], row["REASON"], row["READY"]) == (
        "1",
        "Degraded",
        "AnalysisInconclusive",
        "True",
    ), row
    assert row["URL"] == "http://quiet.default.svc.cluster.local" and row["MESSAGE"].startswith(
        "rolled back v7"
    )
    (mv,) = kubectl_get(c, "mv", "quiet-v7", "-o", "wide")
    assert mv["REJECTED"] == "true" and mv["REASON"] == "AnalysisInconclusive", mv


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_blocked_deletion_is_logged_once(env: tuple[Cluster, Path], onnx_model: bytes) -> None:
    """Issue 23 §8: a served ModelVersion's deletion waits (retried every 5 s); kopf's ERROR line (and the
    Event kopf posts for it) comes once per change, the DeletionBlocked condition and our Event stay."""
    c, work = env
    add_version(c, work, onnx_model, "kept", 1)
    c.create(isvc("kept", 1, {"steps": [{"weight": 50}]}))
    c.wait_status("ModelVersion", "kept-v1", lambda s: s.get("servedBy") == ["default/kept"], timeout=90)
    records = _Records()
    kopf_objects = logging.getLogger("kopf.objects")
    kopf_objects.addHandler(records)
    try:
        c.delete("ModelVersion", "kept-v1")
        st = c.wait_status(
            "ModelVersion",
            "kept-v1",
            lambda s: any(x["type"] == "DeletionBlocked" and x["status"] == "True" for x in s["conditions"]),
        )["status"]
        assert st["servedBy"] == ["default/kept"]
        time.sleep(12.0)  # two more retries at 5 s
    finally:
        kopf_objects.removeHandler(records)
    waits = [m for m in records.messages if "deletion waits" in m]
    assert len(waits) == 1, records.messages
    ours = [e for e in c.events("kept-v1") if e["reason"] == "DeletionBlocked"]
    assert len(ours) == 1 and ours[0].get("count", 1) == 1, ours
    c.delete("InferenceService", "kept")
    c.wait("the ModelVersion deleted", lambda: c.get("ModelVersion", "kept-v1") is None, timeout=60)
