"""spec.monitoring.performance at admission: a metric the model's task cannot have, thresholds that do not
fit the metric, Retrain without a template are refused naming the field (CEL, as the API server runs it)."""

from __future__ import annotations

from typing import Any

import pytest
from test_validation_invalid import CRDS, IS, example, mutate

from onnxops.validate import validate_manifest

PERF = "spec.monitoring.performance"


@pytest.mark.parametrize(
    ("path", "value", "field", "text"),
    [
        (PERF, {"metric": "rmse"}, f"{PERF}.metric", "the model is a classifier"),
        (PERF, {"metric": "mae", "max": 3}, f"{PERF}.metric", "use accuracy or f1"),
        (
            "spec.retrain.trainingJob.estimator|spec.retrain.trainingJob.evaluation|spec.retrain.trainingJob.dataset"
            f"|{PERF}",
            (
                {"className": "Ridge"},
                {"gates": ["rmse <= 60"]},
                {"uri": "sklearn://diabetes"},
                {"metric": "accuracy"},
            ),
            f"{PERF}.metric",
            "the model is a regressor",
        ),
        (
            PERF,
            {"metric": "accuracy", "min": 0.8, "maxDegradation": 0.1},
            f"{PERF}.maxDegradation",
            "at most one of min, max and maxDegradation",
        ),
        (PERF, {"metric": "accuracy", "max": 0.2}, f"{PERF}.max", "max applies to mae and rmse"),
        (PERF, {"metric": "accuracy", "min": 1.5}, f"{PERF}.min", "1"),
        (PERF, {"metric": "auc"}, f"{PERF}.metric", "accuracy"),
        (PERF, {"minLabels": 0}, f"{PERF}.minLabels", "1"),
        (
            f"{PERF}|spec.retrain",
            ({"onConceptDrift": "Retrain"}, None),
            "spec.retrain",
            "onConceptDrift is Retrain",
        ),
    ],
    ids=[
        "rmse-on-classifier",
        "mae-on-classifier",
        "accuracy-on-regressor",
        "min-and-degradation",
        "max-on-accuracy",
        "min-above-1",
        "unknown-metric",
        "zero-min-labels",
        "retrain-without-template",
    ],
)
def test_bad_performance_spec_is_refused_naming_the_field(
    path: str, value: Any, field: str, text: str
) -> None:
    obj = example(IS)
    if path.endswith("spec.retrain"):
        obj["spec"].pop("retrain")
        path, value = PERF, value[0]
    mutate(obj, path, value)
    errors = validate_manifest(CRDS, obj)
    assert errors, "accepted"
    shown = "\n".join(map(str, errors))
    assert field in shown and text in shown, shown


@pytest.mark.parametrize(
    "perf",
    [
        {"metric": "f1", "min": 0.8, "minLabels": 50, "window": "30m", "onConceptDrift": "Retrain"},
        {"metric": "accuracy", "maxDegradation": 0.05},
        {},
    ],
)
def test_what_fits_is_accepted(perf: dict[str, Any]) -> None:
    obj = example(IS)
    mutate(obj, PERF, perf)
    assert validate_manifest(CRDS, obj) == []


def test_regressor_metrics_fit_a_regressor_and_are_unchecked_without_a_template() -> None:
    obj = example(IS)
    mutate(
        obj,
        "spec.retrain.trainingJob.estimator|spec.retrain.trainingJob.evaluation"
        "|spec.retrain.trainingJob.dataset|" + PERF,
        (
            {"className": "Ridge"},
            {"gates": ["rmse <= 60"]},
            {"uri": "sklearn://diabetes"},
            {"metric": "rmse", "max": 60},
        ),
    )
    assert validate_manifest(CRDS, obj) == []
    obj = example(IS)
    obj["spec"].pop("retrain")
    obj["spec"]["monitoring"]["onDrift"] = "Alert"
    mutate(obj, PERF, {"metric": "rmse"})  # the task is not visible: the operator reports it in status
    assert validate_manifest(CRDS, obj) == []
