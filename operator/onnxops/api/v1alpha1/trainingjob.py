"""TrainingJob: train a scikit-learn estimator, export ONNX, register a ModelVersion."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonValue

from .common import (
    DNS_LABEL_PATTERN,
    OUTPUT_URI_PATTERN,
    SHA256_PATTERN,
    Condition,
    KubeModel,
    PodOverrides,
    SecretReference,
    conditions_field,
)
from .fromserving import FromServing

DATASET_URI_PATTERN = (
    r"^(file://\S+|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/\S+|s3://[a-z0-9][a-z0-9.-]+/\S+|https://\S+"
    r"|sklearn://(iris|wine|breast_cancer|digits|diabetes))$"
)

# scikit-learn estimators the trainer accepts: every one skl2onnx converts with plain tensor outputs.
CLASSIFIERS: tuple[str, ...] = (
    "LogisticRegression",
    "SGDClassifier",
    "RidgeClassifier",
    "LinearSVC",
    "SVC",
    "DecisionTreeClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
    "KNeighborsClassifier",
    "GaussianNB",
    "BernoulliNB",
    "MultinomialNB",
    "MLPClassifier",
)
REGRESSORS: tuple[str, ...] = (
    "LinearRegression",
    "Ridge",
    "Lasso",
    "ElasticNet",
    "SGDRegressor",
    "LinearSVR",
    "SVR",
    "DecisionTreeRegressor",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
    "KNeighborsRegressor",
    "MLPRegressor",
)
ESTIMATORS: tuple[str, ...] = CLASSIFIERS + REGRESSORS

METRICS: tuple[str, ...] = ("accuracy", "f1_macro", "roc_auc", "log_loss", "rmse", "mae", "r2")
GATE_PATTERN = r"^(accuracy|f1_macro|roc_auc|log_loss|rmse|mae|r2) *(>=|<=|>|<) *-?[0-9]+(\.[0-9]+)?$"


DATASET_RULES: list[JsonValue] = [
    {"rule": "has(self.uri) || has(self.fromServing)",
     "message": "dataset needs a uri, or fromServing (traffic captured by an InferenceService)",
     "fieldPath": ".uri", "reason": "FieldValueRequired"},
    {"rule": "!has(self.fromServing) || !has(self.fromServing.mix) || has(self.uri)",
     "message": "dataset.fromServing.mix draws rows from dataset.uri, which is not set",
     "fieldPath": ".uri", "reason": "FieldValueRequired"},
]


class Dataset(KubeModel):
    """The training data."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": DATASET_RULES})

    uri: str | None = Field(
        None,
        description=(
            "Where the data is: file://<path>, pvc://<claim>/<path>, s3://<bucket>/<key>, https://..., "
            "or sklearn://<iris|wine|breast_cancer|digits|diabetes> for scikit-learn's bundled data sets."
        ),
        pattern=DATASET_URI_PATTERN,
        max_length=2048,
    )
    format: Literal["csv", "parquet"] = Field("csv", description="File format (ignored for sklearn://).")
    target: str | None = Field(
        None, description="Target column. Required except for sklearn:// data sets.", min_length=1
    )
    features: list[str] | None = Field(
        None, description="Feature columns in order; default: every column except the target.", max_length=512
    )
    categorical_features: list[str] | None = Field(
        None, description="Columns to one-hot encode (profiled as categories for drift).", max_length=512
    )
    sha256: str | None = Field(None, description="Expected sha256 of the data file.", pattern=SHA256_PATTERN)
    credentials_secret: SecretReference | None = Field(
        None, description="Secret with S3 credentials for s3:// URIs."
    )
    from_serving: FromServing | None = Field(
        None, description="Train on traffic an InferenceService captured (spec.logging), joined with labels."
    )

    @model_validator(mode="after")
    def _source(self) -> Dataset:
        if self.uri is None and self.from_serving is None:
            raise ValueError("dataset needs a uri, or fromServing (traffic captured by an InferenceService)")
        if self.from_serving is not None and self.from_serving.mix is not None and self.uri is None:
            raise ValueError("dataset.fromServing.mix draws rows from dataset.uri, which is not set")
        return self


class Estimator(KubeModel):
    """The scikit-learn estimator to fit."""

    class_name: Literal[ESTIMATORS] = Field(  # type: ignore[valid-type]
        description="An allow-listed scikit-learn estimator class name."
    )
    params: dict[str, Any] | None = Field(
        None,
        description="Constructor parameters, e.g. {max_iter: 500}.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    scaling: Literal["none", "standard", "minmax", "robust"] = Field(
        "none", description="Scaler put before the estimator in a Pipeline."
    )


