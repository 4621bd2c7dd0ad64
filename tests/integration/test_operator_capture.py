"""spec.logging end to end on the local runtime: the real operator builds the serving pod, the pod captures
what it answers to the pvc:// sink, and the files read back hold the requests sent to the pod; a sink the
pods cannot write shows in the service's CaptureHealthy condition; a TrainingJob on the traffic of an
unknown or non-capturing service is not started, with a reason naming the field."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _operator_env import Cluster, local_cluster, operator

API = "onnxops.dev/v1alpha1"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    work = tmp_path_factory.mktemp("capture")
    with local_cluster(work / "rt") as c, operator(c):
        yield c, work


def ready_model(c: Cluster, work: Path) -> tuple[np.ndarray, Any]:
    """ModelVersion shop-v1 (an iris LogisticRegression) Ready; (the iris rows, the estimator)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    est = LogisticRegression(max_iter=300).fit(x, y)
    if c.get("ModelVersion", "shop-v1") is None:
        blob = to_onnx(est, x[:1], options={id(est): {"zipmap": False}}).SerializeToString()
        path = work / "model.onnx"
        path.write_bytes(blob)
        c.create(
            {
                "apiVersion": API,
                "kind": "ModelVersion",
                "metadata": {"name": "shop-v1"},
                "spec": {
                    "model": "shop",
                    "version": 1,
                    "artifact": {"uri": f"file://{path}", "sha256": hashlib.sha256(blob).hexdigest()},
                },
            }
        )
    c.wait_status("ModelVersion", "shop-v1", lambda s: s.get("phase") == "Ready", timeout=90)
    return x, est


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def test_served_rows_land_in_the_sink_of_the_service(env: tuple[Cluster, Path]) -> None:
    c, work = env
    x, est = ready_model(c, work)
    c.create(
        {
            "apiVersion": "onnxops.dev/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": "shop"},
            "spec": {
                "model": "shop",
                "version": 1,
                "replicas": 1,
                "logging": {"flushInterval": "1s", "sink": {"uri": "pvc://traffic/default/shop/"}},
            },
        }
    )
    c.wait_status("InferenceService", "shop", lambda s: s.get("phase") == "Ready", timeout=90)
    pod = c.wait(
        "a running serving pod",
        lambda: next(
            (
                p
                for p in c.list("Pod", api="v1", label_selector={"onnxops.dev/inference-service": "shop"})
                if (p.get("status") or {}).get("podIP")
            ),
            None,
        ),
    )
    url = f"http://{pod['status']['podIP']}:8080/v2/models/shop/infer"
    sent = {}
    for i in range(0, 150, 15):
        body = {
            "id": f"req-{i}",
            "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": x[i].tolist()}],
        }
        req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            doc = json.loads(r.read())
        assert doc["id"] == f"req-{i}"
        sent[f"req-{i}"] = (x[i], doc["outputs"][0]["data"][0])
    sink = work / "rt" / "pvc" / "traffic" / "default" / "shop"
    c.wait(
        "the captured rows on the claim",
        lambda: sink.exists() and sum(pd.read_parquet(f).shape[0] for f in sink.rglob("*.parquet")) == 10,
        timeout=60,
    )
    files = list(sink.rglob("*.parquet"))
    assert all(f.name.startswith(pod["metadata"]["name"] + "-") for f in files)
    assert all("model=shop/version=1/date=" in str(f) for f in files)
    frame = pd.read_parquet(sink)
    assert sorted(frame["id"]) == sorted(sent)
    for _, row in frame.iterrows():
        feats, label = sent[row["id"]]
        # no profile: the columns are named <input>_<j>
        np.testing.assert_array_equal(row[["X_0", "X_1", "X_2", "X_3"]].to_numpy(np.float32), feats)
        assert int(row["prediction"]) == label == int(est.predict(feats[None])[0])
    # the pods wrote: the service says so (CaptureHealthy, from the pods' capture counters)
    st = c.wait_status(
        "InferenceService",
        "shop",
        lambda s: condition(s, "CaptureHealthy").get("status") == "True",
        timeout=60,
    )["status"]
    assert condition(st, "CaptureHealthy")["reason"] == "SinkWritable"


def test_a_sink_the_pods_cannot_write_shows_in_the_service_status(env: tuple[Cluster, Path]) -> None:
    """The sink's directory is a file: every write fails. Requests are still answered; the service's
    CaptureHealthy turns False with SinkUnavailable naming the pod."""
    c, work = env
    x, _ = ready_model(c, work)
    blocked = work / "rt" / "pvc" / "traffic" / "default" / "blocked"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the sink directory should be")
    c.create(
        {
            "apiVersion": API,
            "kind": "InferenceService",
            "metadata": {"name": "blocked"},
            "spec": {
                "model": "shop",
                "version": 1,
                "replicas": 1,
                "logging": {"flushInterval": "1s", "sink": {"uri": "pvc://traffic/default/blocked/"}},
            },
        }
    )
    c.wait_status("InferenceService", "blocked", lambda s: s.get("phase") == "Ready", timeout=90)
    pod = c.wait(
        "a running serving pod",
        lambda: next(
            (
                p
                for p in c.list("Pod", api="v1", label_selector={"onnxops.dev/inference-service": "blocked"})
                if (p.get("status") or {}).get("podIP")
            ),
            None,
        ),
    )
    url = f"http://{pod['status']['podIP']}:8080/v2/models/shop/infer"
    for i in range(20):
        body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": x[i].tolist()}]}
        req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
    st = c.wait_status(
        "InferenceService", "blocked", lambda s: condition(s, "CaptureHealthy").get("status") == "False"
    )["status"]
    cond = condition(st, "CaptureHealthy")
    assert cond["reason"] == "SinkUnavailable" and pod["metadata"]["name"] in cond["message"]
    assert "failed writes" in cond["message"] and "writable from every serving pod" in cond["message"]
    assert st["phase"] == "Ready"  # serving is unaffected


def fs_training_job(name: str, service: str) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "model": "shop",
            "estimator": {"className": "LogisticRegression"},
            "dataset": {
                "target": "species",
                "fromServing": {
                    "service": service,
                    "window": "1h",
                    "labels": {"uri": "pvc://traffic/labels/"},
                },
            },
        },
    }


@pytest.mark.parametrize(
    ("service", "reason"), [("nowhere", "ServiceNotFound"), ("plain", "CaptureNotEnabled")]
)
def test_training_on_traffic_of_a_missing_or_non_capturing_service_is_not_started(
    env: tuple[Cluster, Path], service: str, reason: str
) -> None:
    c, _ = env
    if service == "plain" and c.get("InferenceService", "plain") is None:  # no spec.logging
        c.create(
            {
                "apiVersion": API,
                "kind": "InferenceService",
                "metadata": {"name": "plain"},
                "spec": {"model": "absent", "version": 1},
            }
        )
    name = f"from-{service}"
    c.create(fs_training_job(name, service))
    st = c.wait_status("TrainingJob", name, lambda s: condition(s, "Ready").get("reason") == reason)["status"]
    assert st["phase"] == "Pending" and condition(st, "Stalled").get("status") == "True"
    assert st["message"].startswith("spec.dataset.fromServing.service: ") and repr(service) in st["message"]
    assert c.get("Job", f"{name}-train", api="batch/v1") is None
    assert not c.list("Job", api="batch/v1", label_selector={"onnxops.dev/training-job": name})
