"""ModelVersion: an immutable, verified registry entry for one ONNX artifact."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.config import JsonValue

from .common import (
    DNS_LABEL_PATTERN,
    SHA256_PATTERN,
    STORAGE_URI_PATTERN,
    Condition,
    KubeModel,
    SecretReference,
    conditions_field,
)
from .fromserving import ServingLineage
from .meta import Parsed, problem_of
from .search import SearchSummary
from .slices import MAX_MV_SLICES, FairnessResult, SliceResult
from .stored import StoredStatus
from .trainingjob import ChampionComparison

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]

IMMUTABLE = "x-kubernetes-validations"


def _immutable(field: str) -> dict[str, Any]:
    return {IMMUTABLE: [{"rule": "self == oldSelf", "message": f"{field} is immutable"}]}


class Artifact(KubeModel):
    """The ONNX file. Immutable: a changed artifact is a new ModelVersion."""

    uri: str = Field(
        description="Where model.onnx is: file://, pvc://<claim>/<path>, s3://, https://.",
        pattern=STORAGE_URI_PATTERN,
        max_length=2048,
    )
    sha256: str = Field(
        description="sha256 of the file; verified before every use.", pattern=SHA256_PATTERN, max_length=64
    )
    format: Literal["onnx"] = Field("onnx", description="Artifact format; only ONNX is served.")
    size_bytes: int | None = Field(None, ge=0, description="Size of the file in bytes.")
    credentials_secret: SecretReference | None = Field(None, description="Secret with S3 credentials.")


class TensorSpec(KubeModel):
    """One input or output tensor of the model (Open Inference Protocol metadata)."""

    name: str = Field(description="Tensor name in the ONNX graph.", min_length=1, max_length=256)
    datatype: Datatype = Field(description="Open Inference Protocol datatype, e.g. FP32, INT64.")
    shape: list[int] = Field(description="Shape; -1 for a dynamic dimension.", max_length=8)


class Signature(KubeModel):
    """What the model takes and returns."""

    inputs: list[TensorSpec] = Field(description="Input tensors.", min_length=1, max_length=64)
    outputs: list[TensorSpec] = Field(description="Output tensors.", min_length=1, max_length=64)
    feature_names: list[str] | None = Field(
        None, description="Feature names in column order.", max_length=4096
    )
    class_labels: list[str] | None = Field(None, description="Class labels (classifiers).", max_length=4096)
    task: Literal["classification", "regression"] | None = Field(None, description="Kind of model.")


class Profile(KubeModel):
    """The training-data profile drift is measured against (profile.json)."""

    uri: str = Field(description="Where profile.json is.", pattern=STORAGE_URI_PATTERN, max_length=2048)
    sha256: str = Field(description="sha256 of profile.json.", pattern=SHA256_PATTERN, max_length=64)


class DatasetRef(KubeModel):
    """The data set a version was trained on."""

    uri: str = Field(description="Data set URI.", max_length=2048)
    sha256: str | None = Field(
        None, description="sha256 of the data set.", pattern=SHA256_PATTERN, max_length=64
    )
    from_serving: ServingLineage | None = Field(None, description="Captured traffic trained on.")


class EstimatorRef(KubeModel):
    """The estimator a version was trained with."""

    class_name: str = Field(description="Estimator class name.")
    params: dict[str, Any] | None = Field(
        None,
        description="Parameters (with a search: the spec's, overridden by the best found).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    search: SearchSummary | None = Field(None, description="The hyperparameter search, when there was one.")


class Lineage(KubeModel):
    """Where a version came from."""

    training_job: str | None = Field(None, description="TrainingJob that produced it (namespace/name).")
    dataset: DatasetRef | None = Field(None, description="Training data.")
    estimator: EstimatorRef | None = Field(None, description="Estimator and parameters.")
    image: str | None = Field(None, description="Trainer image.")
    code_version: str | None = Field(None, description="onnxops version of the trainer.")


class ModelVersionSpec(KubeModel):
    """An immutable registry entry: no field of the spec changes after creation (CEL transition rules on
    the spec, see :func:`spec_immutable_rules`); the operator writes only the status."""

    model: str = Field(
        description="Model name.",
        pattern=DNS_LABEL_PATTERN,
        max_length=50,
        json_schema_extra=_immutable("model"),
    )
    version: int = Field(description="Version number, >= 1.", ge=1, json_schema_extra=_immutable("version"))
    artifact: Artifact = Field(
        description="The ONNX artifact (immutable).", json_schema_extra=_immutable("artifact")
    )
    signature: Signature | None = Field(None, description="Inputs, outputs, feature names, class labels.")
    profile: Profile | None = Field(None, description="Training-data profile for drift detection.")
    metrics: dict[str, float] | None = Field(None, description="Evaluation metrics at training time.")
    slices: list[SliceResult] | None = Field(
        None,
        description="Held-out metrics per slice (spec.evaluation.slices of the training; the first "
        f"{MAX_MV_SLICES} groups, worst first per column; metadata.json has them all).",
        max_length=MAX_MV_SLICES,
    )
    fairness: FairnessResult | None = Field(None, description="Fairness metrics on the held-out rows.")
    lineage: Lineage | None = Field(None, description="Provenance.")
    champion: ChampionComparison | None = Field(
        None, description="The champion this version was compared with at training, and both scores."
    )


# The fields with their own rule (a cause at the field itself); every other spec field is covered by a
# spec-level rule generated from the model, so a field added later is immutable too.
_FIELD_RULES = ("model", "version", "artifact")


def spec_immutable_rules() -> list[JsonValue]:
    """One transition rule per optional spec field: present in both and equal, or absent in both. The
    cause names the field (``spec.signature: signature is immutable ...``)."""
    rules: list[JsonValue] = []
    for name in ModelVersionSpec.model_fields:
        if name in _FIELD_RULES:
            continue
        key = to_camel(name)
        rules.append(
            {
                "rule": f"has(self.{key}) == has(oldSelf.{key})"
                f" && (!has(self.{key}) || self.{key} == oldSelf.{key})",
                "message": f"{key} is immutable: a ModelVersion never changes after registration "
                "(register a new version instead)",
                "fieldPath": f".{key}",
            }
        )
    return rules


class RejectedBy(KubeModel):
    """One InferenceService's rollback of this version (informative)."""

    reason: str = Field(description="Why, e.g. DriftDetected, AnalysisFailed.")
    at: str | None = Field(None, description="When.", json_schema_extra={"format": "date-time"})


