"""The termination-message contract of the trainer, the verifier and the label-file evaluation
(docs/architecture.md "Contracts").

Each container writes one JSON object (< 4 KiB, the kubelet keeps 4096 bytes) to its termination-message
file; the operator reads it from the pod's ``state.terminated.message``. The writers (``trainer/__main__.py``
with ``trainer/run.py``, ``serving/verify.py``) build these models and dump them with :func:`to_message`;
the readers (``reconcile/trainingjob.py``, ``reconcile/modelversion.py``) parse the message once with
:func:`parse_trainer_result` / :func:`parse_verifier_result`, which raise :class:`MalformedResult` naming
the field and the problem when a JSON object does not keep the contract. The label-file evaluation Job
(``trainer/evaluate_labels.py``) writes a :class:`LabelEvalSuccess`;
``drift/performance_source.from_label_job`` reads it with :func:`parse_label_eval_result`.

These are not custom resources: nothing here reaches the CRDs. Unknown fields are ignored when reading, so
an operator keeps reading the results of a newer trainer image. The payloads the operator copies verbatim
into a ModelVersion (``signature``, ``search``, ``slices``, ``fairness``, ``champion``) stay JSON objects
here: the ModelVersion's own schema checks them when it is created, and the trainer may leave parts out to
stay under 4 KiB (``truncated``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

# reason of the condition/Event when a container's JSON result does not keep this contract
MALFORMED_REASON = "MalformedResult"


class MalformedResult(ValueError):
    """A termination message that is a JSON object but not a valid result; ``str()`` names the fields."""


class _Message(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object on the wire: camelCase keys, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class FileRef(_Message):
    """A stored file and its sha256."""

    uri: str
    sha256: str


class ArtifactRef(FileRef):
    """The ONNX model file."""

    size_bytes: int | None = None


class DatasetRef(_Message):
    """The data the model was trained on (``fromServing``: the captured-traffic window that was read)."""

    uri: str | None = None
    sha256: str | None = None
    from_serving: dict[str, Any] | None = None


class TrainerSuccess(_Message):
    """``{"ok": true, ...}``: the bundle the trainer stored, and what the operator registers."""

    ok: Literal[True] = True
    artifact: ArtifactRef
    profile: FileRef | None = None
    metadata: FileRef | None = None  # metadata.json (keeps what ``truncated`` lists)
    metrics: dict[str, float] = {}
    signature: dict[str, Any] | None = None
    dataset: DatasetRef | None = None
    code_version: str | None = None
    search: dict[str, Any] | None = None
    slices: list[dict[str, Any]] | None = None
    fairness: dict[str, Any] | None = None
    champion: dict[str, Any] | None = None
    truncated: list[str] | None = None  # dotted paths left out to stay under 4 KiB


class Failure(_Message):
    """``{"ok": false, "reason", "message"}``: why the container failed, in its own words."""

    ok: Literal[False] = False
    reason: str
    message: str = ""


class TrainerFailure(Failure):
    """A failed training; a ``GateNotMet`` also carries the metrics that missed (and champion scores)."""

    metrics: dict[str, float] | None = None
    champion: dict[str, Any] | None = None


class VerifierSuccess(_Message):
    """``{"ok": true, "sha256", "signature", "smoke"}``: the ModelVersion's artifact verified."""

    ok: Literal[True] = True
    sha256: str | None = None
    signature: dict[str, Any] | None = None
    smoke: dict[str, Any] | None = None


class VersionPerformance(_Message):
    """One served version's numbers over the joined rows: accuracy and macro-F1, or MAE and RMSE."""

    labels: int = Field(ge=0)
    accuracy: float | None = None
    f1: float | None = None
    mae: float | None = None
    rmse: float | None = None


class LabelEvalSuccess(_Message):
    """``{"ok": true, "task", "versions", ...}``: per-version performance from label files joined with the
    captured rows of the window; ``labels`` counts every label read (those without a captured row of the
    window are the difference to the versions' sum)."""

    ok: Literal[True] = True
    task: Literal["classification", "regression"]
    versions: dict[str, VersionPerformance] = {}
    rows_captured: int | None = Field(None, ge=0)
    labels: int | None = Field(None, ge=0)
    labels_digest: str | None = None
    window_start: str | None = None
    window_end: str | None = None


VerifierFailure = Failure
LabelEvalFailure = Failure
TrainerResult = TrainerSuccess | TrainerFailure
VerifierResult = VerifierSuccess | VerifierFailure
LabelEvalResult = LabelEvalSuccess | LabelEvalFailure


def to_message(result: _Message) -> str:
    """The compact JSON text of a result (the writers shorten it further when over 4 KiB)."""
    return json.dumps(result.to_dict(), separators=(",", ":"))


def json_object(message: str | None) -> dict[str, Any] | None:
    """The message as a JSON object, or None when it is not one (e.g. the log tail of a crash)."""
    if not message:
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(x) for x in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(parts)


def _parse(data: dict[str, Any], ok: type[_Message], failed: type[_Message], who: str) -> _Message:
    model = ok if data.get("ok") is True else failed
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MalformedResult(f"the {who}'s termination message is malformed: {_problems(exc)}") from None


def parse_trainer_result(data: dict[str, Any]) -> TrainerResult:
    """The trainer's result from its JSON object; raises MalformedResult naming the bad fields."""
    res = _parse(data, TrainerSuccess, TrainerFailure, "trainer")
    assert isinstance(res, TrainerSuccess | TrainerFailure)
    return res


def parse_verifier_result(data: dict[str, Any]) -> VerifierResult:
    """The verifier's result from its JSON object; raises MalformedResult naming the bad fields."""
    res = _parse(data, VerifierSuccess, VerifierFailure, "verifier")
    assert isinstance(res, VerifierSuccess | Failure)
    return res


def parse_label_eval_result(data: dict[str, Any]) -> LabelEvalResult:
    """The label-file evaluation's result from its JSON object; raises MalformedResult naming the bad
    fields."""
    res = _parse(data, LabelEvalSuccess, LabelEvalFailure, "label evaluation")
    assert isinstance(res, LabelEvalSuccess | Failure)
    return res
