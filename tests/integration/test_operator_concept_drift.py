"""Concept drift end to end on the local runtime (the real operator, trainer and serving pods).

v1 is trained on iris. Live traffic stays in distribution (data drift stays below its threshold), but the
true labels change for part of the input space (every flower with petal length > 5 cm is now class 1):
the clients send that ground truth to the feedback endpoint, echoing version and prediction. v1's live
accuracy falls below its held-out accuracy, the operator calls it concept drift and retrains on the
captured traffic joined with the new labels (``dataset.fromServing``, label files written by the serving
pod); the new version is rolled out, its live accuracy on the new labels recovers, and it is the stable
version.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _operator_env import Cluster, local_cluster, operator
from sklearn.datasets import load_iris
from sklearn.metrics import accuracy_score

from onnxops.demo.data import relabelled

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
API = "onnxops.dev/v1alpha1"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    work = tmp_path_factory.mktemp("concept")
    with local_cluster(work / "rt") as c, operator(c):
        yield c, work


def post(url: str, doc: Any) -> Any:
    req = urllib.request.Request(url, json.dumps(doc).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def settle(c: Cluster) -> None:
    """Two more performance evaluations: the serving pods are in the direct scrape's snapshots."""
    for _ in range(2):
        obj = c.get("InferenceService", "iris")
        before = (((obj or {}).get("status") or {}).get("performance") or {}).get("evaluatedAt")
        c.wait_status(
            "InferenceService",
            "iris",
            lambda s, b=before: (s.get("performance") or {}).get("evaluatedAt") not in (None, b),
            timeout=60,
        )


def pod_url(c: Cluster, version: int, service: str = "iris") -> str:
    """The model's v2 base URL on a serving pod of ``version``."""
    pod = c.wait(
        f"a serving pod of v{version}",
        lambda: next(
            (
                p
                for p in c.list("Pod", api="v1", label_selector={"onnxops.dev/inference-service": service})
                if (p.get("status") or {}).get("podIP")
                and not p["metadata"].get("deletionTimestamp")
                and (p["metadata"].get("labels") or {}).get("onnxops.dev/version") == str(version)
            ),
            None,
        ),
        timeout=90,
    )
    return f"http://{pod['status']['podIP']}:8080/v2/models/iris"


def serve_and_label(c: Cluster, version: int, rounds: int, tag: str) -> tuple[list[int], list[int]]:
    """Send every iris row once per round to a pod of ``version``, then the new truth as feedback."""
    base = pod_url(c, version)
    x, y = load_iris(return_X_y=True)
    truth = relabelled(x, y)  # the world changed: petal length > 5 cm is now class 1
    y_true: list[int] = []
    y_pred: list[int] = []
    for r in range(rounds):
        items = []
        for start in range(0, 150, 10):
            rid = f"{tag}-{r}-{start}"
            doc = post(
                f"{base}/infer",
                {
                    "id": rid,
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [10, 4],
                            "datatype": "FP32",
                            "data": x[start : start + 10].astype(np.float32).ravel().tolist(),
                        }
                    ],
                },
            )
            assert doc["model_version"] == str(version)
            labels = doc["outputs"][0]["data"]
            for i in range(10):
                items.append(
                    {
                        "id": f"{rid}:{i}",
                        "truth": int(truth[start + i]),
                        "version": doc["model_version"],
                        "prediction": labels[i],
                    }
                )
                y_true.append(int(truth[start + i]))
                y_pred.append(int(labels[i]))
        got = post(f"{base}/feedback", items)
        assert got["accepted"] == len(items), got
    return y_true, y_pred


@pytest.fixture(scope="module")
def trained(env: tuple[Cluster, Path]) -> tuple[Cluster, Path]:
    """v1 of iris (LogisticRegression on iris), shared by the tests of this module."""
    c, work = env
    if c.get("TrainingJob", "iris-1") is None:
        c.create(
            {
                "apiVersion": API,
                "kind": "TrainingJob",
                "metadata": {"name": "iris-1"},
                "spec": {
                    "model": "iris",
                    "dataset": {"uri": "sklearn://iris"},
                    "estimator": {"className": "LogisticRegression", "params": {"max_iter": 500}},
                    "output": {"uri": f"file://{work / 'store'}"},
                    "backoffLimit": 0,
                },
            }
        )
    c.wait_status("ModelVersion", "iris-v1", lambda s: s.get("phase") == "Ready", timeout=150)
    return c, work


