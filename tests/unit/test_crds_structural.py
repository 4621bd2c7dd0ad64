"""The generated CRDs are structural schemas the API server accepts.

Two tools do the check:

1. ``onnxops.admission.structural`` — our own checker implementing the documented rules of "structural
   schemas" (Kubernetes docs: "Extend the Kubernetes API with CustomResourceDefinitions", section
   "Specifying a structural schema") plus the related apiextensions.k8s.io/v1 rules (no ``$ref``, no
   ``additionalProperties`` with ``properties``, list-map keys required or defaulted, defaults valid and
   pruned, CEL rules compile, transition rules only where items correlate). The mutation tests below show
   it refuses each kind of violation, so a pass means something.
2. ``kubernetes-validate`` (PyPI; bundles the Kubernetes OpenAPI schemas, works offline) in strict mode:
   each CRD manifest is validated against the CustomResourceDefinition schema of apiextensions.k8s.io/v1
   (unknown keys such as ``examples`` or a wrongly typed ``type`` are refused).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from onnxops.admission.structural import preserve_unknown_paths, structural_errors
from onnxops.crdgen import build_crds
from onnxops.validate import schema_for

CRDS = build_crds()
# The only places unknown fields are kept on purpose: estimator constructor parameters (free-form
# scikit-learn kwargs), the search space (parameter -> values of any JSON type or a range; checked by CEL
# and the API models), the search's best parameters, and the free-form last-retrain record in
# InferenceService status.
INTENDED_PRESERVE = {
    "TrainingJob": ["spec.estimator.params", "spec.estimator.search.parameters"],
    "ModelVersion": ["spec.lineage.estimator.params", "spec.lineage.estimator.search.bestParams"],
    "InferenceService": [
        "spec.retrain.trainingJob.estimator.params",
        "spec.retrain.trainingJob.estimator.search.parameters",
        "status.retrain",
    ],
    "Model": [],
}


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_generated_schema_is_structural(kind: str) -> None:
    assert structural_errors(schema_for(CRDS[kind])) == []


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_preserve_unknown_fields_only_where_intended(kind: str) -> None:
    assert preserve_unknown_paths(schema_for(CRDS[kind])) == INTENDED_PRESERVE[kind]


def _base() -> dict[str, Any]:
    return copy.deepcopy(schema_for(CRDS["InferenceService"]))


def _spec(s: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = s["properties"]["spec"]
    return spec


def _no_type(s: dict[str, Any]) -> None:
    del _spec(s)["properties"]["replicas"]["type"]


def _ref(s: dict[str, Any]) -> None:
    _spec(s)["properties"]["rollout"] = {"$ref": "#/definitions/Rollout"}


def _both_props(s: dict[str, Any]) -> None:
    _spec(s)["properties"]["resources"]["additionalProperties"] = {"type": "string"}


def _bool_addl(s: dict[str, Any]) -> None:
    _spec(s)["additionalProperties"] = False


def _bad_any_of(s: dict[str, Any]) -> None:
    _spec(s)["properties"]["model"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}


def _any_of_with_type(s: dict[str, Any]) -> None:
    _spec(s)["properties"]["version"]["anyOf"] = [{"type": "integer", "default": 1}, {"type": "string"}]


def _preserve_false(s: dict[str, Any]) -> None:
    _spec(s)["x-kubernetes-preserve-unknown-fields"] = False


def _map_key_optional(s: dict[str, Any]) -> None:
    s["properties"]["status"]["properties"]["conditions"]["items"]["required"].remove("type")


def _map_key_missing(s: dict[str, Any]) -> None:
    s["properties"]["status"]["properties"]["conditions"]["x-kubernetes-list-map-keys"] = ["name"]


def _bad_default(s: dict[str, Any]) -> None:
    _spec(s)["properties"]["replicas"]["default"] = 5000


def _unpruned_default(s: dict[str, Any]) -> None:
    _spec(s)["properties"]["rollout"]["properties"]["steps"]["default"] = [{"weight": 10, "extra": 1}]


def _null_default(s: dict[str, Any]) -> None:
    _spec(s)["properties"]["model"]["default"] = None


def _bad_cel(s: dict[str, Any]) -> None:
    _spec(s)["x-kubernetes-validations"].append({"rule": "self.model ==", "message": "x"})


def _transition_in_atomic_list(s: dict[str, Any]) -> None:
    steps = _spec(s)["properties"]["rollout"]["properties"]["steps"]
    steps["items"]["x-kubernetes-validations"] = [{"rule": "self == oldSelf", "message": "frozen"}]


def _bad_reason(s: dict[str, Any]) -> None:
    _spec(s)["x-kubernetes-validations"][0]["reason"] = "Nope"


def _bad_field_path(s: dict[str, Any]) -> None:
    _spec(s)["x-kubernetes-validations"][0]["fieldPath"] = ".retrian"


def _metadata_restricted(s: dict[str, Any]) -> None:
    s["properties"]["metadata"] = {"type": "object", "properties": {"labels": {"type": "object"}}}


def _unique_items(s: dict[str, Any]) -> None:
    _spec(s)["properties"]["rollout"]["properties"]["steps"]["uniqueItems"] = True


MUTATIONS = [
    (_no_type, "spec.replicas: no type"),
    (_ref, "spec.rollout: $ref is not allowed"),
    (_both_props, "spec.resources: properties and additionalProperties are mutually exclusive"),
    (_bool_addl, "spec: additionalProperties must be a schema"),
    (_bad_any_of, "spec.model: anyOf is only allowed"),
    (_any_of_with_type, "spec.version: anyOf is only allowed"),
    (_preserve_false, "spec: x-kubernetes-preserve-unknown-fields must be true"),
    (_map_key_optional, "status.conditions: list-map key 'type' must be required or have a default"),
    (_map_key_missing, "status.conditions: list-map key 'name' is not a property"),
    (_bad_default, "spec.replicas: default is invalid"),
    (_unpruned_default, "spec.rollout.steps: default is not pruned"),
    (_null_default, "spec.model: default null"),
    (_bad_cel, "spec: rule does not compile"),
    (_transition_in_atomic_list, "spec.rollout.steps[]: transition rule under a list"),
    (_bad_reason, "spec: reason 'Nope'"),
    (_bad_field_path, "spec: fieldPath '.retrian'"),
    (_metadata_restricted, "metadata: only name and generateName"),
    (_unique_items, "spec.rollout.steps: uniqueItems"),
]


@pytest.mark.parametrize(("mutate", "expected"), MUTATIONS, ids=[m[0].__name__ for m in MUTATIONS])
def test_checker_refuses_each_violation(mutate: Any, expected: str) -> None:
    schema = _base()
    mutate(schema)
    errors = structural_errors(schema)
    assert any(e.startswith(expected) for e in errors), errors


kubernetes_validate = pytest.importorskip("kubernetes_validate")
K8S_VERSION = "1.30"  # the oldest Kubernetes the chart supports (CEL fieldPath/reason are GA there)


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_kubernetes_validate_accepts_the_crds(kind: str) -> None:
    kubernetes_validate.validate(CRDS[kind], K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("spec", "examples", ["x"]),
        ("spec", "type", 5),
        ("spec", "x-kubernetes-validations", [{"message": "no rule"}]),
    ],
)
def test_kubernetes_validate_refuses_a_broken_crd(where: str, key: str, value: Any) -> None:
    crd = copy.deepcopy(CRDS["InferenceService"])
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][where][key] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(crd, K8S_VERSION, strict=True)
