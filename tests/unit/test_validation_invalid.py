"""Invalid manifests are refused with a cause naming the field, as the API server would refuse them.

Each case starts from a valid example manifest and breaks one thing. The OpenAPI part of the verdict is
cross-checked with an independent validator (the `jsonschema` package, on a JSON-Schema rendering of the
CRD schema); the CEL part with the rules evaluated by the `cel` package.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from onnxops.admission import causes as c
from onnxops.crdgen import build_crds
from onnxops.validate import schema_for, validate_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CRDS = build_crds()


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return doc


TJ, MV, IS = "trainingjob-iris.yaml", "modelversion-byo.yaml", "inferenceservice-iris.yaml"


def mutate(obj: dict[str, Any], path: str, value: Any) -> None:
    """Apply one case: `a.b|c.d` with a tuple of values sets several paths."""
    if "|" in path:
        for p, v in zip(path.split("|"), value, strict=True):
            mutate(obj, p, v)
    else:
        set_path(obj, path, value if value is DELETE else copy.deepcopy(value))


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set (or with value=DELETE remove) a dotted path; `[i]` indexes lists."""
    parts = path.replace("[", ".").replace("]", "").split(".")
    node: Any = obj
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    last = parts[-1]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


DELETE = object()

# (id, example, path, value, field expected in a cause, cause type, text expected in its message, CEL-only)
CASES: list[tuple[str, str, str, Any, str, str, str, bool]] = [
    ("tj-missing-model", TJ, "spec.model", DELETE, "spec.model", c.REQUIRED, "Required", False),
    (
        "tj-bad-dataset-scheme",
        TJ,
        "spec.dataset.uri",
        "ftp://host/iris.csv",
        "spec.dataset.uri",
        c.INVALID,
        "must be file://<path>, pvc://<claim>/<path>",
        True,
    ),
    (
        "tj-unknown-sklearn-dataset",
        TJ,
        "spec.dataset.uri",
        "sklearn://mnist",
        "spec.dataset.uri",
        c.INVALID,
        "sklearn://<iris|wine|breast_cancer|digits|diabetes>",
        True,
    ),
    (
        "tj-unknown-estimator",
        TJ,
        "spec.estimator.className",
        "CatBoostClassifier",
        "spec.estimator.className",
        c.NOT_SUPPORTED,
        "LogisticRegression",
        False,
    ),
    (
        "tj-test-fraction-1.5",
        TJ,
        "spec.evaluation.testFraction",
        1.5,
        "spec.evaluation.testFraction",
        c.INVALID,
        "testFraction must be in (0, 1)",
        True,
    ),
    (
        "tj-test-fraction-0",
        TJ,
        "spec.evaluation.testFraction",
        0,
        "spec.evaluation.testFraction",
        c.INVALID,
        "testFraction must be in (0, 1)",
        True,
    ),
    (
        "tj-test-fraction-1-int",
        TJ,
        "spec.evaluation.testFraction",
        1,
        "spec.evaluation.testFraction",
        c.INVALID,
        "testFraction must be in (0, 1)",
        True,
    ),
    (
        "tj-bad-gate-syntax",
        TJ,
        "spec.evaluation.gates",
        ["accuracy => 0.9"],
        "spec.evaluation.gates[0]",
        c.INVALID,
        "must read '<metric> <op> <number>'",
        True,
    ),
    (
        "tj-gate-unknown-metric",
        TJ,
        "spec.evaluation.gates",
        ["precision >= 0.9"],
        "spec.evaluation.gates[0]",
        c.INVALID,
        "with a metric among accuracy",
        True,
    ),
    (
        "tj-unknown-metric",
        TJ,
        "spec.evaluation.metrics",
        ["precision"],
        "spec.evaluation.metrics[0]",
        c.NOT_SUPPORTED,
        "accuracy",
        False,
    ),
    (
        "tj-bad-sha256",
        TJ,
        "spec.dataset.sha256",
        "abc123",
        "spec.dataset.sha256",
        c.INVALID,
        "must be a sha256 digest",
        True,
    ),
    (
        "tj-negative-backoff",
        TJ,
        "spec.backoffLimit",
        -1,
        "spec.backoffLimit",
        c.INVALID,
        "greater than or equal to 0",
        False,
    ),
    (
        "tj-backoff-string",
        TJ,
        "spec.backoffLimit",
        "2",
        "spec.backoffLimit",
        c.TYPE_INVALID,
        "integer",
        False,
    ),
    (
        "tj-bad-format",
        TJ,
        "spec.dataset.format",
        "xlsx",
        "spec.dataset.format",
        c.NOT_SUPPORTED,
        "parquet",
        False,
    ),
    (
        "tj-bad-model-name",
        TJ,
        "spec.model",
        "Iris_Model",
        "spec.model",
        c.INVALID,
        "must be a DNS label",
        True,
    ),
    (
        "tj-https-output",
        TJ,
        "spec.output",
        {"uri": "https://example.org/models"},
        "spec.output.uri",
        c.INVALID,
        "must be a URI starting with file://, pvc://<claim>/ or s3://<bucket>/",
        True,
    ),
    ("tj-suspend-string", TJ, "spec.suspend", "yes", "spec.suspend", c.TYPE_INVALID, "boolean", False),
    (
        "tj-bad-toleration",
        TJ,
        "spec.template",
        {"tolerations": [{"key": "gpu", "effect": "Sometimes"}]},
        "spec.template.tolerations[0].effect",
        c.NOT_SUPPORTED,
        "NoSchedule",
        False,
    ),
    (
        "tj-unknown-field",
        TJ,
        "spec.estimater",
        {"className": "SVC"},
        "spec.estimater",
        c.UNKNOWN,
        "unknown field",
        False,
    ),
    ("mv-version-0", MV, "spec.version", 0, "spec.version", c.INVALID, "greater than or equal to 1", False),
    ("mv-version-newest", MV, "spec.version", "newest", "spec.version", c.TYPE_INVALID, "integer", False),
    (
        "mv-bad-sha256",
        MV,
        "spec.artifact.sha256",
        "E3B0C442",
        "spec.artifact.sha256",
        c.INVALID,
        "must be a sha256 digest",
        True,
    ),
    (
        "mv-pickle-format",
        MV,
        "spec.artifact.format",
        "pickle",
        "spec.artifact.format",
        c.NOT_SUPPORTED,
        "onnx",
        False,
    ),
    (
        "mv-bad-datatype",
        MV,
        "spec.signature.inputs[0].datatype",
        "FLOAT",
        "spec.signature.inputs[0].datatype",
        c.NOT_SUPPORTED,
        "FP32",
        False,
    ),
    (
        "mv-no-inputs",
        MV,
        "spec.signature.inputs",
        [],
        "spec.signature.inputs",
        c.INVALID,
        "at least 1",
        False,
    ),
    ("mv-missing-artifact", MV, "spec.artifact", DELETE, "spec.artifact", c.REQUIRED, "Required", False),
    (
        "is-version-0",
        IS,
        "spec.version",
        0,
        "spec.version",
        c.INVALID,
        "integer >= 1, 'latest' or '@<alias>'",
        True,
    ),
    (
        "is-version-newest",
        IS,
        "spec.version",
        "newest",
        "spec.version",
        c.INVALID,
        "integer >= 1, 'latest' or '@<alias>'",
        True,
    ),
    (
        "is-decreasing-weights",
        IS,
        "spec.rollout.steps",
        [{"weight": 50}, {"weight": 20}],
        "spec.rollout.steps",
        c.INVALID,
        "strictly increasing",
        True,
    ),
    (
        "is-equal-weights",
        IS,
        "spec.rollout.steps",
        [{"weight": 30}, {"weight": 30}, {"weight": 60}],
        "spec.rollout.steps",
        c.INVALID,
        "strictly increasing",
        True,
    ),
    (
        "is-weight-over-100",
        IS,
        "spec.rollout.steps[1].weight",
        150,
        "spec.rollout.steps[1].weight",
        c.INVALID,
        "less than or equal to 100",
        False,
    ),
    (
        "is-weight-0",
        IS,
        "spec.rollout.steps[0].weight",
        0,
        "spec.rollout.steps[0].weight",
        c.INVALID,
        "greater than or equal to 1",
        False,
    ),
    (
        "is-too-many-steps",
        IS,
        "spec.rollout.steps",
        [{"weight": w} for w in range(1, 12)],
        "spec.rollout.steps",
        c.TOO_MANY,
        "at most 10",
        False,
    ),
    (
        "is-bad-strategy",
        IS,
        "spec.rollout.strategy",
        "BlueGreen",
        "spec.rollout.strategy",
        c.NOT_SUPPORTED,
        "Canary",
        False,
    ),
    (
        "is-bad-pause",
        IS,
        "spec.rollout.steps[0].pause",
        "1 minute",
        "spec.rollout.steps[0].pause",
        c.INVALID,
        "must be a duration such as 30s",
        True,
    ),
    (
        "is-retrain-without-template",
        IS,
        "spec.monitoring.onDrift|spec.retrain",
        ("Retrain", DELETE),
        "spec.retrain",
        c.REQUIRED,
        "spec.retrain",
        True,
    ),
    (
        "is-min-over-max",
        IS,
        "spec.autoscaling",
        {"minReplicas": 5, "maxReplicas": 2},
        "spec.autoscaling.minReplicas",
        c.INVALID,
        "minReplicas must be less than or equal to",
        True,
    ),
    (
        "is-min-over-default-max",
        IS,
        "spec.autoscaling",
        {"minReplicas": 5},
        "spec.autoscaling.minReplicas",
        c.INVALID,
        "minReplicas must be less than or equal to",
        True,
    ),
    (
        "is-bad-drift-method",
        IS,
        "spec.monitoring.drift.method",
        "kl",
        "spec.monitoring.drift.method",
        c.NOT_SUPPORTED,
        "wasserstein",
        False,
    ),
    (
        "is-negative-threshold",
        IS,
        "spec.monitoring.drift.threshold",
        -1,
        "spec.monitoring.drift.threshold",
        c.INVALID,
        "greater than 0",
        False,
    ),
    (
        "is-bad-on-drift",
        IS,
        "spec.monitoring.onDrift",
        "Panic",
        "spec.monitoring.onDrift",
        c.NOT_SUPPORTED,
        "Rollback",
        False,
    ),
    ("is-too-many-replicas", IS, "spec.replicas", 1001, "spec.replicas", c.INVALID, "1000", False),
    (
        "is-error-rate-over-1",
        IS,
        "spec.rollout.analysis.maxErrorRate",
        1.5,
        "spec.rollout.analysis.maxErrorRate",
        c.INVALID,
        "less than or equal to 1",
        False,
    ),
    (
        "is-prometheus-url-without-scheme",
        IS,
        "spec.monitoring.metricsSource",
        {"prometheusUrl": "prom:9090"},
        "spec.monitoring.metricsSource.prometheusUrl",
        c.INVALID,
        "must be an http:// or https:// URL",
        True,
    ),
    (
        "is-quantity-list",
        IS,
        "spec.resources.limits.cpu",
        [1],
        "spec.resources.limits[cpu]",
        c.TYPE_INVALID,
        "integer or a string",
        False,
    ),
    (
        "is-retrain-template-bad-estimator",
        IS,
        "spec.retrain.trainingJob.estimator.className",
        "Prophet",
        "spec.retrain.trainingJob.estimator.className",
        c.NOT_SUPPORTED,
        "LogisticRegression",
        False,
    ),
    ("is-model-null", IS, "spec.model", None, "spec.model", c.REQUIRED, "Required", False),
    # cross-field rules the reconcilers and the trainer would otherwise only discover later (CEL)
    (
        "is-retrain-other-model",
        IS,
        "spec.retrain.trainingJob.model",
        "wine",
        "spec.retrain.trainingJob.model",
        c.INVALID,
        "same model as spec.model",
        True,
    ),
    (
        "is-ks-threshold-not-a-level",
        IS,
        "spec.monitoring.drift.method|spec.monitoring.drift.threshold",
        ("ks", 2.0),
        "spec.monitoring.drift.threshold",
        c.INVALID,
        "significance level",
        True,
    ),
    (
        "tj-s3-without-target",
        TJ,
        "spec.dataset",
        {"uri": "s3://bucket/data.csv"},
        "spec.dataset.target",
        c.REQUIRED,
        "target (the label column) is required",
        True,
    ),
    (
        "tj-https-without-target",
        TJ,
        "spec.dataset",
        {"uri": "https://example.org/d.csv"},
        "spec.dataset.target",
        c.REQUIRED,
        "target (the label column) is required",
        True,
    ),
    (
        "tj-accuracy-gate-on-regressor",
        TJ,
        "spec.estimator.className|spec.evaluation",
        ("Ridge", {"gates": ["accuracy >= 0.9"]}),
        "spec.evaluation.gates",
        c.INVALID,
        "a regression estimator can only be gated on rmse, mae, r2",
        True,
    ),
    (
        "tj-classification-metric-on-regressor",
        TJ,
        "spec.estimator.className|spec.evaluation",
        ("Ridge", {"metrics": ["rmse", "accuracy"]}),
        "spec.evaluation.metrics",
        c.INVALID,
        "a regression estimator is evaluated with rmse, mae, r2 only",
        True,
    ),
    (
        "tj-rmse-gate-on-classifier",
        TJ,
        "spec.evaluation.gates",
        ["rmse <= 0.5"],
        "spec.evaluation.gates",
        c.INVALID,
        "a classification estimator can only be gated on accuracy",
        True,
    ),
    # a list-type set (JSON Schema has no equivalent here: counted with the Kubernetes-only cases)
    (
        "tj-duplicate-feature",
        TJ,
        "spec.dataset",
        {"uri": "file:///d.csv", "target": "y", "features": ["a", "a"]},
        "spec.dataset.features[1]",
        "FieldValueDuplicate",
        "Duplicate value",
        True,
    ),
    (
        "tj-target-among-features",
        TJ,
        "spec.dataset",
        {"uri": "file:///d.csv", "target": "y", "features": ["a", "y"]},
        "spec.dataset.features",
        c.INVALID,
        "features must not list the target column",
        True,
    ),
    (
        "tj-categorical-not-a-feature",
        TJ,
        "spec.dataset",
        {"uri": "file:///d.csv", "target": "y", "features": ["a", "b"], "categoricalFeatures": ["c"]},
        "spec.dataset.categoricalFeatures",
        c.INVALID,
        "must also be one of features",
        True,
    ),
    (
        "tj-classifier-on-diabetes",
        TJ,
        "spec.dataset.uri",
        "sklearn://diabetes",
        "spec.estimator.className",
        c.INVALID,
        "continuous target: use a regressor",
        True,
    ),
    # the shadow phase (spec.rollout.shadow)
    (
        "is-shadow-both-agreement-thresholds",
        IS,
        "spec.rollout.shadow",
        {"minAgreement": 0.9, "maxMeanAbsDiff": 0.5},
        "spec.rollout.shadow.maxMeanAbsDiff",
        c.INVALID,
        "minAgreement (classifiers) or maxMeanAbsDiff",
        True,
    ),
    (
        "is-shadow-sample-rate-zero",
        IS,
        "spec.rollout.shadow",
        {"sampleRate": 0},
        "spec.rollout.shadow.sampleRate",
        c.INVALID,
        "greater than 0",
        False,
    ),
]


