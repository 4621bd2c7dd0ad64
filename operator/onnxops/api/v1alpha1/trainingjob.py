"""TrainingJob: train a scikit-learn estimator, export ONNX, register a ModelVersion."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, JsonValue, model_validator

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
from .meta import Parsed
from .search import Search
from .slices import Fairness, Slices
from .stored import StoredStatus

DATASET_URI_PATTERN = (
    r"^(file://\S+|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/\S+|s3://[a-z0-9][a-z0-9.-]+/\S+|https://\S+"
    r"|sklearn://(iris|wine|breast_cancer|digits|diabetes))$"
)

# Estimators the trainer accepts: scikit-learn's that skl2onnx converts with plain tensor outputs, and
# XGBoost's and LightGBM's scikit-learn classes (converted by onnxmltools inside skl2onnx).
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
    "XGBClassifier",
    "LGBMClassifier",
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
    "XGBRegressor",
    "LGBMRegressor",
)
ESTIMATORS: tuple[str, ...] = CLASSIFIERS + REGRESSORS

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2")
METRICS: tuple[str, ...] = CLASSIFICATION_METRICS + REGRESSION_METRICS
GATE_PATTERN = r"^(accuracy|f1_macro|roc_auc|log_loss|rmse|mae|r2) *(>=|<=|>|<) *-?[0-9]+(\.[0-9]+)?$"


COLUMN_MAX = 256
Column = Annotated[str, Field(min_length=1, max_length=COLUMN_MAX)]


DATASET_RULES: list[JsonValue] = [
    {
        "rule": "has(self.uri) || has(self.fromServing)",
        "message": "dataset needs a uri, or fromServing (traffic captured by an InferenceService)",
        "fieldPath": ".uri",
        "reason": "FieldValueRequired",
    },
    {
        "rule": "!has(self.fromServing) || !has(self.fromServing.mix) || has(self.uri)",
        "message": "dataset.fromServing.mix draws rows from dataset.uri, which is not set",
        "fieldPath": ".uri",
        "reason": "FieldValueRequired",
    },
]


class Dataset(KubeModel):
    """The training data."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                *DATASET_RULES,
                {
                    "rule": "!has(self.features) || !has(self.target) || !(self.target in self.features)",
                    "message": "features must not list the target column",
                    "fieldPath": ".features",
                },
                {
                    "rule": "!has(self.features) || !has(self.categoricalFeatures)"
                    " || self.categoricalFeatures.all(c, c in self.features)",
                    "message": "every categoricalFeatures entry must also be one of features",
                    "fieldPath": ".categoricalFeatures",
                },
                {
                    "rule": "(has(self.uri) && self.uri.startsWith('sklearn://')) || has(self.target)",
                    "message": "target (the label column) is required for a file://, pvc://, s3:// or "
                    "https:// data set and for fromServing; only sklearn:// data sets name their own",
                    "fieldPath": ".target",
                    "reason": "FieldValueRequired",
                },
            ]
        }
    )

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
        None,
        description="Target column. Required except for sklearn:// data sets.",
        min_length=1,
        max_length=COLUMN_MAX,
    )
    features: list[Column] | None = Field(
        None,
        description="Feature columns in order (no duplicates); default: every column but the target.",
        max_length=512,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    categorical_features: list[Column] | None = Field(
        None,
        description="Columns to one-hot encode (profiled as categories for drift); each one of "
        "features when features is given.",
        max_length=512,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    sha256: str | None = Field(
        None, description="Expected sha256 of the data file.", pattern=SHA256_PATTERN, max_length=64
    )
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
        description="An allow-listed estimator class name: scikit-learn's, or XGBClassifier / XGBRegressor "
        "(xgboost) and LGBMClassifier / LGBMRegressor (lightgbm) through their scikit-learn APIs."
    )
    params: dict[str, Any] | None = Field(
        None,
        description="Constructor parameters, e.g. {max_iter: 500}.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    scaling: Literal["none", "standard", "minmax", "robust"] = Field(
        "none", description="Scaler put before the estimator in a Pipeline."
    )
    search: Search | None = Field(
        None,
        description="Hyperparameter search (grid, random, successive halving) by cross-validation on "
        "the training split; the best parameters are trained, exported and registered.",
    )


class ChampionRef(KubeModel):
    """The model to beat: the version an alias of the Model names, or the one an InferenceService serves."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.alias) != has(self.inferenceService)",
                    "message": "champion: set exactly one of alias or inferenceService",
                }
            ]
        }
    )

    alias: str | None = Field(
        None,
        pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="An alias of this model's Model (e.g. production).",
    )
    inference_service: str | None = Field(
        None,
        pattern=DNS_LABEL_PATTERN,
        max_length=253,
        description="An InferenceService (same namespace): the version it serves as stable.",
    )


class ChampionGate(KubeModel):
    """The new version may be at most ``maxRegression`` worse than the champion on ``metric``, both scored
    by the trainer on the same held-out rows (direction-aware: lower is better for log_loss, rmse, mae)."""

    metric: Literal[METRICS] = Field(description="Metric compared.")  # type: ignore[valid-type]
    max_regression: float = Field(
        0.0,
        ge=-1e9,
        le=1e9,
        description="How much worse than the champion is still accepted (0.01: accuracy >= champion - 0.01); "
        "negative: it must improve by at least that much.",
    )


class Evaluation(KubeModel):
    """How the model is evaluated before it may be registered."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.championGates) || size(self.championGates) == 0 || has(self.champion)",
                    "message": "championGates compare with a champion: set evaluation.champion (alias or "
                    "inferenceService)",
                    "fieldPath": ".champion",
                    "reason": "FieldValueRequired",
                }
            ]
        }
    )

    test_fraction: float = Field(
        0.2,
        description="Share of rows held out for evaluation, in (0, 1).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self > 0.0 && self < 1.0", "message": "testFraction must be in (0, 1)"}
            ]
        },
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
    slices: Slices | None = Field(
        None,
        description="Held-out metrics per group of some columns (recorded on the ModelVersion), and "
        "gates every group must meet.",
    )
    fairness: Fairness | None = Field(
        None,
        description="fairlearn's demographic parity and equalized odds for a sensitive column, and "
        "gates on them (classifiers).",
    )
    champion: ChampionRef | None = Field(
        None,
        description="The version to compare with (championGates). None yet (alias unset, service not "
        "serving): the champion gates pass and say so.",
    )
    champion_gates: list[ChampionGate] | None = Field(
        None,
        max_length=8,
        description="Gates relative to the champion, scored on the same held-out rows; both scores are "
        "recorded (status.champion, and the ModelVersion's spec.champion).",
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


def _cel_list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


def _task_rule(estimators: tuple[str, ...], allowed: tuple[str, ...], task: str) -> list[JsonValue]:
    """CEL rules: a ``task`` estimator may only be evaluated and gated on ``allowed`` metrics."""
    is_task = f"self.estimator.className in {_cel_list(estimators)}"
    gate_re = "^(" + "|".join(allowed) + ")[ <>=]"
    shown = ", ".join(allowed)
    return [
        {
            "rule": f"!({is_task}) || !has(self.evaluation) || !has(self.evaluation.metrics)"
            f" || self.evaluation.metrics.all(m, m in {_cel_list(allowed)})",
            "message": f"evaluation.metrics: a {task} estimator is evaluated with {shown} only",
            "fieldPath": ".evaluation.metrics",
        },
        {
            "rule": f"!({is_task}) || !has(self.evaluation) || !has(self.evaluation.gates)"
            f" || self.evaluation.gates.all(g, g.matches('{gate_re}'))",
            "message": f"evaluation.gates: a {task} estimator can only be gated on {shown}",
            "fieldPath": ".evaluation.gates",
        },
        {
            "rule": f"!({is_task}) || !has(self.evaluation) || !has(self.evaluation.championGates)"
            f" || self.evaluation.championGates.all(g, g.metric in {_cel_list(allowed)})",
            "message": f"evaluation.championGates: a {task} estimator can only be compared on {shown}",
            "fieldPath": ".evaluation.championGates",
        },
    ]


def _search_metric_rules() -> list[JsonValue]:
    """CEL: the search's objective metric fits the estimator's task."""
    out: list[JsonValue] = []
    for names, allowed, task in (
        (CLASSIFIERS, CLASSIFICATION_METRICS, "classification"),
        (REGRESSORS, REGRESSION_METRICS, "regression"),
    ):
        out.append(
            {
                "rule": f"!(self.estimator.className in {_cel_list(names)}) || !has(self.estimator.search)"
                " || !has(self.estimator.search.metric)"
                f" || self.estimator.search.metric in {_cel_list(allowed)}",
                "message": f"estimator.search.metric: a {task} estimator is searched on {', '.join(allowed)}",
                "fieldPath": ".estimator.search.metric",
            }
        )
    return out


def _slice_rules() -> list[JsonValue]:
    """CEL: slice metrics and gates fit the estimator's task; fairness needs a classifier."""
    out: list[JsonValue] = [
        {
            "rule": f"!has(self.evaluation) || !has(self.evaluation.fairness)"
            f" || self.estimator.className in {_cel_list(CLASSIFIERS)}",
            "message": "evaluation.fairness: fairness metrics need a classifier",
            "fieldPath": ".evaluation.fairness",
        }
    ]
    for names, allowed, task in (
        (CLASSIFIERS, CLASSIFICATION_METRICS, "classification"),
        (REGRESSORS, REGRESSION_METRICS, "regression"),
    ):
        is_task = f"self.estimator.className in {_cel_list(names)}"
        has = "has(self.evaluation) && has(self.evaluation.slices)"
        shown = ", ".join(allowed)
        out += [
            {
                "rule": f"!({is_task}) || !({has}) || !has(self.evaluation.slices.metrics)"
                f" || self.evaluation.slices.metrics.all(m, m in {_cel_list(allowed)})",
                "message": f"evaluation.slices.metrics: a {task} estimator is evaluated with {shown}",
                "fieldPath": ".evaluation.slices.metrics",
            },
            {
                "rule": f"!({is_task}) || !({has}) || !has(self.evaluation.slices.gates)"
                f" || self.evaluation.slices.gates.all(g, g.matches('^({'|'.join(allowed)})(_gap)?[ <>=]'))",
                "message": f"evaluation.slices.gates: a {task} estimator can only be gated on {shown}",
                "fieldPath": ".evaluation.slices.gates",
            },
        ]
    return out


# Cross-field rules of a TrainingJob spec (also the InferenceService's retrain template), evaluated by the
# API server: what would only fail after a training pod ran.
TRAINING_RULES: list[JsonValue] = [
    *_task_rule(CLASSIFIERS, CLASSIFICATION_METRICS, "classification"),
    *_task_rule(REGRESSORS, REGRESSION_METRICS, "regression"),
    *_search_metric_rules(),
    *_slice_rules(),
    {
        "rule": "!has(self.dataset.uri) || self.dataset.uri != 'sklearn://diabetes'"
        f" || self.estimator.className in {_cel_list(REGRESSORS)}",
        "message": "sklearn://diabetes has a continuous target: use a regressor (e.g. Ridge)",
        "fieldPath": ".estimator.className",
    },
]


class TrainingJobSpec(KubeModel):
    """What to train and how."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": TRAINING_RULES})

    model: str = Field(
        description="Model name; versions are registered as <model>-v<N>.",
        pattern=DNS_LABEL_PATTERN,
        max_length=50,
    )
    dataset: Dataset = Field(description="The training data.")
    estimator: Estimator = Field(description="The scikit-learn estimator.")
    evaluation: Evaluation | None = Field(None, description="Held-out evaluation and promotion gates.")
    output: Output | None = Field(None, description="Artifact destination; default: the operator's store.")
    template: PodOverrides | None = Field(None, description="Overrides for the training pod.")
    backoff_limit: int = Field(
        2,
        ge=0,
        le=20,
        description=(
            "Retries of the training pod before failing. Only failures a retry can fix are retried: trainer "
            "exit 1 (crash), 5 (storage unreachable, timeout, 5xx), 7 (dataset.fromServing: fewer labelled "
            "rows than minRows yet) and signals (e.g. OOM-killed) count "
            "against this limit; exit 2 (bad spec or input), 3 (gate not met), 4 (parity failed) and 6 "
            "(data or artifact not found) fail at once; a pod disrupted by the cluster (drain, preemption, "
            "eviction) is retried without counting."
        ),
    )
    active_deadline_seconds: int | None = Field(
        None,
        ge=1,
        description="Time limit for the whole training; unset: the operator's default "
        "(ONNXOPS_JOB_DEADLINE_SECONDS, chart value operator.jobDeadlineSeconds, 24 h unless changed).",
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete the finished Job (not the TrainingJob) after this many seconds."
    )
    suspend: bool = Field(False, description="Suspend the training (no pods run while true).")


MODEL_IMMUTABLE: dict[str, JsonValue] = {
    "rule": "self.model == oldSelf.model",
    "message": "spec.model cannot be changed after creation: the training registers its versions under "
    "the model it was created for; create a new TrainingJob for another model",
    "fieldPath": ".model",
}

TrainingPhase = Literal["Pending", "Suspended", "Running", "Succeeded", "Failed"]


class TrainedArtifact(KubeModel):
    """The artifact the training produced."""

    uri: str = Field(description="URI of model.onnx.")
    sha256: str = Field(description="sha256 of model.onnx.", pattern=SHA256_PATTERN, max_length=64)
    size_bytes: int | None = Field(None, ge=0, description="Size of model.onnx.")
    profile_uri: str | None = Field(None, description="URI of profile.json.")
    profile_sha256: str | None = Field(
        None, description="sha256 of profile.json.", pattern=SHA256_PATTERN, max_length=64
    )


class GateComparison(KubeModel):
    """One champion gate's outcome."""

    metric: str = Field(description="Metric compared.")
    max_regression: float = Field(description="Accepted regression.")
    challenger: float | None = Field(None, description="The new version's score.")
    champion: float | None = Field(None, description="The champion's score on the same rows.")
    passed: bool = Field(description="Whether the gate held.")


class ChampionComparison(KubeModel):
    """The champion the training was compared with, and both scores on the same held-out rows."""

    source: str = Field(description="How the champion was named, e.g. alias production.")
    version: int | None = Field(None, description="The champion's version; absent when there was none.")
    uri: str | None = Field(None, description="The champion's artifact.")
    sha256: str | None = Field(
        None,
        description="Its sha256 (verified by the trainer before use).",
        pattern=SHA256_PATTERN,
        max_length=64,
    )
    metrics: dict[str, float] | None = Field(None, description="The champion's scores on the held-out rows.")
    gates: list[GateComparison] | None = Field(None, description="Each champion gate.", max_length=8)
    message: str | None = Field(None, description="E.g. no champion yet: the gates pass.")


class TrainingJobStatus(StoredStatus):
    """Observed state of the training."""

    observed_generation: int | None = Field(None, ge=0, description="Generation last reconciled.")
    conditions: list[Condition] = conditions_field()
    phase: TrainingPhase | None = Field(None, description="Pending, Suspended, Running, Succeeded or Failed.")
    message: str | None = Field(None, description="Human-readable state, e.g. the gate that was not met.")
    job_name: str | None = Field(None, description="Name of the batch/v1 Job.")
    attempts: int | None = Field(None, ge=0, description="Training pods started so far.")
    start_time: str | None = Field(
        None, description="When the training started.", json_schema_extra={"format": "date-time"}
    )
    completion_time: str | None = Field(
        None, description="When the training finished.", json_schema_extra={"format": "date-time"}
    )
    metrics: dict[str, float] | None = Field(None, description="Held-out evaluation metrics.")
    primary_metric: str | None = Field(None, description="Key metric for display, e.g. accuracy=0.967.")
    artifact: TrainedArtifact | None = Field(None, description="The artifact produced.")
    model_version: str | None = Field(None, description="Name of the ModelVersion registered.")
    champion: ChampionComparison | None = Field(
        None, description="Champion/challenger comparison (evaluation.championGates): both scores."
    )

    def ready_reason(self) -> str | None:
        """The reason of the Ready condition, if any."""
        return next((c.reason for c in self.conditions if c.type == "Ready"), None)


class TrainingJob(KubeModel):
    """Trains a scikit-learn model in a Job, exports and verifies ONNX, registers a ModelVersion."""

    api_version: Literal["onnxops.dev/v1alpha1"] = "onnxops.dev/v1alpha1"
    kind: Literal["TrainingJob"] = "TrainingJob"
    metadata: dict[str, Any] = Field(default_factory=dict)
    # On the TrainingJob only (not on TrainingJobSpec, which an InferenceService's retrain template embeds).
    spec: TrainingJobSpec = Field(json_schema_extra={"x-kubernetes-validations": [MODEL_IMMUTABLE]})
    status: TrainingJobStatus | None = None


class ParsedTrainingJob(Parsed[TrainingJobSpec]):
    """A TrainingJob parsed at the handler boundary (``meta.Parsed``). ``raw_spec`` is what the trainer's
    ``--spec-json`` carries: the spec as stored, never re-serialised from ``spec``. ``observed`` is the
    stored status read once as ``TrainingJobStatus`` (``TrainingJobStatus.read``); ``status`` stays the
    stored dict, which the new status is compared with (``status_patch``)."""

    SPEC = TrainingJobSpec

    @cached_property
    def observed(self) -> TrainingJobStatus:
        return TrainingJobStatus.read(self.status)
