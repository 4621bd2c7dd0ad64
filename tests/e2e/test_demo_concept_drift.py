"""`onnxops demo --scenario concept-drift`, non-interactive, end to end (the local runtime, the real
operator, trainer and serving pods). The outcome is asserted from the objects' status as the demo read it
(its JSON summary), never from printed text: the inputs stayed in distribution (no data-drift verdict), v1's
live accuracy on the changed labels fell below its held-out accuracy (the trainer's scikit-learn metric),
the operator retrained on the captured traffic with the new labels, and the retrained version, promoted,
is live-accurate on them. Then that nothing it started is left running."""

from __future__ import annotations

import pytest
from _demo_run import DemoRun, leftovers, run_demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_demo(tmp_path_factory.mktemp("concept"), "--scenario", "concept-drift")


def test_concept_drift_retrains_on_the_new_labels_and_promotes_the_new_version(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.output[-6000:]
    s = demo.summary
    assert s["ok"] and s["scenario"] == "concept-drift"
    assert [st["step"] for st in s["steps"]] == [1, 2, 3, 4] and all(st["ok"] for st in s["steps"])
    # the inputs never drifted: no evaluation called data drift, and none acted on it
    assert s["driftEvaluations"] and all(e["drift"]["verdict"] != "Drift" for e in s["driftEvaluations"])
    assert s["dataDriftAtRetrain"] == "NoDrift"
    # the retrain was a concept-drift decision and trained on the captured traffic with the feedback labels
    isvc = demo.isvc
    assert isvc["retrain"]["reason"] == "ConceptDrift" and isvc["retrain"]["trainingJob"] == "iris-retrain-1"
    assert demo.tj("iris-retrain-1")["status"]["phase"] == "Succeeded"
    v1, v2 = demo.mv("iris-v1"), demo.mv("iris-v2")
    served = v2["spec"]["lineage"]["dataset"]["fromServing"]
    assert served["service"] == "iris" and served["rowsLabelled"] >= 200
    # promoted
    assert isvc["stableVersion"] == 2 and isvc.get("canaryVersion") is None
    assert [h["action"] for h in isvc["history"] if h["version"] == 2][-1] == "Promoted"
    # live accuracy: v1 degraded on the new labels (reference: its held-out accuracy from the trainer),
    # v2 recovered on the same labels
    live = s["liveAccuracy"]
    held_v1, held_v2 = v1["spec"]["metrics"]["accuracy"], v2["spec"]["metrics"]["accuracy"]
    assert live["v1BeforeChange"] >= held_v1 * 0.9
    assert live["v1AfterChange"] < held_v1 * 0.9
    assert live["v2AfterChange"] >= held_v2 * 0.9 and live["v2AfterChange"] > live["v1AfterChange"] + 0.1
    perf = isvc["performance"]
    assert perf["version"] == 2 and perf["versions"]["2"]["verdict"] == "Healthy"
    fb = s["feedback"]
    assert fb["accepted"] > 1000 and fb["error"] is None


def test_nothing_is_left_running(demo: DemoRun) -> None:
    pids, ports = leftovers(demo.summary)
    assert pids == [] and ports == [], (pids, ports)