class Evaluation(KubeModel):
    """How the model is evaluated before it may be registered."""

    test_fraction: float = Field(
        0.2,
        description="Share of rows held out for evaluation, in (0, 1).",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "self > 0.0 && self < 1.0", "message": "testFraction must be in (0, 1)"}
        ]},
    )
    seed: int = Field(42, ge=0, description="Random seed for the split and the estimator.")
    metrics: list[Literal[METRICS]] | None = Field(  # type: ignore[valid-type]
        None, description="Metrics to compute; default: all that apply to the task.", max_length=8
    )
    gates: list[Annotated[str, Field(pattern=GATE_PATTERN, max_length=64)]] | None = Field(
        None,
        description="Promotion gates, e.g. 'accuracy >= 0.9'. A failed gate fails the training.",
        max_length=16,
    )


class Output(KubeModel):
    """Where the trained bundle (model.onnx, profile.json, metadata.json) is written."""

    uri: str = Field(
        description="Base URI: file://, pvc://<claim>/<path> or s3://<bucket>/<prefix>. "
        "The bundle goes under <uri>/<model>/<trainingjob-uid>/.",
        pattern=OUTPUT_URI_PATTERN,
        max_length=2048,
    )
    credentials_secret: SecretReference | None = Field(None, description="Secret with S3 credentials.")


class TrainingJobSpec(KubeModel):
    """What to train and how."""

    model: str = Field(description="Model name; versions are registered as <model>-v<N>.",
                       pattern=DNS_LABEL_PATTERN, max_length=50)
    dataset: Dataset = Field(description="The training data.")
    estimator: Estimator = Field(description="The scikit-learn estimator.")
    evaluation: Evaluation | None = Field(None, description="Held-out evaluation and promotion gates.")
    output: Output | None = Field(None, description="Artifact destination; default: the operator's store.")
    template: PodOverrides | None = Field(None, description="Overrides for the training pod.")
    backoff_limit: int = Field(2, ge=0, le=20, description="Retries of the training pod before failing.")
    active_deadline_seconds: int | None = Field(None, ge=1, description="Time limit for the whole training.")
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete the finished Job (not the TrainingJob) after this many seconds."
    )
    suspend: bool = Field(False, description="Suspend the training (no pods run while true).")


TrainingPhase = Literal["Pending", "Suspended", "Running", "Succeeded", "Failed"]


class TrainedArtifact(KubeModel):
    """The artifact the training produced."""

    uri: str = Field(description="URI of model.onnx.")
    sha256: str = Field(description="sha256 of model.onnx.", pattern=SHA256_PATTERN)
    size_bytes: int | None = Field(None, ge=0, description="Size of model.onnx.")
    profile_uri: str | None = Field(None, description="URI of profile.json.")
    profile_sha256: str | None = Field(None, description="sha256 of profile.json.", pattern=SHA256_PATTERN)


class TrainingJobStatus(KubeModel):
    """Observed state of the training."""

    observed_generation: int | None = Field(None, ge=0, description="Generation last reconciled.")
    conditions: list[Condition] = conditions_field()
    phase: TrainingPhase | None = Field(None, description="Pending, Suspended, Running, Succeeded or Failed.")
    message: str | None = Field(None, description="Human-readable state, e.g. the gate that was not met.")
    job_name: str | None = Field(None, description="Name of the batch/v1 Job.")
    attempts: int | None = Field(None, ge=0, description="Training pods started so far.")
    start_time: str | None = Field(None, description="When the training started.",
                                   json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(None, description="When the training finished.",
                                        json_schema_extra={"format": "date-time"})
    metrics: dict[str, float] | None = Field(None, description="Held-out evaluation metrics.")
    primary_metric: str | None = Field(None, description="Key metric for display, e.g. accuracy=0.967.")
    artifact: TrainedArtifact | None = Field(None, description="The artifact produced.")
    model_version: str | None = Field(None, description="Name of the ModelVersion registered.")


class TrainingJob(KubeModel):
    """Trains a scikit-learn model in a Job, exports and verifies ONNX, registers a ModelVersion."""

    api_version: Literal["onnxops.dev/v1alpha1"] = "onnxops.dev/v1alpha1"
    kind: Literal["TrainingJob"] = "TrainingJob"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None