def test_there_are_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("name", [IS, MV, TJ])
def test_the_bases_are_valid(name: str) -> None:
    assert validate_manifest(CRDS, example(name)) == []


@pytest.mark.parametrize(
    ("case_id", "base", "path", "value", "field", "type_", "text", "cel_only"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_invalid_manifest_is_refused_naming_the_field(
    case_id: str, base: str, path: str, value: Any, field: str, type_: str, text: str, cel_only: bool
) -> None:
    obj = example(base)
    mutate(obj, path, value)
    causes = validate_manifest(CRDS, obj)
    matching = [x for x in causes if x.field == field]
    assert matching, f"no cause for {field}: {causes}"
    assert any(x.type == type_ and text in x.message for x in matching), matching


def _to_jsonschema(node: Any) -> Any:
    """The CRD's OpenAPI v3 schema as JSON Schema (draft 7) for the independent check."""
    if not isinstance(node, dict):
        return node
    out = {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if "properties" in node:
        out["properties"] = {n: _to_jsonschema(s) for n, s in node["properties"].items()}
    if "items" in node:
        out["items"] = _to_jsonschema(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _to_jsonschema(node["additionalProperties"])
    elif "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.pop(bound, None) is True:
            out[bound] = out.pop(plain)
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    out.pop("default", None)
    return out


def _jsonschema_validator(kind: str) -> jsonschema.Draft7Validator:
    schema = _to_jsonschema(schema_for(CRDS[kind]))
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema, format_checker=None)


@pytest.mark.parametrize(
    ("case_id", "base", "path", "value", "field", "type_", "text", "cel_only"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_jsonschema_agrees_on_the_openapi_cases(
    case_id: str, base: str, path: str, value: Any, field: str, type_: str, text: str, cel_only: bool
) -> None:
    """Independent reference: jsonschema refuses every non-CEL case and accepts every CEL-only one."""
    valid = example(base)
    validator = _jsonschema_validator(valid["kind"])
    assert list(validator.iter_errors(valid)) == []
    obj = copy.deepcopy(valid)
    mutate(obj, path, value)
    errors = list(validator.iter_errors(obj))
    if cel_only:
        assert errors == [], "a CEL-only case must pass the OpenAPI schema"
    else:
        assert errors, f"jsonschema accepted {case_id}"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (
            "spec.estimator.className|spec.evaluation|spec.dataset.uri",
            ("Ridge", {"metrics": ["rmse", "r2"], "gates": ["rmse <= 60", "r2>=0.3"]}, "sklearn://diabetes"),
        ),
        ("spec.dataset", {"uri": "s3://bucket/data.csv", "target": "label"}),
        ("spec.evaluation", {"metrics": ["roc_auc"], "gates": ["log_loss < 0.5", "f1_macro >= 0.8"]}),
    ],
)
def test_what_fits_the_task_is_accepted(path: str, value: Any) -> None:
    obj = example(TJ)
    mutate(obj, path, value)
    assert validate_manifest(CRDS, obj) == []
