"""`onnxops demo`, non-interactive, end to end: the local runtime, the real operator, a real Prometheus (when
the binary is installed), real trainer and ONNX Runtime server processes. Every step's outcome is asserted
from the objects' status — read through the API while the demo ran (its snapshots and drift evaluations)
and at the end — never from printed text; then that no process or port it started is left.

The drift acceptance of issue 7 (no action during the no-drift windows, v2 rolled back, retrain) is
asserted on the same run here and, through the direct-scrape source, in test_drift_loop.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from _demo_run import DemoRun, leftovers, run_demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
THRESHOLD = 0.2  # examples/demo/inferenceservice-iris.yaml: monitoring.drift.threshold
MIN_SAMPLES = 300


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_demo(tmp_path_factory.mktemp("demo"))


def test_the_demo_succeeds_and_uses_prometheus_when_installed(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.output[-6000:]
    assert demo.summary["ok"] and demo.summary["error"] is None
    assert [s["step"] for s in demo.summary["steps"]] == [1, 2, 3, 4, 5]
    assert all(s["ok"] for s in demo.summary["steps"])
    if shutil.which("prometheus"):
        assert demo.summary["prometheusUrl"].startswith("http://127.0.0.1:")


def test_step1_v1_trained_verified_registered(demo: DemoRun) -> None:
    tj = demo.tj("iris")
    assert tj["status"]["phase"] == "Succeeded" and tj["status"]["modelVersion"] == "iris-v1"
    mv = demo.mv("iris-v1")
    assert mv["status"]["phase"] == "Ready" and mv["spec"]["version"] == 1
    assert mv["spec"]["metrics"]["accuracy"] >= 0.9  # the example's gate
    assert mv["spec"]["lineage"]["dataset"]["uri"] == "sklearn://iris"


def test_step2_v1_serves_and_the_no_drift_windows_take_no_action(demo: DemoRun) -> None:
    """Issue 7: v1 trained on clean data serves clean traffic for several windows: no action, no alarm."""
    st = demo.summary["snapshots"]["serving-v1"]["status"]
    assert st["stableVersion"] == 1 and st.get("canaryVersion") is None
    only_v1 = [
        e
        for e in demo.summary["driftEvaluations"]
        if e["stableVersion"] == 1 and e["canaryVersion"] is None and e["stage"] in ("step2", "step3")
    ]
    conclusive = [e for e in only_v1 if e["drift"]["verdict"] != "Inconclusive"]
    assert len(conclusive) >= 3
    for e in only_v1:
        assert e["drift"]["verdict"] in ("NoDrift", "Inconclusive"), e
        assert e["rollback"] is None and e["retrain"] is None, e
        assert int(e["drift"].get("consecutiveBreaches") or 0) == 0, e
    for e in conclusive:
        assert e["drift"]["samples"] >= MIN_SAMPLES
        assert 0 <= e["drift"]["versions"]["1"] < THRESHOLD
    assert next(h["action"] for h in demo.isvc.get("history") or [] if h["version"] == 1) == "Deployed"


def test_step3_v2_trained_on_skewed_data_and_canaried(demo: DemoRun) -> None:
    tj = demo.tj("iris-skewed")
    assert tj["status"]["phase"] == "Succeeded" and tj["status"]["modelVersion"] == "iris-v2"
    assert tj["spec"]["dataset"]["uri"].endswith("/datasets/iris-skewed.csv")
    mv = demo.mv("iris-v2")
    assert mv["spec"]["version"] == 2 and mv["status"]["phase"] == "Ready"
    canary = [e for e in demo.summary["driftEvaluations"] if e["canaryVersion"] == 2]
    assert canary, "v2 was never scored as a canary"
    assert all(e["stableVersion"] == 1 for e in canary)


def test_step4_v2_drifts_and_is_rolled_back_with_reason_and_scores(demo: DemoRun) -> None:
    rb = demo.isvc["rollback"]
    assert (rb["from"], rb["to"], rb["reason"]) == (2, 1, "DriftDetected")
    assert rb["scores"]["v2"] > THRESHOLD > rb["scores"]["v1"]
    assert "v2" in rb["message"] and rb["at"]
    snap = demo.summary["snapshots"]["rolled-back"]["status"]
    assert snap["stableVersion"] == 1 and snap.get("canaryVersion") is None
    mv = demo.mv("iris-v2")
    assert mv["status"].get("rejected") is True
    actions = [h["action"] for h in demo.isvc["history"] if h["version"] == 2]
    assert actions and actions[-1] in ("Aborted", "RolledBack")
    # the drift that led to it: failureLimit (2) drifting windows of v2, from the canary's first evaluation
    # to the one that rolled it back (that status write already shows the canary gone)
    evals = demo.summary["driftEvaluations"]
    first = next(i for i, e in enumerate(evals) if e["canaryVersion"] == 2)
    last = next(i for i, e in enumerate(evals) if (e["rollback"] or {}).get("from") == 2)
    v2 = [(e["drift"].get("versions") or {}).get("2") for e in evals[first : last + 1]]
    assert sum(s is not None and s > THRESHOLD for s in v2) >= 2, v2
    assert evals[last]["stableVersion"] == 1 and evals[last]["drift"]["verdict"] == "Drift"


def test_step5_the_world_shifts_the_operator_retrains_and_v3_is_stable(demo: DemoRun) -> None:
    st = demo.isvc
    retrain = st["retrain"]
    assert retrain["reason"] == "AllVersionsDrifted" and retrain["scores"]["v1"] > THRESHOLD
    tj = demo.tj(retrain["trainingJob"])
    assert tj["labels"]["onnxops.dev/inference-service"] == "iris"
    assert "uri" not in tj["spec"]["dataset"] and tj["spec"]["dataset"]["fromServing"]["service"] == "iris"
    assert tj["status"]["phase"] == "Succeeded" and tj["status"]["modelVersion"] == "iris-v3"
    assert demo.mv("iris-v3")["status"]["phase"] == "Ready"
    assert st["stableVersion"] == 3 and st.get("canaryVersion") is None and st.get("previousVersion") is None
    # healthy on v3: Ready describes the present; the rollback of v2 stays only as the record
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert st["phase"] == "Ready" and conds["Ready"] == "True", st
    assert conds.get("Degraded", "False") == "False" and conds.get("Stalled", "False") == "False"
    assert st["rollback"]["from"] == 2
    retrains = [
        t
        for t in demo.summary["objects"]["trainingJobs"]
        if t["labels"].get("onnxops.dev/inference-service") == "iris"
    ]
    assert len(retrains) == 1  # at most one per minInterval
    # v3 is scored against its own (shifted) baseline on the shifted traffic: no drift
    v3 = [
        e["drift"]["versions"]["3"]
        for e in demo.summary["driftEvaluations"]
        if "3" in (e["drift"].get("versions") or {}) and e["stage"] == "step5"
    ]
    assert v3 and max(v3) < THRESHOLD
    assert demo.summary["traffic"]["byWorld"]["shifted"] > 0


def test_step5_v3_trained_on_the_traffic_the_server_captured_after_the_shift(demo: DemoRun) -> None:
    """Issue 12: nobody staged v3's data. The pods captured the shifted traffic, the generator sent the
    ground truth of the rows it sent to the feedback endpoint (the pods wrote it as labels), and v3's
    lineage says what was read: the window (after the shift), the rows captured / labelled / used, the
    files and the labels' digest."""
    fs = demo.mv("iris-v3")["spec"]["lineage"]["dataset"]["fromServing"]
    assert fs["service"] == "iris" and fs["sinkUri"] == "pvc://onnxops-artifacts/traffic/iris/"
    assert fs["labelsUri"] == "pvc://onnxops-artifacts/traffic/iris/_labels/"  # the pods' feedback labels
    shifted_at = demo.summary["trafficWorlds"]["shifted"]
    start = datetime.fromisoformat(fs["windowStart"].replace("Z", "+00:00")).timestamp()
    assert start >= shifted_at - 1  # whole seconds in lineage: every row trained on is shifted traffic
    assert fs["rowsCaptured"] >= fs["rowsLabelled"] >= 150 and fs["rowsUsed"] == fs["rowsLabelled"]  # minRows
    assert fs["files"] >= 1 and len(fs["filesDigest"]) == 64 and len(fs["labelsDigest"]) == 64
    fb = demo.summary["feedback"]
    assert fb["error"] is None and fb["idMismatches"] == 0 and fb["accepted"] >= fs["rowsLabelled"]
    # the lineage rebuilds the training set: the same window over the files on the claim (the state dir is
    # kept); later flushes and label files can only add rows of the window's last moments
    from onnxops.api.v1alpha1.trainingjob import Dataset
    from onnxops.trainer.from_serving import load_from_serving

    assert demo.state_dir is not None
    spec = demo.tj(demo.isvc["retrain"]["trainingJob"])["spec"]["dataset"]
    ds = Dataset.model_validate({**spec, "fromServing": {**spec["fromServing"], "sinkUri": fs["sinkUri"]}})
    os.environ["ONNXOPS_PVC_ROOT"] = str(demo.state_dir / "pvc")
    try:
        table = load_from_serving(ds, now=datetime.fromisoformat(fs["windowEnd"].replace("Z", "+00:00")))
    finally:
        del os.environ["ONNXOPS_PVC_ROOT"]
    lin = table.lineage
    assert lin is not None and (lin["windowStart"], lin["windowEnd"]) == (fs["windowStart"], fs["windowEnd"])
    assert fs["rowsCaptured"] <= lin["rowsCaptured"] <= fs["rowsCaptured"] * 1.2
    assert fs["rowsLabelled"] <= lin["rowsLabelled"] <= lin["rowsCaptured"]
    # labels come in the label type of the model that answered: after the shift only v1 serves, trained on
    # scikit-learn's iris (class indices)
    assert table.frame["species"].astype(str).isin(["0", "1", "2"]).all()
    # the captured features are the shifted world's: every flower grew (petal length +1.2 cm on 3.76)
    assert table.frame["petal length (cm)"].mean() > 3.76 + 1.0
    assert "served traffic of iris:" in demo.output and f"{fs['rowsCaptured']} captured" in demo.output


def test_nothing_is_left_running(demo: DemoRun) -> None:
    pids, ports = leftovers(demo.summary)
    assert demo.summary["processes"]["pids"]["operator"] and demo.summary["processes"]["pids"]["pods"]
    assert pids == [] and ports == []


def test_ctrl_c_mid_run_shuts_everything_down(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "onnxops", "demo", "--json-summary", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240
    state_dir = None
    try:
        for line in proc.stdout:  # pods run once the InferenceService serves: interrupt then
            lines.append(line)
            if "state " in line and state_dir is None:
                state_dir = line.rsplit("state ", 1)[1].strip()
            if "traffic:" in line or time.monotonic() > deadline:
                break
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        # The operator gets 15 s, pods their 30 s grace period: allow for a loaded machine.
        rest, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = "".join(lines) + rest
    assert proc.returncode == 130, output[-4000:]
    summary: dict[str, Any] = json.loads(out.read_text())
    assert summary["error"] == "interrupted" and summary["processes"]["pids"]["pods"], output[-4000:]
    assert leftovers(summary) == ([], [])
    assert state_dir is not None and not Path(state_dir).exists()  # the temporary state is removed
