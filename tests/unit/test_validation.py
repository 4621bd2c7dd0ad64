"""onnxops.validate: pruning, defaulting, update (transition) rules, API-server behaviours, the CLI."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from onnxops.admission import causes as c
from onnxops.admission.celrules import to_cel
from onnxops.crdgen import build_crds
from onnxops.validate import (
    CEL_SKIPPED,
    Cause,
    load_crds,
    main,
    prune_and_default,
    schema_for,
    unknown_fields,
    validate,
    validate_manifest,
)

ROOT = Path(__file__).resolve().parents[2]
CRDS = build_crds()
IS_SCHEMA = schema_for(CRDS["InferenceService"])
MV_SCHEMA = schema_for(CRDS["ModelVersion"])
TJ_SCHEMA = schema_for(CRDS["TrainingJob"])


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return doc


def isvc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "x"},
        "spec": {"model": "iris", **spec},
    }


# --- pruning and defaulting ----------------------------------------------------------------------------


def test_prune_drops_unknown_fields_but_keeps_metadata_and_preserved_params() -> None:
    obj = example("trainingjob-iris.yaml")
    obj["metadata"]["annotations"] = {"anything": "goes"}
    obj["spec"]["typo"] = 1
    obj["spec"]["dataset"]["extra"] = {"a": 1}
    obj["spec"]["estimator"]["params"]["nested"] = {"deep": [1, 2]}
    out = prune_and_default(TJ_SCHEMA, obj)
    assert "typo" not in out["spec"]
    assert "extra" not in out["spec"]["dataset"]
    assert out["spec"]["estimator"]["params"] == {"max_iter": 500, "nested": {"deep": [1, 2]}}
    assert out["metadata"] == obj["metadata"]
    assert sorted(unknown_fields(TJ_SCHEMA, obj)) == ["spec.dataset.extra", "spec.typo"]


def test_prune_does_not_modify_its_input() -> None:
    obj = isvc(rollout={}, junk=1)
    before = copy.deepcopy(obj)
    prune_and_default(IS_SCHEMA, obj)
    assert obj == before


def test_defaults_apply_only_where_the_parent_exists() -> None:
    out = prune_and_default(IS_SCHEMA, isvc())
    assert out["spec"] == {"model": "iris", "version": "latest", "replicas": 1}
    out = prune_and_default(IS_SCHEMA, isvc(rollout={}, monitoring={"drift": {}}))
    assert out["spec"]["rollout"]["steps"] == [{"weight": 20, "pause": "30s"}, {"weight": 50, "pause": "30s"}]
    assert out["spec"]["rollout"]["strategy"] == "Canary"
    assert out["spec"]["monitoring"]["onDrift"] == "Rollback"
    assert out["spec"]["monitoring"]["drift"]["method"] == "psi"
    # the SLO analysis is on by default (issue 22): a rollout promotes only on evidence
    assert out["spec"]["rollout"]["analysis"] == {
        "enabled": True,
        "maxErrorRate": 0.01,
        "maxLatencyP99Ms": 500,
        "minRequests": 50,
        "failureLimit": 2,
        "onInconclusive": "Pause",
        "inconclusiveLimit": 10,
    }
    out = prune_and_default(IS_SCHEMA, isvc(rollout={"analysis": {"enabled": False}}))
    assert out["spec"]["rollout"]["analysis"]["enabled"] is False
    assert validate(IS_SCHEMA, out) == []


def test_null_in_a_non_nullable_field_is_pruned_then_defaulted() -> None:
    out = prune_and_default(IS_SCHEMA, isvc(replicas=None, autoscaling=None))
    assert out["spec"]["replicas"] == 1  # not nullable: dropped, default applies
    assert out["spec"]["autoscaling"] is None  # nullable: kept
    assert validate(IS_SCHEMA, out) == []


def test_defaults_inside_list_items() -> None:
    out = prune_and_default(MV_SCHEMA, example("modelversion-byo.yaml"))
    assert out["spec"]["artifact"]["format"] == "onnx"
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Verified",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    }
    out = prune_and_default(MV_SCHEMA, {**example("modelversion-byo.yaml"), "status": status})
    assert out["status"]["conditions"][0]["message"] == ""


# --- update: transition rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("artifact", "sha256"), "0" * 64, "spec.artifact"),
        (("artifact", "uri"), "s3://bucket/other/model.onnx", "spec.artifact"),
        (("artifact", "sizeBytes"), 1234, "spec.artifact"),
        (("version",), 101, "spec.version"),
        (("model",), "iris2", "spec.model"),
    ],
)
def test_immutable_fields_refuse_a_change_on_update(path: tuple[str, ...], value: Any, field: str) -> None:
    old = example("modelversion-byo.yaml")
    new = copy.deepcopy(old)
    node = new["spec"]
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    assert validate_manifest(CRDS, new) == []  # a create: no oldSelf, the rule does not run
    causes = validate_manifest(CRDS, new, old)
    assert [x.field for x in causes] == [field]
    assert causes[0].message == f"{field.split('.')[-1]} is immutable"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("metrics", {"accuracy": 0.5}),
        ("lineage", {"codeVersion": "2"}),
        (
            "signature",
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
            },
        ),
        ("profile", {"uri": "s3://bucket/other/profile.json", "sha256": "1" * 64}),
    ],
)
def test_every_spec_field_is_immutable(field: str, value: Any) -> None:
    """Issue 14: a ModelVersion is registered once; signature, profile, metrics and lineage are as immutable
    as the artifact (changed, added or removed), each refused with a cause naming the field."""
    old = example("modelversion-byo.yaml")
    changed = copy.deepcopy(old)
    changed["spec"][field] = value
    removed = copy.deepcopy(old)
    removed["spec"].pop(field, None)
    for new, before in ((changed, old), (old, removed), (removed, old)):
        if new == before:
            continue
        causes = validate_manifest(CRDS, new, before)
        assert [x.field for x in causes] == [f"spec.{field}"], (new["spec"].get(field), causes)
        assert causes[0].message.startswith(f"{field} is immutable: a ModelVersion never changes")


def test_unchanged_spec_update_is_fine() -> None:
    """Status writes and metadata edits (labels) stay allowed: only the spec is frozen."""
    old = example("modelversion-byo.yaml")
    new = copy.deepcopy(old)
    new["metadata"].setdefault("labels", {})["team"] = "a"
    new["status"] = {"phase": "Ready"}
    assert validate_manifest(CRDS, new, old) == []


def test_adding_a_defaulted_field_is_not_a_mutation() -> None:
    """The old object as stored has defaults applied; writing the default explicitly changes nothing."""
    old = example("modelversion-byo.yaml")
    del old["spec"]["artifact"]["format"]
    new = example("modelversion-byo.yaml")
    assert validate_manifest(CRDS, new, old) == []


def test_transition_rules_correlate_list_map_items_by_key() -> None:
    item = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "v": {
                "type": "integer",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "frozen"}],
            },
        },
    }
    schema = {
        "type": "object",
        "properties": {
            "l": {
                "type": "array",
                "items": item,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            }
        },
    }
    old = {"l": [{"name": "a", "v": 1}, {"name": "b", "v": 2}]}
    assert validate(schema, {"l": [{"name": "b", "v": 2}, {"name": "a", "v": 1}]}, old) == []
    assert validate(schema, {"l": [{"name": "c", "v": 9}, {"name": "a", "v": 1}]}, old) == []
    causes = validate(schema, {"l": [{"name": "b", "v": 3}]}, old)
    assert causes == [Cause("l[0].v", c.INVALID, "frozen")]


# --- API server behaviours -------------------------------------------------------------------------------


def test_cel_is_skipped_when_openapi_found_a_blocking_error() -> None:
    obj = isvc(replicas="two", rollout={"steps": [{"weight": 50}, {"weight": 20}]})
    causes = validate_manifest(CRDS, obj)
    assert Cause("", c.INVALID, CEL_SKIPPED) in causes
    assert not any("strictly increasing" in x.message for x in causes)
    assert (
        Cause("spec.replicas", c.TYPE_INVALID, 'Invalid value: "two": must be of type integer, not string')
        in causes
    )


def test_a_range_error_does_not_block_cel() -> None:
    obj = isvc(replicas=5000, rollout={"steps": [{"weight": 50}, {"weight": 20}]})
    fields = {x.field for x in validate_manifest(CRDS, obj)}
    assert fields == {"spec.replicas", "spec.rollout.steps"}


def test_number_fields_are_doubles_in_cel() -> None:
    schema = {"type": "number"}
    assert to_cel(schema, 1) == 1.0 and isinstance(to_cel(schema, 1), float)
    assert to_cel({"type": "integer"}, 1) == 1 and isinstance(to_cel({"type": "integer"}, 1), int)
    tj = example("trainingjob-iris.yaml")
    tj["spec"]["evaluation"]["testFraction"] = 0.5
    assert validate_manifest(CRDS, tj) == []


def test_int_or_string_version_accepts_int_and_latest() -> None:
    for version in (1, 7, "latest"):
        assert validate_manifest(CRDS, isvc(version=version)) == [], version
    causes = validate_manifest(CRDS, isvc(version=True))
    assert [x.field for x in causes if x.field] == ["spec.version"]


def test_duplicate_condition_types_are_refused() -> None:
    cond = {"type": "Ready", "status": "True", "reason": "Ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    obj = {**isvc(), "status": {"conditions": [cond, dict(cond, status="False")]}}
    causes = validate_manifest(CRDS, obj)
    assert [(x.field, x.type) for x in causes] == [("status.conditions[1]", c.DUPLICATE)]


def test_bad_timestamp_in_status() -> None:
    cond = {"type": "Ready", "status": "True", "reason": "Ok", "lastTransitionTime": "yesterday"}
    causes = validate_manifest(CRDS, {**isvc(), "status": {"conditions": [cond]}})
    assert [x.field for x in causes] == ["status.conditions[0].lastTransitionTime"]


@pytest.mark.parametrize(
    ("obj", "field", "type_"),
    [
        (
            {"apiVersion": "onnxops.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": "x"}},
            "kind",
            c.NOT_SUPPORTED,
        ),
        ({**isvc(), "apiVersion": "onnxops.dev/v1"}, "apiVersion", c.NOT_SUPPORTED),
        ({**isvc(), "metadata": {}}, "metadata.name", c.REQUIRED),
        ({**isvc(), "metadata": {"name": "Not_A_Name"}}, "metadata.name", c.INVALID),
        ({k: v for k, v in isvc().items() if k != "spec"}, "spec", c.REQUIRED),
    ],
)
def test_manifest_level_problems(obj: dict[str, Any], field: str, type_: str) -> None:
    causes = validate_manifest(CRDS, obj)
    assert (field, type_) in [(x.field, x.type) for x in causes]


def test_generate_name_is_enough() -> None:
    assert validate_manifest(CRDS, {**isvc(), "metadata": {"generateName": "iris-"}}) == []


def test_non_strict_prunes_unknown_fields_silently() -> None:
    obj = isvc(typo=1)
    assert validate_manifest(CRDS, obj, strict=False) == []
    assert [x.type for x in validate_manifest(CRDS, obj)] == [c.UNKNOWN]


def test_load_crds_from_the_committed_files_equals_the_models() -> None:
    assert load_crds([ROOT / "crds"]) == CRDS


# --- CLI -------------------------------------------------------------------------------------------------


def test_cli_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-f", str(ROOT / "examples")]) == 0
    out = capsys.readouterr().out
    assert "InferenceService/iris: valid" in out


def test_cli_prints_file_kind_name_field_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = isvc(rollout={"steps": [{"weight": 60}, {"weight": 40}]})
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump_all([other, bad, example("trainingjob-iris.yaml")]))
    assert main(["-f", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        f"{path}: InferenceService/x: spec.rollout.steps: rollout.steps weights must be strictly increasing"
        in out
    )
    assert f"{path}: TrainingJob/iris: valid" in out
    assert not any("ConfigMap" in line for line in out)


def test_cli_warns_when_replicas_cannot_express_the_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22: 2 replicas and a 10 % step send ~50 % to the canary (one pod of two); a warning, not an
    error, that says how many replicas would express every step (10: one canary pod of ten is 10 %)."""
    two = isvc(replicas=2, rollout={"steps": [{"weight": 10}, {"weight": 50}]})
    ten = isvc(replicas=10, rollout={"steps": [{"weight": 10}, {"weight": 50}]})
    ten["metadata"]["name"] = "ten"
    path = tmp_path / "isvc.yaml"
    path.write_text(yaml.safe_dump_all([two, ten]))
    assert main(["-f", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    warned = [line for line in out if "warning" in line]
    prefix = f"{path}: InferenceService/x: warning: spec.rollout.steps: "
    assert len(warned) == 1 and warned[0].startswith(prefix)
    assert "10% -> 50%" in warned[0] and "10 replicas would" in warned[0]


def test_cli_update_check_with_old(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = example("modelversion-byo.yaml")
    new = copy.deepcopy(old)
    new["spec"]["artifact"]["sha256"] = "f" * 64
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new))
    assert main([str(tmp_path / "new.yaml"), "--old", str(tmp_path / "old.yaml")]) == 1
    assert "spec.artifact: artifact is immutable" in capsys.readouterr().out
    assert main([str(tmp_path / "new.yaml")]) == 0


def test_cli_unreadable_yaml_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    assert main(["-f", str(tmp_path)]) == 1
    assert "cannot read" in capsys.readouterr().out


def test_cli_needs_a_file() -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


# --- robustness: admission must never crash on what a user sends -----------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 2000)
    | st.floats(-2, 2, allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_FIELDS = st.sampled_from(
    [
        "model",
        "version",
        "replicas",
        "rollout",
        "monitoring",
        "autoscaling",
        "retrain",
        "resources",
        "template",
        "junk",
    ]
)


@settings(max_examples=300, deadline=None)
@given(spec=st.dictionaries(_FIELDS, _JSON, max_size=6), kind=st.sampled_from(sorted(CRDS)))
def test_garbage_never_crashes_and_pruning_is_idempotent(spec: dict[str, Any], kind: str) -> None:
    schema = schema_for(CRDS[kind])
    obj = {"apiVersion": "onnxops.dev/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    once = prune_and_default(schema, obj)
    assert prune_and_default(schema, once) == once
    assert unknown_fields(schema, once) == []
    causes = validate(schema, once, obj)
    assert all(isinstance(x, Cause) and x.message for x in causes)
    assert all(isinstance(x, Cause) for x in validate_manifest(CRDS, obj, obj))


def test_training_job_model_is_immutable_but_params_are_not() -> None:
    old = {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "t"},
        "spec": {
            "model": "a",
            "dataset": {"uri": "sklearn://iris"},
            "estimator": {"className": "LogisticRegression", "params": {"max_iter": 100}},
        },
    }
    renamed = copy.deepcopy(old)
    renamed["spec"]["model"] = "b"
    assert validate_manifest(CRDS, renamed) == []  # a create
    causes = validate_manifest(CRDS, renamed, old)
    assert [x.field for x in causes] == ["spec.model"]
    assert causes[0].message.startswith("spec.model cannot be changed after creation")
    tuned = copy.deepcopy(old)
    tuned["spec"]["estimator"]["params"] = {"max_iter": 5}
    assert validate_manifest(CRDS, tuned, old) == []
