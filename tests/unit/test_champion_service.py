"""The champion a TrainingJob's champion gates name by ``inferenceService``: the version that service serves
as stable (``status.stableVersion``) of the model it serves (``spec.model``), read through the parsed
InferenceService. A service that is missing, serves nothing yet, or whose stored spec does not parse is
reported (an error naming the field, or "no champion yet"), never a crash."""

from __future__ import annotations

from typing import Any

from _operator_fixtures import isvc, mv

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.trainingjob import ChampionRef
from onnxops.reconcile import champion

REF = ChampionRef(inference_service="shop")
FIELD = "spec.evaluation.champion.inferenceService"


def shop(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return isvc("shop", status=status, **spec)


def test_the_champion_is_the_stable_version_of_the_model_the_service_serves() -> None:
    svc = shop({"stableVersion": 2}, model="flowers")
    mvs = [mv(1, model="flowers"), mv(2, model="flowers", uri="pvc://a/flowers/2/model.onnx"), mv(2)]
    for given in (svc, ParsedInferenceService.parse(svc)):
        got, err = champion.resolve(REF, "iris", None, given, mvs)
        assert err is None and got is not None
        assert got["source"] == "inferenceService shop" and got["version"] == 2
        assert got["uri"] == "pvc://a/flowers/2/model.onnx"  # the service's model, not the TrainingJob's


def test_a_service_serving_nothing_yet_means_no_champion_yet() -> None:
    got, err = champion.resolve(REF, "iris", None, shop(), [mv(1)])
    assert err is None and got == {
        "source": "inferenceService shop",
        "missing": "InferenceService shop serves no version yet",
    }


def test_a_missing_service_is_an_error_naming_the_field() -> None:
    got, err = champion.resolve(REF, "iris", None, None, [mv(1)])
    assert got is None and err == f"{FIELD}: InferenceService 'shop' not found in this namespace"


def test_a_stable_version_that_is_not_ready_is_an_error_naming_the_field() -> None:
    got, err = champion.resolve(REF, "iris", None, shop({"stableVersion": 1}), [mv(1, phase="Verifying")])
    assert got is None and err is not None and err.startswith(f"{FIELD}: the champion iris-v1 is not Ready")


def test_a_service_whose_spec_does_not_parse_is_an_error_naming_its_field() -> None:
    """Stored before the API refused it (a replica count below zero): the champion cannot be trusted."""
    bad = shop({"stableVersion": 1}, replicas=-1)
    got, err = champion.resolve(REF, "iris", None, bad, [mv(1)])
    assert got is None and err is not None
    assert err.startswith(f"{FIELD}: InferenceService 'shop' cannot be read (spec.replicas: "), err
