"""The real operator (kopf) against the local runtime: TrainingJob paths and ModelVersion registration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _operator_env import Cluster, local_cluster, operator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DONE = ("Succeeded", "Failed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with local_cluster(tmp_path_factory.mktemp("rt")) as c:
        yield c


def tj(name: str, store: Path, model: str = "iris", **spec: object) -> dict:
    body: dict = {
        "model": model,
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "LogisticRegression", "params": {"max_iter": 300}},
        "output": {"uri": f"file://{store}"},
        "backoffLimit": 0,
    }
    body.update(spec)
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": body,
    }


def finished(s: dict) -> bool:
    return s.get("phase") == "Failed" or (s.get("phase") == "Succeeded" and bool(s.get("modelVersion")))


def test_training_paths(cluster: Cluster, tmp_path: Path) -> None:
    """Success + verification, gate not met, crash with backoff, deadline, suspend — run side by side."""
    store = tmp_path / "store"
    with operator(cluster):
        cluster.create(tj("ok", store, model="paths"))
        cluster.create(tj("gate", store, model="gated", evaluation={"gates": ["accuracy >= 0.999"]}))
        cluster.create(
            tj(
                "crash",
                store,
                model="crash",
                backoffLimit=1,
                template={"env": [{"name": "PYTHONHOME", "value": str(tmp_path / "nowhere")}]},
            )
        )
        cluster.create(tj("slow", store, model="slow", activeDeadlineSeconds=1))
        cluster.create(tj("paused", store, model="paused", suspend=True))

        ok = cluster.wait_status("TrainingJob", "ok", finished, timeout=120)["status"]
        assert ok["phase"] == "Succeeded", ok
        assert ok["modelVersion"] == "paths-v1" and ok["attempts"] == 1
        assert ok["primaryMetric"].startswith("accuracy=") and 0.8 < ok["metrics"]["accuracy"] <= 1.0
        mv = cluster.wait_status("ModelVersion", "paths-v1", lambda s: s.get("phase") in ("Ready", "Failed"))
        assert mv["status"]["phase"] == "Ready", mv["status"]
        assert mv["spec"]["version"] == 1 and mv["spec"]["lineage"]["trainingJob"] == "default/ok"
        assert mv["spec"]["artifact"]["sha256"] == ok["artifact"]["sha256"]
        assert "ownerReferences" not in mv["metadata"]
        job = cluster.get("Job", "ok-train", api="batch/v1")
        assert job and job["metadata"]["ownerReferences"][0]["name"] == "ok"

        gate = cluster.wait_status("TrainingJob", "gate", finished, timeout=120)["status"]
        assert gate["phase"] == "Failed" and "GateNotMet" in gate["message"], gate
        assert "accuracy" in gate["message"]
        assert any(c["type"] == "Stalled" and c["status"] == "True" for c in gate["conditions"])

        crash = cluster.wait_status("TrainingJob", "crash", finished, timeout=120)["status"]
        assert crash["phase"] == "Failed" and crash["attempts"] == 2, crash
        assert crash["message"].startswith("BackoffLimitExceeded"), crash

        slow = cluster.wait_status("TrainingJob", "slow", finished, timeout=120)["status"]
        assert slow["phase"] == "Failed" and "DeadlineExceeded" in slow["message"], slow

        paused = cluster.wait_status("TrainingJob", "paused", lambda s: s.get("phase") == "Suspended")
        assert cluster.list("Pod", api="v1", label_selector={"onnxops.dev/training-job": "paused"}) == []
        cluster.patch("TrainingJob", "paused", {"spec": {"suspend": False}})
        resumed = cluster.wait_status("TrainingJob", "paused", finished, timeout=120)["status"]
        assert resumed["phase"] == "Succeeded" and resumed["modelVersion"] == "paused-v1", resumed
        assert paused  # was seen suspended first
        reasons = {e["reason"] for e in cluster.events("gate")}
        assert "GateNotMet" in reasons, reasons


def test_final_failures_end_after_one_attempt_and_transient_ones_retry(
    cluster: Cluster, tmp_path: Path
) -> None:
    """podFailurePolicy: a bad parameter and a missing data file fail at the first attempt (backoffLimit 2
    left unused), an unreachable data server is retried, a disrupted pod is replaced without counting."""
    import socket

    store = tmp_path / "store"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with operator(cluster):
        cluster.create(
            tj(
                "badparam",
                store,
                model="badparam",
                backoffLimit=2,
                estimator={"className": "LogisticRegression", "params": {"max_iterations": 5}},
            )
        )
        cluster.create(
            tj(
                "nodata",
                store,
                model="nodata",
                backoffLimit=2,
                dataset={"uri": f"file://{tmp_path}/missing.csv", "target": "y"},
            )
        )
        cluster.create(
            tj(
                "offline",
                store,
                model="offline",
                backoffLimit=1,
                dataset={"uri": f"https://127.0.0.1:{closed}/d.csv", "target": "y"},
            )
        )
        cluster.create(tj("drained", store, model="drained", backoffLimit=0))
        pod = cluster.wait(
            "the training pod of drained",
            lambda: cluster.list("Pod", api="v1", label_selector={"onnxops.dev/training-job": "drained"}),
            timeout=60,
        )[0]
        name = pod["metadata"]["name"]
        cluster.wait("its process", lambda: cluster.rt.pids().get(f"default/{name}"), timeout=60)
        assert cluster.rt.disrupt_pod("default", name)

        bad = cluster.wait_status("TrainingJob", "badparam", finished, timeout=120)["status"]
        assert bad["phase"] == "Failed" and bad["attempts"] == 1, bad
        assert bad["message"].startswith("InvalidSpec: estimator.params.max_iterations"), bad
        missing = cluster.wait_status("TrainingJob", "nodata", finished, timeout=120)["status"]
        assert missing["phase"] == "Failed" and missing["attempts"] == 1, missing
        assert missing["message"].startswith("DataError: dataset file://")
        assert "no such file" in missing["message"]
        offline = cluster.wait_status("TrainingJob", "offline", finished, timeout=120)["status"]
        assert offline["phase"] == "Failed" and offline["attempts"] == 2, offline  # retried once
        assert offline["message"].startswith("DataError:") and "cannot connect" in offline["message"]
        drained = cluster.wait_status("TrainingJob", "drained", finished, timeout=120)["status"]
        assert drained["phase"] == "Succeeded" and drained["modelVersion"] == "drained-v1", drained
        job = cluster.get("Job", "drained-train", api="batch/v1")
        assert job and "failed" not in job["status"], job["status"]  # the disrupted pod did not count
        pods = cluster.list("Pod", api="v1", label_selector={"onnxops.dev/training-job": "drained"})
        assert len(pods) == 2


def test_version_numbering_concurrency_and_restart(cluster: Cluster, tmp_path: Path) -> None:
    """Three TrainingJobs of one model finish together and the operator restarts mid-way: exactly one
    ModelVersion each, numbered 1..3; after another restart nothing new appears."""
    store = tmp_path / "store"
    with operator(cluster):
        for i in range(3):
            cluster.create(tj(f"num-{i}", store, model="numbered"))
        cluster.wait(
            "a training pod running",
            lambda: cluster.list("Pod", api="v1", label_selector={"onnxops.dev/model": "numbered"}),
            timeout=60,
        )
    # the operator is down while the trainers finish; the next one registers the versions
    time.sleep(1.0)
    with operator(cluster):
        for i in range(3):
            cluster.wait_status("TrainingJob", f"num-{i}", finished, timeout=120)
    with operator(cluster):
        time.sleep(2.0)
        mvs = [m for m in cluster.list("ModelVersion") if m["spec"]["model"] == "numbered"]
    versions = sorted(m["spec"]["version"] for m in mvs)
    assert versions == [1, 2, 3], versions
    owners = sorted(m["metadata"]["labels"]["onnxops.dev/training-job"] for m in mvs)
    assert owners == ["num-0", "num-1", "num-2"]
    recorded = sorted(cluster.get("TrainingJob", f"num-{i}")["status"]["modelVersion"] for i in range(3))
    assert recorded == ["numbered-v1", "numbered-v2", "numbered-v3"]


def test_stuck_training_pods_are_reported(cluster: Cluster, tmp_path: Path) -> None:
    """An image that cannot be pulled and a Secret that does not exist leave the pod waiting forever; the
    TrainingJob says why (status message, Ready reason) and posts a Warning Event."""
    store = tmp_path / "store"

    def stuck(reasons: tuple[str, ...]) -> object:
        return lambda s: s.get("phase") == "Pending" and str(s.get("message", "")).startswith(reasons)

    def ready_reason(st: dict) -> str:
        return next(c["reason"] for c in st["conditions"] if c["type"] == "Ready")

    with operator(cluster):
        image = "docker.io/library/python:3.12"
        cluster.create(tj("noimage", store, model="noimage", template={"image": image}))
        cluster.create(
            tj(
                "nosecret",
                store,
                model="nosecret",
                dataset={
                    "uri": "s3://bucket/data.csv",
                    "target": "y",
                    "credentialsSecret": {"name": "wrong-name"},
                },
            )
        )
        pulls = ("ErrImagePull", "ImagePullBackOff")
        st = cluster.wait_status("TrainingJob", "noimage", stuck(pulls), timeout=90)["status"]
        assert image in st["message"] and ready_reason(st) in pulls, st
        st = cluster.wait_status(
            "TrainingJob", "nosecret", stuck(("CreateContainerConfigError",)), timeout=90
        )["status"]
        assert 'secret "wrong-name" not found' in st["message"], st
        assert ready_reason(st) == "CreateContainerConfigError"
        warnings = {e["reason"] for e in cluster.events("nosecret") if e["type"] == "Warning"}
        assert "CreateContainerConfigError" in warnings, warnings
        assert {e["reason"] for e in cluster.events("noimage")} & set(pulls)
        job = cluster.get("Job", "noimage-train", api="batch/v1")
        assert job and job["spec"]["activeDeadlineSeconds"] == 86400  # the default deadline ends it
        for name in ("noimage", "nosecret"):
            cluster.delete("TrainingJob", name)


def _kubectl() -> str:
    import shutil
    import sys

    kubectl = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    if not Path(kubectl).exists():
        pytest.skip("kubectl not installed")
    return kubectl


def test_edits_during_training_do_not_reach_the_model_version(cluster: Cluster, tmp_path: Path) -> None:
    """A patch of estimator.params while the Job runs: the ModelVersion records what was trained; a patch
    of spec.model is refused at admission (CEL), with kubectl as a user would send it."""
    import json
    import subprocess

    with operator(cluster):
        cluster.create(tj("edited", tmp_path / "store", model="edited"))
        cluster.wait("the Job", lambda: cluster.get("Job", "edited-train", api="batch/v1"), timeout=60)
        cluster.patch("TrainingJob", "edited", {"spec": {"estimator": {"params": {"max_iter": 7}}}})
        refused = subprocess.run(
            [
                _kubectl(),
                "--kubeconfig",
                cluster.kubeconfig,
                "patch",
                "trainingjob",
                "edited",
                "--type",
                "merge",
                "-p",
                json.dumps({"spec": {"model": "renamed"}}),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert refused.returncode != 0, refused.stdout
        assert "spec.model cannot be changed after creation" in refused.stderr, refused.stderr
        st = cluster.wait_status("TrainingJob", "edited", finished, timeout=120)["status"]
        assert st["phase"] == "Succeeded" and st["modelVersion"] == "edited-v1", st
        assert "spec changes after the training started are not applied" in st["message"], st
        mv = cluster.get("ModelVersion", "edited-v1")
        assert mv is not None and mv["spec"]["lineage"]["estimator"]["params"] == {"max_iter": 300}
        assert cluster.get("TrainingJob", "edited")["spec"]["model"] == "edited"


def test_kubectl_get_onnxops_shows_columns(cluster: Cluster, tmp_path: Path) -> None:
    import subprocess

    kubectl = _kubectl()
    with operator(cluster):
        cluster.create(tj("shown", tmp_path / "store", model="shown"))
        cluster.wait_status("TrainingJob", "shown", finished, timeout=120)
        cluster.wait_status("ModelVersion", "shown-v1", lambda s: s.get("phase") == "Ready")
    out = subprocess.run(
        [kubectl, "--kubeconfig", cluster.kubeconfig, "get", "onnxops", "-o", "wide"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    tj_line = next(line for line in out.splitlines() if line.startswith("trainingjob.onnxops.dev/shown "))
    assert "Succeeded" in tj_line and "shown-v1" in tj_line and "accuracy=" in tj_line, out
    mv_line = next(line for line in out.splitlines() if line.startswith("modelversion.onnxops.dev/shown-v1 "))
    assert "True" in mv_line and "Ready" in mv_line, out
