"""`onnxops gen-crds`: the committed CRDs are current, `--check` catches stale ones, and the generated CRDs
carry what `kubectl` users and the API server need (names, columns, descriptions, defaults, CEL rules)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxops import crdgen
from onnxops.crdgen import build_crds, main
from onnxops.validate import schema_for

ROOT = Path(__file__).resolve().parents[2]
FILES = [
    "onnxops.dev_inferenceservices.yaml",
    "onnxops.dev_models.yaml",
    "onnxops.dev_modelversions.yaml",
    "onnxops.dev_trainingjobs.yaml",
]
CRDS = build_crds()


def walk(schema: dict[str, Any], path: str = ""):  # type: ignore[no-untyped-def]
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def node(kind: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = dict(walk(schema_for(CRDS[kind])))[path]
    return found


# --- generation and --check ------------------------------------------------------------------------------


def test_check_passes_on_the_committed_crds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert sorted(p.name for p in (ROOT / "crds").glob("*.yaml")) == FILES
    for name in FILES:  # the chart ships an identical copy
        assert (ROOT / "crds" / name).read_bytes() == (ROOT / "charts/onnxops/crds" / name).read_bytes()


def test_check_fails_on_a_modified_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crds"
    shutil.copytree(ROOT / "crds", out)
    assert main(["--check", "--out-dir", str(out)]) == 0
    target = out / "onnxops.dev_modelversions.yaml"
    target.write_text(target.read_text().replace("minimum: 1", "minimum: 0", 1))
    capsys.readouterr()
    assert main(["--check", "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "onnxops.dev_modelversions.yaml: stale" in err
    assert "inferenceservices" not in err


def test_check_fails_on_missing_and_extra_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crds"
    shutil.copytree(ROOT / "crds", out)
    (out / "onnxops.dev_trainingjobs.yaml").unlink()
    (out / "onnxops.dev_pipelines.yaml").write_text("{}\n")
    assert main(["--check", "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "onnxops.dev_trainingjobs.yaml: missing" in err
    assert "onnxops.dev_pipelines.yaml: no longer generated" in err


def test_generation_is_byte_stable_and_matches_the_committed_files(tmp_path: Path) -> None:
    assert main(["--out-dir", str(tmp_path / "a")]) == 0
    assert main(["--out-dir", str(tmp_path / "b")]) == 0
    for name in FILES:
        a = (tmp_path / "a" / name).read_bytes()
        assert a == (tmp_path / "b" / name).read_bytes()
        assert a == (ROOT / "crds" / name).read_bytes()
    assert main(["--check", "--out-dir", str(tmp_path / "a")]) == 0


def test_unsupported_union_is_an_error() -> None:
    with pytest.raises(crdgen.SchemaError, match="union"):
        crdgen.convert({"anyOf": [{"type": "integer"}, {"type": "string"}]}, {}, "spec.x")
    with pytest.raises(crdgen.SchemaError, match="unsupported schema key"):
        crdgen.convert({"type": "object", "patternProperties": {}}, {}, "spec.y")


# --- contents --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "plural", "short"),
    [
        ("TrainingJob", "trainingjobs", "tj"),
        ("ModelVersion", "modelversions", "mv"),
        ("InferenceService", "inferenceservices", "oisvc"),
    ],
)
def test_names(kind: str, plural: str, short: str) -> None:
    crd = yaml.safe_load((ROOT / "crds" / f"onnxops.dev_{plural}.yaml").read_text())
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.onnxops.dev"
    spec = crd["spec"]
    assert spec["group"] == "onnxops.dev" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "shortNames": [short],
        "categories": ["onnxops"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


READY = '.status.conditions[?(@.type=="Ready")].status'


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        (
            "TrainingJob",
            [
                ("Model", ".spec.model"),
                ("Estimator", ".spec.estimator.className"),
                ("Phase", ".status.phase"),
                ("Version", ".status.modelVersion"),
                ("Metric", ".status.primaryMetric"),
                ("Age", ".metadata.creationTimestamp"),
            ],
        ),
        (
            "ModelVersion",
            [
                ("Model", ".spec.model"),
                ("Version", ".spec.version"),
                ("Ready", READY),
                ("Phase", ".status.phase"),
                ("Approved", ".status.approved"),
                ("Archived", ".status.archived"),
                ("Rejected", ".status.rejected"),
                ("Metric", ".status.primaryMetric"),
                ("Age", ".metadata.creationTimestamp"),
                ("Served-By", ".status.servedBy"),
                ("Reason", ".status.rejectedReason"),
                ("Aliases", ".status.aliases"),
                ("Approved-By", ".status.approvedBy"),
            ],
        ),
        (
            "Model",
            [
                ("Approval", ".spec.releasePolicy.requireApproval"),
                ("Latest", ".status.latestVersion"),
                ("Approved", ".status.approvedVersions"),
                ("Aliases", ".spec.aliases"),
                ("Ready", READY),
                ("Age", ".metadata.creationTimestamp"),
                ("Archived", ".status.archivedVersions"),
                ("Message", ".status.message"),
            ],
        ),
        (
            "InferenceService",
            [
                ("Model", ".spec.model"),
                ("Stable", ".status.stableVersion"),
                ("Canary", ".status.canaryVersion"),
                ("Weight", ".status.canaryWeight"),
                ("Effective", ".status.effectiveCanaryWeight"),
                ("Status", ".status.phase"),
                ("Reason", ".status.reason"),
                ("Ready", READY),
                ("Paused", '.status.conditions[?(@.type=="Paused")].reason'),
                ("Drift", ".status.drift.score"),
                ("Live", ".status.performance.value"),
                ("Age", ".metadata.creationTimestamp"),
                ("URL", ".status.url"),
                ("Message", ".status.message"),
            ],
        ),
    ],
)
def test_printer_columns_point_at_real_fields(kind: str, columns: list[tuple[str, str]]) -> None:
    got = CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(col["name"], col["jsonPath"]) for col in got] == columns
    paths = dict(walk(schema_for(CRDS[kind])))
    for col in got:
        if col["jsonPath"].startswith(".metadata"):
            assert col["type"] == "date"
            continue
        field = col["jsonPath"].split("[?")[0].lstrip(".")
        assert field in paths, col
        schema_type = paths[field]["type"]
        expected = {"array": "string", "object": "string"}.get(schema_type, schema_type)  # printed as JSON
        assert col["type"] == expected, col


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_top_level_shape(kind: str) -> None:
    schema = schema_for(CRDS[kind])
    assert schema["type"] == "object" and schema["required"] == ["spec"]
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["description"]


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_spec_and_status_field_is_described(kind: str) -> None:
    """`kubectl explain` shows these."""
    missing = [
        p
        for p, s in walk(schema_for(CRDS[kind]))
        if p.count(".") >= 1 and not p.endswith(("[]", "{}")) and not s.get("description")
    ]
    assert missing == []


def test_no_pydantic_leftovers_in_the_yaml() -> None:
    for name in FILES:
        text = (ROOT / "crds" / name).read_text()
        for key in (
            "$ref",
            "$defs",
            "title:",
            "const:",
            "anyOf:\n        - type: 'null'",
            "additionalProperties: false",
            "additionalProperties: true",
            "examples:",
        ):
            assert key not in text, (name, key)


def test_optionals_are_nullable_and_required_fields_are_required() -> None:
    assert node("TrainingJob", "spec.evaluation")["nullable"] is True
    assert node("TrainingJob", "spec")["required"] == ["model", "dataset", "estimator"]
    assert "nullable" not in node("TrainingJob", "spec.model")
    assert node("ModelVersion", "spec")["required"] == ["model", "version", "artifact"]
    assert node("InferenceService", "spec")["required"] == ["model"]


RULES_KEY = "x-kubernetes-validations"


def test_no_rule_message_shows_a_regular_expression() -> None:
    for kind, crd in CRDS.items():
        text = yaml.safe_dump(crd)
        for doc in yaml.safe_load_all(text):
            for msg in _messages(doc):
                assert not any(t in msg for t in ("^(", ")$", "[a-z", "\\S", "+$")), (kind, msg)


def _messages(node: object) -> list[str]:
    if isinstance(node, dict):
        out = [str(r.get("message", "")) for r in node.get(RULES_KEY, [])]
        for v in node.values():
            out += _messages(v)
        return out
    if isinstance(node, list):
        return [m for v in node for m in _messages(v)]
    return []


def test_enums_bounds_patterns_and_defaults() -> None:
    assert node("InferenceService", "spec.monitoring.drift.method")["enum"] == [
        "psi",
        "js",
        "ks",
        "wasserstein",
        "chi2",
    ]
    assert node("InferenceService", "spec.monitoring.onDrift")["enum"] == ["Rollback", "Retrain", "Alert"]
    assert node("InferenceService", "spec.monitoring.onDrift")["default"] == "Rollback"
    weight = node("InferenceService", "spec.rollout.steps[].weight")
    assert (weight["minimum"], weight["maximum"], weight["type"]) == (1, 100, "integer")
    threshold = node("InferenceService", "spec.monitoring.drift.threshold")
    assert (threshold["minimum"], threshold["exclusiveMinimum"]) == (0, True)
    assert node("InferenceService", "spec.rollout.steps")["default"] == [
        {"weight": 20, "pause": "30s"},
        {"weight": 50, "pause": "30s"},
    ]
    assert node("InferenceService", "spec.rollout.steps")["maxItems"] == 10
    assert node("ModelVersion", "spec.artifact.format")["enum"] == ["onnx"]
    assert node("ModelVersion", "spec.version")["minimum"] == 1
    # a pattern is checked by a CEL rule with a plain message (a `pattern` error shows the regex)
    sha = node("ModelVersion", "spec.artifact.sha256")
    assert "pattern" not in sha and sha["maxLength"] == 64
    assert {
        "rule": "self.matches(r'^[a-f0-9]{64}$')",
        "message": "must be a sha256 digest: 64 lowercase hexadecimal characters",
    } in sha[RULES_KEY]
    assert "LogisticRegression" in node("TrainingJob", "spec.estimator.className")["enum"]


def test_int_or_string_fields() -> None:
    version = node("InferenceService", "spec.version")
    assert version["x-kubernetes-int-or-string"] is True and "type" not in version
    assert version["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert version["default"] == "latest"
    cpu = node("InferenceService", "spec.resources.limits{}")
    assert cpu["x-kubernetes-int-or-string"] is True and "type" not in cpu


def test_maps_use_additional_properties() -> None:
    metrics = node("TrainingJob", "status.metrics")
    assert metrics["type"] == "object" and metrics["additionalProperties"] == {"type": "number"}
    assert "properties" not in metrics


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_conditions_are_a_list_map_keyed_by_type(kind: str) -> None:
    conditions = node(kind, "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason", "lastTransitionTime"}
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


def test_cel_rules() -> None:
    for field in ("model", "version", "artifact"):
        rules = node("ModelVersion", f"spec.{field}")["x-kubernetes-validations"]
        assert rules[0] == {"rule": "self == oldSelf", "message": f"{field} is immutable"}
    whole = node("ModelVersion", "spec")["x-kubernetes-validations"]
    assert sorted(r["fieldPath"] for r in whole) == [
        ".champion",
        ".fairness",
        ".lineage",
        ".metrics",
        ".profile",
        ".signature",
        ".slices",
    ]
    assert all("oldSelf" in r["rule"] for r in whole)
    spec_rules = node("InferenceService", "spec")["x-kubernetes-validations"]
    assert [r.get("fieldPath") for r in spec_rules] == [
        ".retrain",
        ".autoscaling.minReplicas",
        ".retrain.trainingJob.model",
        ".monitoring.performance.metric",
        ".monitoring.performance.metric",
        ".logging",
        ".retrain",
    ]
    # the TrainingJob spec's cross-field rules travel with the retrain template; its transition rule
    # (spec.model immutable) belongs to the TrainingJob object only
    tj_rules = node("TrainingJob", "spec")["x-kubernetes-validations"]
    transition = [r for r in tj_rules if "oldSelf" in r["rule"]]
    assert [r["fieldPath"] for r in transition] == [".model"]
    template_rules = node("InferenceService", "spec.retrain.trainingJob")["x-kubernetes-validations"]
    assert template_rules == [r for r in tj_rules if r not in transition]
    assert (
        "strictly increasing"
        in node("InferenceService", "spec.rollout.steps")["x-kubernetes-validations"][0]["message"]
    )
    assert node("TrainingJob", "spec.evaluation.testFraction")["x-kubernetes-validations"]