ModelVersionPhase = Literal["Pending", "Verifying", "Ready", "Failed"]


class ModelVersionStatus(StoredStatus):
    """Observed state of the version."""

    observed_generation: int | None = Field(None, ge=0, description="Generation last reconciled.")
    conditions: list[Condition] = conditions_field()
    phase: ModelVersionPhase | None = Field(None, description="Pending, Verifying, Ready or Failed.")
    message: str | None = Field(None, description="Human-readable state.")
    verification_job: str | None = Field(None, description="Name of the verification Job.")
    verified_at: str | None = Field(
        None, description="When verification succeeded.", json_schema_extra={"format": "date-time"}
    )
    served_by: list[str] | None = Field(
        None, description="InferenceServices serving this version.", max_length=256
    )
    primary_metric: str | None = Field(None, description="Key metric for display.")
    rejected: bool | None = Field(
        None,
        description="Informative: true while at least one InferenceService has rolled this version "
        "back (see rejectedBy). It blocks nothing: each InferenceService keeps its own record "
        "(status.rejectedVersions), and other services may still serve this version.",
    )
    rejected_reason: str | None = Field(None, description="Informative: why it was last rejected.")
    approved: bool | None = Field(
        None,
        description="Governance (from the Model): true when spec.approvals of the Model lists this "
        "version. Shown whether or not the Model requires approval.",
    )
    approved_by: str | None = Field(None, description="Who approved it (as recorded on the Model).")
    aliases: list[str] | None = Field(
        None, description="The Model's aliases naming this version.", max_length=32
    )
    archived: bool | None = Field(
        None, description="Archived by the Model's retention (an old version nothing serves): never served."
    )
    archived_at: str | None = Field(
        None, description="When it was archived.", json_schema_extra={"format": "date-time"}
    )
    rejected_by: dict[str, RejectedBy] | None = Field(
        None,
        description="Informative: the InferenceServices (by name, same namespace) that rolled this "
        "version back, with why and when. An entry goes away when that service re-admits the version.",
    )


