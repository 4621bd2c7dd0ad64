"""spec.logging end to end on the local runtime: the real operator builds the serving pod, the pod captures
what it answers to the pvc:// sink, and the files read back hold the requests sent to the pod."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _operator_env import Cluster, local_cluster, operator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    work = tmp_path_factory.mktemp("capture")
    with local_cluster(work / "rt") as c, operator(c):
        yield c, work


def test_served_rows_land_in_the_sink_of_the_service(env: tuple[Cluster, Path]) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    c, work = env
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    est = LogisticRegression(max_iter=300).fit(x, y)
    blob = to_onnx(est, x[:1], options={id(est): {"zipmap": False}}).SerializeToString()
    path = work / "model.onnx"
    path.write_bytes(blob)
    c.create({"apiVersion": "onnxops.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": "shop-v1"},
              "spec": {"model": "shop", "version": 1,
                       "artifact": {"uri": f"file://{path}", "sha256": hashlib.sha256(blob).hexdigest()}}})
    c.wait_status("ModelVersion", "shop-v1", lambda s: s.get("phase") == "Ready", timeout=90)
    c.create({"apiVersion": "onnxops.dev/v1alpha1", "kind": "InferenceService", "metadata": {"name": "shop"},
              "spec": {"model": "shop", "version": 1, "replicas": 1,
                       "logging": {"flushInterval": "1s", "sink": {"uri": "pvc://traffic/default/shop/"}}}})
    c.wait_status("InferenceService", "shop", lambda s: s.get("phase") == "Ready", timeout=90)
    pod = c.wait("a running serving pod", lambda: next(
        (p for p in c.list("Pod", api="v1", label_selector={"onnxops.dev/inference-service": "shop"})
         if (p.get("status") or {}).get("podIP")), None))
    url = f"http://{pod['status']['podIP']}:8080/v2/models/shop/infer"
    sent = {}
    for i in range(0, 150, 15):
        body = {"id": f"req-{i}", "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
                                               "data": x[i].tolist()}]}
        req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            doc = json.loads(r.read())
        assert doc["id"] == f"req-{i}"
        sent[f"req-{i}"] = (x[i], doc["outputs"][0]["data"][0])
    sink = work / "rt" / "pvc" / "traffic" / "default" / "shop"
    c.wait("the captured rows on the claim",
           lambda: sink.exists() and sum(pd.read_parquet(f).shape[0] for f in sink.rglob("*.parquet")) == 10,
           timeout=60)
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
