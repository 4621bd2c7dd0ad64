"""The champion a TrainingJob's champion gates name by ``inferenceService``: the version that service serves
as stable (``status.stableVersion``) of the model it serves (``spec.model``), read through the parsed
InferenceService. A service that is missing, serves nothing yet, or whose stored spec does not parse is
reported (an error naming the field, or "no champion yet"), never a crash."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from _operator_fixtures import ClientStub, isvc, mv, tj

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.trainingjob import ChampionRef
from onnxops.controller.context import Context
from onnxops.controller.training import CHAMPION_RECHECK, reconcile_training_job
from onnxops.reconcile import champion
from onnxops.settings import Settings

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


class _Client(ClientStub):
    """A TrainingJob whose champion is InferenceService ``shop``, no training Job yet."""

    def __init__(self, shop_obj: dict[str, Any]) -> None:
        self.objs = {"TrainingJob": _training(), "InferenceService": shop_obj}
        self.status_patches: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        return copy.deepcopy(self.objs.get(kind))  # the Job: none yet

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: dict[str, str] | str | None = None,
    ) -> list[dict[str, Any]]:
        assert kind == "ModelVersion", kind
        return [mv(1)]

    async def patch_status(
        self, api_version: str, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        assert kind == "TrainingJob", kind
        self.status_patches.append(status)
        return {}

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert obj["kind"] == "Event", obj["kind"]
        self.events.append(obj)
        return obj


def _training() -> dict[str, Any]:
    gates = [{"metric": "accuracy", "maxRegression": 0.01}]
    return tj(evaluation={"champion": {"inferenceService": "shop"}, "championGates": gates})


def test_the_training_of_a_champion_service_that_does_not_parse_stalls_naming_the_field() -> None:
    client = _Client(shop({"stableVersion": 1}, replicas=-1))
    ctx = Context(client=client, settings=Settings(), provider=None)
    assert asyncio.run(reconcile_training_job(ctx, "ml", "iris")) == CHAMPION_RECHECK  # no Job created
    [patch] = client.status_patches
    assert patch["phase"] == "Pending"
    assert patch["message"].startswith(f"{FIELD}: InferenceService 'shop' cannot be read (spec.replicas: ")
    stalled = cond.find(patch["conditions"], cond.STALLED)
    assert stalled is not None and stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    [event] = client.events
    assert event["type"] == "Warning" and event["reason"] == "InvalidSpec"
