"""Version numbers with the real operator on the local runtime: never reused after a delete, and one
ModelVersion per training run with two operator processes running at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _operator_env import Cluster, local_cluster, operator
from test_drift_prometheus_support import stop_process
from test_operator_training import finished, tj

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with local_cluster(tmp_path_factory.mktemp("rt")) as c:
        yield c


def _versions(cluster: Cluster, model: str) -> list[int]:
    return sorted(m["spec"]["version"] for m in cluster.list("ModelVersion") if m["spec"]["model"] == model)


def test_a_deleted_version_number_is_never_issued_again(cluster: Cluster, tmp_path: Path) -> None:
    store = tmp_path / "store"
    with operator(cluster):
        for name in ("reuse-a", "reuse-b"):
            cluster.create(tj(name, store, model="reuse"))
            st = cluster.wait_status("TrainingJob", name, finished, timeout=120)["status"]
            assert st["phase"] == "Succeeded", st
        assert _versions(cluster, "reuse") == [1, 2]
        assert cluster.delete("ModelVersion", "reuse-v2")
        cluster.wait("reuse-v2 gone", lambda: cluster.get("ModelVersion", "reuse-v2") is None, timeout=30)
        cluster.create(tj("reuse-c", store, model="reuse"))
        st = cluster.wait_status("TrainingJob", "reuse-c", finished, timeout=120)["status"]
        assert st["phase"] == "Succeeded" and st["modelVersion"] == "reuse-v3", st
        assert _versions(cluster, "reuse") == [1, 3]
        mv = cluster.get("ModelVersion", "reuse-v3")
        assert mv and mv["metadata"]["labels"]["onnxops.dev/training-job"] == "reuse-c"
        counter = cluster.get("ConfigMap", "onnxops-model-reuse", api="v1")
        assert counter and counter["data"]["highest"] == "3"


def _operator_process(cluster: Cluster, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "onnxops", "operator"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def test_two_operator_processes_register_each_run_once(cluster: Cluster, tmp_path: Path) -> None:
    store = tmp_path / "store"
    procs = [_operator_process(cluster, tmp_path / f"operator-{i}.log") for i in range(2)]
    try:
        for i in range(6):
            cluster.create(tj(f"dual-{i}", store, model="dual"))
        for i in range(6):
            st = cluster.wait_status("TrainingJob", f"dual-{i}", finished, timeout=240)["status"]
            assert st["phase"] == "Succeeded", st
        time.sleep(2.0)  # a late duplicate from the slower process would show up now
        assert all(p.poll() is None for p in procs), "an operator process exited"
    finally:
        for p in procs:
            stop_process(p)
    mvs = [m for m in cluster.list("ModelVersion") if m["spec"]["model"] == "dual"]
    names = [m["metadata"]["name"] for m in mvs]
    assert sorted(m["spec"]["version"] for m in mvs) == [1, 2, 3, 4, 5, 6], names
    runs = {m["metadata"]["labels"]["onnxops.dev/training-job-uid"] for m in mvs}
    assert len(runs) == 6
    recorded = sorted(cluster.get("TrainingJob", f"dual-{i}")["status"]["modelVersion"] for i in range(6))
    assert recorded == sorted(m["metadata"]["name"] for m in mvs)
