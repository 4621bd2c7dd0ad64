"""The demo's manifests (examples/demo/) are valid like every other example (schema, CEL, API models), and
they tell the demo's story: the files the demo writes are the files they read, the clock is quick, and
onDrift is Retrain with a retrain on the traffic the service captured, joined with the generator's labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxops.api.v1alpha1 import InferenceService, KubeModel, ModelVersion, TrainingJob
from onnxops.crdgen import build_crds
from onnxops.demo import data
from onnxops.demo.env import ARTIFACTS_CLAIM, DATASETS_DIR, LABELS_URI, TRAFFIC_URI
from onnxops.reconcile.rollout import parse_duration
from onnxops.validate import prune_and_default, schema_for, validate_manifest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"
MANIFESTS = sorted(DEMO.glob("*.yaml"))
CRDS = build_crds()
MODELS: dict[str, type[KubeModel]] = {
    "TrainingJob": TrainingJob,
    "ModelVersion": ModelVersion,
    "InferenceService": InferenceService,
}


def doc(name: str) -> dict[str, Any]:
    [d] = [d for d in yaml.safe_load_all((DEMO / name).read_text()) if d]
    return d


def test_the_demo_manifests_exist() -> None:
    assert [p.name for p in MANIFESTS] == [
        "inferenceservice-iris.yaml",
        "trainingjob-iris-skewed.yaml",
        "trainingjob-iris.yaml",
    ]


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_demo_manifest_validates_and_parses(path: Path) -> None:
    for d in yaml.safe_load_all(path.read_text()):
        assert validate_manifest(CRDS, d) == [], path.name
        stored = prune_and_default(schema_for(CRDS[d["kind"]]), d)
        assert MODELS[d["kind"]].model_validate(stored).to_dict()["spec"] == stored["spec"]
        assert "namespace" not in d["metadata"] and d["spec"]["model"] == "iris"


def test_the_data_sets_the_demo_writes_are_the_ones_the_manifests_read() -> None:
    base = f"pvc://{ARTIFACTS_CLAIM}/{DATASETS_DIR}/"
    skewed = doc("trainingjob-iris-skewed.yaml")["spec"]["dataset"]
    retrain = doc("inferenceservice-iris.yaml")["spec"]["retrain"]["trainingJob"]["dataset"]
    assert skewed["uri"] == base + data.SKEWED_CSV
    assert skewed["target"] == data.TARGET and tuple(skewed["features"]) == data.FEATURES
    # the retrain stages nothing: the service's captured traffic, labelled by the traffic generator
    assert "uri" not in retrain and retrain["target"] == data.TARGET
    fs = retrain["fromServing"]
    assert fs["service"] == doc("inferenceservice-iris.yaml")["metadata"]["name"]
    assert fs["labels"]["uri"] == LABELS_URI and fs["minRows"] >= 100
    logging = doc("inferenceservice-iris.yaml")["spec"]["logging"]
    # the feedback labels the serving pods write go to <sink>/_labels/, where the retrain reads them
    assert logging["enabled"] and logging.get("sampleRate", 1) == 1 and logging["sink"]["uri"] == TRAFFIC_URI
    assert LABELS_URI == TRAFFIC_URI + "_labels/"
    # the window looks back less than the retrain takes to be decided after the shift (failureLimit
    # drifting windows of interval each, the first one at most one interval after the shift): only
    # shifted traffic is trained on
    mon = doc("inferenceservice-iris.yaml")["spec"]["monitoring"]
    assert parse_duration(fs["window"]) <= mon["drift"]["failureLimit"] * parse_duration(mon["interval"]) - 2
    assert parse_duration(logging["flushInterval"]) < parse_duration(fs["window"])
    # the demo's skewed file is where the top-level example expects one too
    top = yaml.safe_load((DEMO.parent / "trainingjob-iris-skewed.yaml").read_text())
    assert top["spec"]["dataset"]["uri"] == skewed["uri"]


def test_the_inference_service_runs_on_a_quick_clock_and_retrains() -> None:
    spec = doc("inferenceservice-iris.yaml")["spec"]
    mon, drift = spec["monitoring"], spec["monitoring"]["drift"]
    assert mon["onDrift"] == "Retrain" and drift["method"] == "psi"
    assert parse_duration(mon["interval"]) <= 5 and parse_duration(drift["window"]) <= 10
    assert drift["failureLimit"] >= 2  # one noisy window never acts
    steps = spec["rollout"]["steps"]
    assert [s["weight"] for s in steps] == sorted({s["weight"] for s in steps}) and steps[-1]["weight"] < 100
    # the canary lasts long enough for its pod to start (the pause includes it), a window to fill and
    # failureLimit drifting windows: a bad canary is rolled back before it is promoted
    interval = parse_duration(mon["interval"])
    canary_s = sum(parse_duration(s["pause"]) for s in steps)
    assert canary_s >= 15 + (drift["failureLimit"] + 2) * interval
    # and, should it be promoted anyway, the previous version stays to compare with for a few windows
    assert parse_duration(spec["rollout"]["bakeTime"]) >= (drift["failureLimit"] + 2) * interval
    assert parse_duration(spec["retrain"]["minInterval"]) >= 300  # a single retrain within the demo


def test_the_demo_trains_v1_like_the_top_level_example() -> None:
    demo = doc("trainingjob-iris.yaml")
    top = yaml.safe_load((DEMO.parent / "trainingjob-iris.yaml").read_text())
    assert demo["metadata"]["name"] == top["metadata"]["name"]
    assert demo["spec"]["dataset"] == top["spec"]["dataset"]
    assert demo["spec"]["estimator"] == top["spec"]["estimator"]


def test_the_concept_drift_manifest_validates_and_retrains_on_feedback_labels() -> None:
    """`onnxops demo --scenario concept-drift`: live accuracy acts (Retrain), data drift only alerts; the
    retrain joins the captured traffic with the labels the serving pods write from the feedback."""
    [d] = [
        d
        for d in yaml.safe_load_all((DEMO / "concept-drift" / "inferenceservice-iris.yaml").read_text())
        if d
    ]
    assert validate_manifest(CRDS, d) == []
    stored = prune_and_default(schema_for(CRDS["InferenceService"]), d)
    assert InferenceService.model_validate(stored).to_dict()["spec"] == stored["spec"]
    spec = d["spec"]
    mon, perf = spec["monitoring"], spec["monitoring"]["performance"]
    assert mon["onDrift"] == "Alert" and perf["onConceptDrift"] == "Retrain" and perf["metric"] == "accuracy"
    sink = spec["logging"]["sink"]["uri"]
    fs = spec["retrain"]["trainingJob"]["dataset"]["fromServing"]
    assert fs["labels"]["uri"] == sink + "_labels/" and fs["service"] == d["metadata"]["name"]
    assert spec["retrain"]["trainingJob"]["dataset"]["target"] == data.TARGET
    # only traffic after the change is trained on: the decision takes failureLimit windows of interval
    assert parse_duration(fs["window"]) <= perf["failureLimit"] * parse_duration(mon["interval"])
