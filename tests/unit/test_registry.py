"""Version numbers: never reused after a delete, one per training run (reconcile/registry.py)."""

from __future__ import annotations

from onnxops.api.v1alpha1.meta import ObjectMeta
from onnxops.builders import labels
from onnxops.reconcile.registry import HIGHEST, claim, counter_body, owner_uid


def test_first_claim_starts_above_existing_versions() -> None:
    c = claim(None, "uid-a", floor=0)
    assert (c.version, c.data) == (1, {"highest": "1", "run.uid-a": "1"})
    # a counter created after an upgrade starts above the ModelVersions already there
    assert claim(None, "uid-a", floor=7).version == 8


def test_numbers_are_never_reused_after_a_delete() -> None:
    data = {HIGHEST: "20", "run.uid-a": "20"}
    # m-v20 was deleted: the existing ModelVersions now end at 19, the counter still says 20
    c = claim(data, "uid-b", floor=19)
    assert c.version == 21 and c.data == {"highest": "21", "run.uid-b": "21"}


def test_a_run_keeps_its_claim() -> None:
    data = {HIGHEST: "5", "run.uid-a": "4"}
    c = claim(data, "uid-a", floor=5)
    assert (c.version, c.data) == (4, None)  # nothing to write: the claim is recorded


def test_a_claim_on_a_number_another_run_holds_is_replaced() -> None:
    data = {HIGHEST: "4", "run.uid-a": "4"}
    c = claim(data, "uid-a", floor=4, taken={4})
    assert c.version == 5 and c.data == {"highest": "5", "run.uid-a": "5"}
    assert claim({}, "uid-b", floor=0, taken={1, 2}).version == 3


def test_garbage_in_the_counter_is_not_fatal() -> None:
    assert claim({HIGHEST: "x", "run.uid-a": "-3"}, "uid-a", floor=2).version == 3


def test_counter_is_an_operator_owned_config_map_per_model() -> None:
    body = counter_body("ml", "iris", {HIGHEST: "1"})
    assert (body["kind"], body["metadata"]["name"], body["metadata"]["namespace"]) == (
        "ConfigMap",
        "onnxops-model-iris",
        "ml",
    )
    assert body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "onnxops"
    assert body["metadata"]["labels"]["onnxops.dev/model"] == "iris"


def test_owner_uid_is_the_training_run_label_read_from_the_metadata_only() -> None:
    md = {"name": "iris-v3", "namespace": "ml", "labels": {labels.TRAINING_JOB_UID: "run-1", "x": "y"}}
    broken = {"metadata": md, "spec": {"version": "three", "artifact": {"sha256": "no"}}}  # spec never parsed
    assert owner_uid(broken) == "run-1"
    assert owner_uid(ObjectMeta.model_validate(md)) == "run-1"
    assert owner_uid({"metadata": {"name": "iris-v3"}}) is None  # registered by hand: no run owns it
    assert owner_uid(None) is None  # gone
