"""Every manifest under examples/ is valid (schema and CEL), parses with the API models, and tells the
story the README promises (iris: training -> serving with canary and drift rollback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxops.api.v1alpha1 import InferenceService, KubeModel, Model, ModelVersion, TrainingJob
from onnxops.crdgen import build_crds
from onnxops.validate import prune_and_default, schema_for, validate_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANIFESTS = sorted(EXAMPLES.glob("*.yaml"))
CRDS = build_crds()
MODELS: dict[str, type[KubeModel]] = {
    "TrainingJob": TrainingJob,
    "ModelVersion": ModelVersion,
    "InferenceService": InferenceService,
    "Model": Model,
}


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_name(name: str) -> dict[str, Any]:
    [doc] = docs(EXAMPLES / name)
    return doc


def test_the_expected_examples_exist() -> None:
    assert [p.name for p in MANIFESTS] == [
        "inferenceservice-iris.yaml",
        "model-iris.yaml",
        "modelversion-byo.yaml",
        "trainingjob-iris-skewed.yaml",
        "trainingjob-iris.yaml",
    ]
    readme = (EXAMPLES / "README.md").read_text()
    for p in MANIFESTS:
        assert p.name in readme


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_example_validates_against_the_crds(path: Path) -> None:
    for doc in docs(path):
        assert validate_manifest(CRDS, doc) == [], path.name


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_example_parses_with_the_api_models(path: Path) -> None:
    """What the API server stores (pruned, defaulted) is what the operator's models read."""
    for doc in docs(path):
        stored = prune_and_default(schema_for(CRDS[doc["kind"]]), doc)
        model = MODELS[doc["kind"]].model_validate(stored)
        assert model.to_dict()["spec"] == stored["spec"]


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_example_uses_model_iris_in_the_default_namespace(path: Path) -> None:
    for doc in docs(path):
        assert "namespace" not in doc["metadata"]
        # a Model's name is the model name
        assert (doc["metadata"]["name"] if doc["kind"] == "Model" else doc["spec"]["model"]) == "iris"


def test_inference_service_does_canary_and_drift_rollback() -> None:
    spec = by_name("inferenceservice-iris.yaml")["spec"]
    assert spec["version"] == "latest"
    assert spec["rollout"]["strategy"] == "Canary"
    weights = [s["weight"] for s in spec["rollout"]["steps"]]
    assert weights == sorted(set(weights)) and weights[-1] < 100
    assert spec["rollout"]["analysis"]
    assert spec["monitoring"]["drift"]["method"] == "psi"
    assert spec["monitoring"]["onDrift"] in ("Rollback", "Retrain")
    assert spec["retrain"]["trainingJob"]["model"] == "iris"


def test_inference_service_with_retrain_is_valid_too() -> None:
    doc = by_name("inferenceservice-iris.yaml")
    doc["spec"]["monitoring"]["onDrift"] = "Retrain"
    assert validate_manifest(CRDS, doc) == []


def test_skewed_training_is_the_same_model_on_other_data() -> None:
    base, skewed = by_name("trainingjob-iris.yaml"), by_name("trainingjob-iris-skewed.yaml")
    assert base["metadata"]["name"] != skewed["metadata"]["name"]
    assert base["spec"]["model"] == skewed["spec"]["model"]
    assert base["spec"]["dataset"]["uri"] != skewed["spec"]["dataset"]["uri"]
    assert skewed["spec"]["dataset"]["target"] == "species"


def test_byo_model_version_follows_the_naming_convention() -> None:
    doc = by_name("modelversion-byo.yaml")
    assert doc["metadata"]["name"] == f"{doc['spec']['model']}-v{doc['spec']['version']}"
    assert doc["spec"]["artifact"]["format"] == "onnx"