class ModelVersion(KubeModel):
    """An immutable, verified ONNX model version with its signature, metrics, drift baseline and lineage."""

    api_version: Literal["onnxops.dev/v1alpha1"] = "onnxops.dev/v1alpha1"
    kind: Literal["ModelVersion"] = "ModelVersion"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelVersionSpec = Field(json_schema_extra={"x-kubernetes-validations": spec_immutable_rules()})
    status: ModelVersionStatus | None = None


class ParsedModelVersion(Parsed[ModelVersionSpec]):
    """A ModelVersion parsed at the handler boundary (``meta.Parsed``). ``raw_spec`` holds the signature
    the verification Job expects, serialised as stored. ``observed``: the stored status read once as
    ``ModelVersionStatus`` (``ModelVersionStatus.read``); ``status`` stays the stored dict, which the new
    status is compared with (``status_patch``)."""

    SPEC = ModelVersionSpec

    @cached_property
    def observed(self) -> ModelVersionStatus:
        return ModelVersionStatus.read(self.status)


# The status fields that the readers of a model's list of versions use (version resolution, release
# governance, the champion); the rest (conditions, verification) is the ModelVersion's own reconcile's.
LISTED_STATUS = frozenset(
    {
        "phase",
        "message",
        "servedBy",
        "rejected",
        "rejectedReason",
        "rejectedBy",
        "approved",
        "approvedBy",
        "aliases",
        "archived",
        "archivedAt",
    }
)


def _number(value: Any) -> int | None:
    """A stored ``spec.version`` as a number, when it reads as one (also in a spec that does not parse)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


@dataclass(frozen=True)
class ListedModelVersion:
    """One ModelVersion of a model's list (the index's copies), as version resolution, release governance
    and the champion read it: parsed once per list (:meth:`parse`), spec and the status fields they use
    typed. It never raises: a stored object whose spec (or one of those status fields) does not parse has
    ``parsed`` None and ``problem`` naming the field, keeps its name, its status when that parses and, where
    the stored spec says them, its model and number (a number is never issued twice). It is never Ready:
    never served, never an alias's or a champion's version, never marked; ``latest`` does not move past
    it (see ``reconcile/versions``)."""

    name: str
    model: str | None
    version: int | None
    deleting: bool
    parsed: ParsedModelVersion | None
    status: ModelVersionStatus
    problem: str | None = None

    @property
    def ready(self) -> bool:
        return self.parsed is not None and self.status.phase == "Ready"

    @property
    def failed(self) -> bool:
        return self.parsed is not None and self.status.phase == "Failed"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> ListedModelVersion:
        md = obj.get("metadata") or {}
        raw = obj.get("spec") or {}
        name = str(md.get("name") or "") if isinstance(md, Mapping) else ""
        deleting = bool(md.get("deletionTimestamp")) if isinstance(md, Mapping) else False
        model = raw.get("model") if isinstance(raw, Mapping) and isinstance(raw.get("model"), str) else None
        number = _number(raw.get("version")) if isinstance(raw, Mapping) else None
        empty = ModelVersionStatus()
        if not isinstance(md, Mapping) or not isinstance(raw, Mapping):
            return cls(name, model, number, deleting, None, empty, "spec: not an object")
        st = obj.get("status") or {}
        try:
            status = ModelVersionStatus.model_validate(
                {k: x for k, x in st.items() if k in LISTED_STATUS} if isinstance(st, Mapping) else st
            )
        except ValidationError as e:
            return cls(name, model, number, deleting, None, empty, problem_of("status", e))
        try:
            parsed = ParsedModelVersion.parse(obj)
        except ValidationError as e:
            where = "metadata" if e.title == "ObjectMeta" else "spec"
            return cls(name, model, number, deleting, None, status, problem_of(where, e))
        return cls(parsed.meta.name, parsed.spec.model, parsed.spec.version, deleting, parsed, status)

    @classmethod
    def of(cls, obj: ListedModelVersion | Mapping[str, Any]) -> ListedModelVersion:
        """``obj`` itself when parsed, else parsed (the tests' dicts, a caller still holding dicts)."""
        return obj if isinstance(obj, ListedModelVersion) else cls.parse(obj)