def test_concept_drift_retrains_on_captured_traffic_with_the_new_labels(
    trained: tuple[Cluster, Path],
) -> None:
    c, work = trained
    store = work / "store"
    sink = "pvc://traffic/default/iris/"
    c.create(
        {
            "apiVersion": API,
            "kind": "InferenceService",
            "metadata": {"name": "iris"},
            "spec": {
                "model": "iris",
                "replicas": 1,
                "rollout": {"strategy": "Recreate", "bakeTime": "1s"},
                "logging": {"flushInterval": "1s", "sink": {"uri": sink}},
                "monitoring": {
                    "interval": "2s",
                    "drift": {
                        "method": "psi",
                        "threshold": 0.2,
                        "window": "10m",
                        "minSamples": 100,
                        "failureLimit": 1,
                    },
                    "onDrift": "Alert",
                    "performance": {
                        "metric": "accuracy",
                        "maxDegradation": 0.1,
                        "minLabels": 100,
                        "window": "10m",
                        "failureLimit": 1,
                        "onConceptDrift": "Retrain",
                    },
                },
                "retrain": {
                    "minInterval": "1h",
                    "trainingJob": {
                        "model": "iris",
                        "dataset": {
                            "target": "species",
                            "fromServing": {
                                "service": "iris",
                                "window": "1h",
                                "minRows": 100,
                                "sinkUri": sink,
                                "labels": {"uri": sink + "_labels/"},
                            },
                        },
                        "estimator": {"className": "LogisticRegression", "params": {"max_iter": 1000}},
                        "output": {"uri": f"file://{store}"},
                        "backoffLimit": 0,
                    },
                },
            },
        }
    )
    c.wait_status(
        "InferenceService",
        "iris",
        lambda s: s.get("stableVersion") == 1 and s.get("phase") == "Ready",
        timeout=120,
    )
    # let the direct scrape take its first snapshot, then the traffic and its (changed) ground truth
    settle(c)
    t1, p1 = serve_and_label(c, 1, 2, "a")
    held_out = c.get("ModelVersion", "iris-v1")["spec"]["metrics"]["accuracy"]  # type: ignore[index]
    live_v1 = accuracy_score(t1, p1)
    assert live_v1 < held_out * 0.9  # the reference: v1 is degraded on the new labels

    st = c.wait_status(
        "InferenceService", "iris", lambda s: (s.get("retrain") or {}).get("trainingJob"), timeout=90
    )["status"]
    assert st["retrain"]["reason"] == "ConceptDrift"
    perf = st["performance"]
    assert perf["metric"] == "accuracy" and perf["versions"]["1"]["labels"] == len(t1)
    assert perf["versions"]["1"]["value"] == pytest.approx(live_v1, abs=1e-9)
    assert st["drift"]["verdict"] != "Drift"  # the inputs did not drift
    assert all(v < 0.2 for v in (st["drift"].get("versions") or {}).values())

    tj = c.wait_status(
        "TrainingJob",
        st["retrain"]["trainingJob"],
        lambda s: s.get("phase") in ("Succeeded", "Failed"),
        timeout=150,
    )
    assert tj["status"]["phase"] == "Succeeded", tj["status"]
    assert tj["status"]["modelVersion"] == "iris-v2"
    mv2 = c.get("ModelVersion", "iris-v2")
    assert mv2 is not None and mv2["spec"]["lineage"]["dataset"]["fromServing"]["rowsLabelled"] >= 100
    c.wait_status(
        "InferenceService",
        "iris",
        lambda s: s.get("stableVersion") == 2 and s.get("phase") == "Ready",
        timeout=120,
    )
    settle(c)
    t2, p2 = serve_and_label(c, 2, 2, "b")
    live_v2 = accuracy_score(t2, p2)
    assert live_v2 > live_v1 + 0.1 and live_v2 >= held_out * 0.9  # it learned the new labels

    def recovered(s: dict[str, Any]) -> bool:
        v2 = ((s.get("performance") or {}).get("versions") or {}).get("2") or {}
        return v2.get("verdict") == "Healthy"

    st = c.wait_status("InferenceService", "iris", recovered, timeout=60)["status"]
    assert st["stableVersion"] == 2 and st["performance"]["value"] == pytest.approx(live_v2, abs=1e-9)
    assert st["performance"]["version"] == 2


