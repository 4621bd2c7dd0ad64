"""The pydantic API models agree with the generated CRDs and with scikit-learn."""

from __future__ import annotations

import re
from typing import Any

import lightgbm
import pytest
import xgboost
from sklearn.base import is_classifier, is_regressor
from sklearn.utils import all_estimators

from onnxops.api.v1alpha1 import InferenceService, InferenceServiceSpec, ModelVersion, TrainingJob
from onnxops.api.v1alpha1.inferenceservice import MAX_STEPS, RollbackRecord, strictly_increasing_rule
from onnxops.api.v1alpha1.trainingjob import CLASSIFIERS, GATE_PATTERN, METRICS, REGRESSORS
from onnxops.crdgen import build_crds
from onnxops.validate import prune_and_default, schema_for, validate

CRDS = build_crds()
SKLEARN = {
    **dict(all_estimators()),
    "XGBClassifier": xgboost.XGBClassifier,
    "XGBRegressor": xgboost.XGBRegressor,
    "LGBMClassifier": lightgbm.LGBMClassifier,
    "LGBMRegressor": lightgbm.LGBMRegressor,
}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_allow_listed_classifiers_are_sklearn_api_classifiers(name: str) -> None:
    assert name in SKLEARN and is_classifier(SKLEARN[name]())


@pytest.mark.parametrize("name", REGRESSORS)
def test_allow_listed_regressors_are_sklearn_api_regressors(name: str) -> None:
    assert name in SKLEARN and is_regressor(SKLEARN[name]())


@pytest.mark.parametrize(
    ("gate", "ok"),
    [
        ("accuracy >= 0.9", True),
        ("rmse<0.5", True),
        ("r2 > -1", True),
        ("f1_macro <= 1", True),
        ("accuracy => 0.9", False),
        ("accuracy >= ", False),
        ("precision >= 0.9", False),
        ("accuracy == 1", False),
    ],
)
def test_gate_pattern(gate: str, ok: bool) -> None:
    assert bool(re.match(GATE_PATTERN, gate)) is ok
    assert all(m in GATE_PATTERN for m in METRICS)


def _minimal(kind: str) -> dict[str, Any]:
    specs: dict[str, dict[str, Any]] = {
        "TrainingJob": {
            "model": "iris",
            "dataset": {"uri": "sklearn://iris"},
            "estimator": {"className": "SVC"},
            "evaluation": {},
        },
        "ModelVersion": {
            "model": "iris",
            "version": 1,
            "artifact": {"uri": "file:///m/model.onnx", "sha256": "a" * 64},
        },
        "InferenceService": {
            "model": "iris",
            "rollout": {"analysis": {}},
            "autoscaling": {},
            "monitoring": {"drift": {}},
        },
    }
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x"},
        "spec": specs[kind],
    }


@pytest.mark.parametrize("model", [TrainingJob, ModelVersion, InferenceService])
def test_crd_defaults_equal_the_model_defaults(model: Any) -> None:
    """The API server (CRD defaults) and the operator (pydantic defaults) fill in the same values."""
    obj = _minimal(model.__name__)
    stored = prune_and_default(schema_for(CRDS[model.__name__]), obj)
    parsed = model.model_validate(obj).to_dict()
    assert stored["spec"] == parsed["spec"]
    assert validate(schema_for(CRDS[model.__name__]), stored) == []


def test_rollback_record_uses_from_and_to_on_the_wire() -> None:
    record = RollbackRecord.model_validate(
        {"from": 2, "to": 1, "reason": "DriftDetected", "at": "2026-01-01T00:00:00Z", "generation": 3}
    )
    assert (record.from_version, record.to_version) == (2, 1)
    assert {"from", "to"} <= set(record.to_dict())


def test_strictly_increasing_rule_covers_every_allowed_step() -> None:
    rule = strictly_increasing_rule()
    assert f"self[{MAX_STEPS - 2}].weight < self[{MAX_STEPS - 1}].weight" in rule
    assert f"self[{MAX_STEPS - 1}].weight < self[{MAX_STEPS}]" not in rule


def test_version_accepts_int_or_latest() -> None:
    assert InferenceServiceSpec.model_validate({"model": "iris", "version": 3}).version == 3
    assert InferenceServiceSpec.model_validate({"model": "iris"}).version == "latest"