def test_label_files_are_evaluated_by_an_operator_run_job(trained: tuple[Cluster, Path]) -> None:
    """The batch path: a warehouse drops a label file; every monitoring interval the operator runs a Job
    from the trainer image that joins it with the captured rows, and status.performance carries what
    scikit-learn gives on the same rows (labels for ids that were never captured: counted, ignored)."""
    c, work = trained
    c.create(
        {
            "apiVersion": API,
            "kind": "InferenceService",
            "metadata": {"name": "irisb"},
            "spec": {
                "model": "iris",
                "version": 1,
                "replicas": 1,
                "rollout": {"strategy": "Recreate", "bakeTime": "1s"},
                "logging": {"flushInterval": "1s", "sink": {"uri": "pvc://traffic/default/irisb/"}},
                "monitoring": {
                    "interval": "2s",
                    "drift": {"method": "psi", "threshold": 0.2, "window": "10m", "minSamples": 100},
                    "onDrift": "Alert",
                    "performance": {
                        "metric": "accuracy",
                        "min": 0.9,
                        "minLabels": 50,
                        "window": "10m",
                        "failureLimit": 1,
                        "source": "LabelFiles",
                        "labelFiles": {"uri": "pvc://traffic/warehouse/", "target": "species"},
                    },
                },
            },
        }
    )
    c.wait_status(
        "InferenceService",
        "irisb",
        lambda s: s.get("stableVersion") == 1 and s.get("phase") == "Ready",
        timeout=120,
    )
    base = pod_url(c, 1, "irisb")
    x, y = load_iris(return_X_y=True)
    truth = relabelled(x, y)
    lines, y_true, y_pred = ["id,species"], [], []
    for start in range(0, 150, 10):
        doc = post(
            f"{base}/infer",
            {
                "id": f"w-{start}",
                "inputs": [
                    {
                        "name": "input",
                        "shape": [10, 4],
                        "datatype": "FP32",
                        "data": x[start : start + 10].astype(np.float32).ravel().tolist(),
                    }
                ],
            },
        )
        for i, p in enumerate(doc["outputs"][0]["data"]):
            lines.append(f"w-{start}:{i},{int(truth[start + i])}")
            y_true.append(int(truth[start + i]))
            y_pred.append(int(p))
    lines += [f"never-served-{i},1" for i in range(7)]
    warehouse = work / "rt" / "pvc" / "traffic" / "warehouse"
    warehouse.mkdir(parents=True, exist_ok=True)
    (warehouse / ".labels.csv.tmp").write_text("\n".join(lines) + "\n")
    (warehouse / ".labels.csv.tmp").rename(warehouse / "labels.csv")

    def evaluated(s: dict[str, Any]) -> bool:
        p = s.get("performance") or {}
        v1 = (p.get("versions") or {}).get("1") or {}
        return p.get("source") == "LabelFiles" and v1.get("labels") == 150

    st = c.wait_status("InferenceService", "irisb", evaluated, timeout=120)["status"]
    perf = st["performance"]
    expected = accuracy_score(y_true, y_pred)
    assert expected < 0.9  # the reference: v1 is below min on the new labels
    assert perf["versions"]["1"]["value"] == pytest.approx(expected, abs=1e-9)
    assert perf["versions"]["1"]["verdict"] == "Degraded" and perf["unresolved"] == 7
    assert perf["job"].startswith("irisb-labels-")
    job = c.get("Job", perf["job"], api="batch/v1")
    assert job is not None
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][container["args"].index("--labels-uri") + 1] == "pvc://traffic/warehouse/"
    assert job["metadata"]["ownerReferences"][0]["name"] == "irisb"
