"""InferenceService.spec.monitoring.performance: live accuracy (or error) per served version from ground
truth (docs/feedback.md), and what to do when it degrades (concept drift)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field
from pydantic.config import JsonValue

from .common import Duration, KubeModel, SecretReference
from .fromserving import LABELS_URI_PATTERN
from .trainingjob import CLASSIFIERS, REGRESSORS

PerformanceMetric = Literal["accuracy", "f1", "mae", "rmse"]
CLASSIFICATION = ("accuracy", "f1")
REGRESSION = ("mae", "rmse")
# the key of the version's held-out metric in ModelVersion spec.metrics (the trainer's names)
HELD_OUT_KEY = {"accuracy": "accuracy", "f1": "f1_macro", "mae": "mae", "rmse": "rmse"}


def _cel(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


PERFORMANCE_RULES: list[JsonValue] = [
    {
        "rule": "(has(self.min) ? 1 : 0) + (has(self.max) ? 1 : 0) + (has(self.maxDegradation) ? 1 : 0) <= 1",
        "message": "performance: set at most one of min, max and maxDegradation",
        "fieldPath": ".maxDegradation",
    },
    {
        "rule": f"!has(self.min) || (has(self.metric) && self.metric in {_cel(CLASSIFICATION)})",
        "message": "performance.min applies to accuracy and f1 (higher is better); use max for mae and rmse",
        "fieldPath": ".min",
    },
    {
        "rule": "!has(self.source) || self.source != 'LabelFiles' || has(self.labelFiles)",
        "message": "performance.labelFiles (uri and target of the label files) is required when source is "
        "LabelFiles",
        "fieldPath": ".labelFiles",
        "reason": "FieldValueRequired",
    },
    {
        "rule": "!has(self.labelFiles) || (has(self.source) && self.source == 'LabelFiles')",
        "message": "performance.labelFiles is only read when source is LabelFiles (the default source, Live, "
        "counts the feedback endpoint's labels)",
        "fieldPath": ".labelFiles",
    },
    {
        "rule": f"!has(self.max) || (has(self.metric) && self.metric in {_cel(REGRESSION)})",
        "message": "performance.max applies to mae and rmse (lower is better); use min for accuracy and f1",
        "fieldPath": ".max",
    },
]

# Rules on the InferenceService spec: the metric must fit the model's task where CEL can see the task (the
# retrain template's estimator); otherwise the operator reports it in status (MetricNotApplicable).
SPEC_PERFORMANCE_RULES: list[JsonValue] = [
    {
        "rule": "!has(self.monitoring) || !has(self.monitoring.performance)"
        " || !has(self.monitoring.performance.metric) || !has(self.retrain)"
        f" || !(self.retrain.trainingJob.estimator.className in {_cel(CLASSIFIERS)})"
        f" || self.monitoring.performance.metric in {_cel(CLASSIFICATION)}",
        "message": "monitoring.performance.metric: the model is a classifier "
        "(retrain.trainingJob.estimator): use accuracy or f1, not mae or rmse",
        "fieldPath": ".monitoring.performance.metric",
    },
    {
        "rule": "!has(self.monitoring) || !has(self.monitoring.performance)"
        " || !has(self.monitoring.performance.metric) || !has(self.retrain)"
        f" || !(self.retrain.trainingJob.estimator.className in {_cel(REGRESSORS)})"
        f" || self.monitoring.performance.metric in {_cel(REGRESSION)}",
        "message": "monitoring.performance.metric: the model is a regressor "
        "(retrain.trainingJob.estimator): use mae or rmse, not accuracy or f1",
        "fieldPath": ".monitoring.performance.metric",
    },
    {
        "rule": "!has(self.monitoring) || !has(self.monitoring.performance)"
        " || !has(self.monitoring.performance.source) || self.monitoring.performance.source != 'LabelFiles'"
        " || (has(self.logging) && (!has(self.logging.enabled) || self.logging.enabled))",
        "message": "spec.logging (payload capture, enabled) is required when monitoring.performance.source "
        "is LabelFiles: the label files are joined by id with the captured rows",
        "fieldPath": ".logging",
        "reason": "FieldValueRequired",
    },
    {
        "rule": "!has(self.monitoring) || !has(self.monitoring.performance)"
        " || !has(self.monitoring.performance.onConceptDrift)"
        " || self.monitoring.performance.onConceptDrift != 'Retrain' || has(self.retrain)",
        "message": "spec.retrain (a TrainingJob template, ideally with dataset.fromServing) is required when "
        "monitoring.performance.onConceptDrift is Retrain",
        "fieldPath": ".retrain",
        "reason": "FieldValueRequired",
    },
]


RESERVED_LABEL_COLUMNS = ("id", "version", "prediction", "timestamp")


class LabelFilesSource(KubeModel):
    """Label files dropped by a warehouse (docs/data-contract.md: ``id`` and the target, CSV or Parquet),
    evaluated by a Job from the trainer image every monitoring interval (docs/feedback.md)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!(self.target in {_cel(RESERVED_LABEL_COLUMNS)})",
                    "message": "labelFiles.target: id, version, prediction and timestamp are columns of "
                    "the captured rows, not a target",
                    "fieldPath": ".target",
                }
            ]
        }
    )

    uri: str = Field(
        description="A label file, or a directory/prefix of them (*.csv, *.parquet): file://, pvc:// or s3://.",
        pattern=LABELS_URI_PATTERN,
        max_length=2048,
    )
    target: str = Field(
        description="The column holding the truth (class label or value).", min_length=1, max_length=253
    )
    credentials_secret: SecretReference | None = Field(None, description="Secret with S3 credentials.")


class PerformanceSpec(KubeModel):
    """Live model performance from ground truth (the feedback endpoint, docs/feedback.md)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": PERFORMANCE_RULES})

    enabled: bool = Field(True, description="Evaluate live performance.")
    metric: PerformanceMetric = Field(
        "accuracy", description="accuracy or f1 (macro) for classifiers; mae or rmse for regressors."
    )
    min: float | None = Field(
        None, ge=0, le=1, description="accuracy/f1: a version below this live value is degraded."
    )
    max: float | None = Field(
        None, ge=0, description="mae/rmse: a version above this live value is degraded."
    )
    max_degradation: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Relative to the version's own held-out metric (ModelVersion spec.metrics): degraded "
        "when the live value is worse by more than this share (0.1 = 10 %). Default when neither min nor "
        "max is set: 0.1.",
    )
    max_regression: float = Field(
        0.02,
        ge=0,
        description="A canary or just-promoted version whose live metric is worse than the previous "
        "version's on the same window by more than this (in the metric's unit) is rolled back.",
    )
    min_labels: int = Field(
        100,
        ge=1,
        description="Fewer labelled predictions of a version in the window: inconclusive, no action.",
    )
    window: Duration = Field(
        "1h",
        description="Live: labels counted over this window (by arrival time). LabelFiles: the captured "
        "rows of this window (by capture time) joined with the label files.",
    )
    source: Literal["Live", "LabelFiles"] = Field(
        "Live",
        description="Live: the feedback endpoint's per-version counters (Prometheus or a direct scrape). "
        "LabelFiles: every monitoring interval a Job from the trainer image joins labelFiles with the "
        "captured rows (spec.logging) and reports the per-version numbers.",
    )
    label_files: LabelFilesSource | None = Field(None, description="The label files (source: LabelFiles).")
    failure_limit: int = Field(3, ge=1, le=100, description="Consecutive degraded evaluations before acting.")
    on_concept_drift: Literal["Retrain", "Alert"] = Field(
        "Alert",
        description="Every served version degraded while the inputs do not drift (concept drift): Retrain "
        "(spec.retrain, ideally dataset.fromServing so the new version learns the new labels) or only Alert.",
    )


class VersionPerformance(KubeModel):
    """One served version's live performance."""

    value: float | None = Field(None, description="Live metric over the window (absent: no labels).")
    labels: int = Field(0, ge=0, description="Labelled predictions in the window.")
    reference: float | None = Field(
        None, description="The threshold it is held to (min/max or held-out metric with maxDegradation)."
    )
    verdict: Literal["Healthy", "Degraded", "Inconclusive"] = Field(description="This window's verdict.")


class PerformanceSummary(KubeModel):
    """The latest live-performance evaluation."""

    metric: str | None = Field(None, description="The metric.")
    value: float | None = Field(None, description="Live metric of the stable version (printer column).")
    version: int | None = Field(None, description="The version value is for.")
    versions: dict[str, VersionPerformance] | None = Field(None, description="Per served version.")
    verdict: Literal["Healthy", "Degraded", "Regressed", "ConceptDrift", "Inconclusive"] | None = Field(
        None, description="Window verdict over the served versions."
    )
    action: str | None = Field(None, description="The decision: None, Rollback, Retrain or Alert.")
    consecutive_breaches: int | None = Field(None, ge=0, description="Consecutive degraded windows.")
    breaches: dict[str, int] | None = Field(
        None, description="Consecutive degraded windows per served version (kept across operator restarts)."
    )
    unresolved: int | None = Field(
        None,
        ge=0,
        description="Feedback items no replica could tie to a version "
        "in the window (left to the batch path); LabelFiles: labels whose id is "
        "not a captured row of the window.",
    )
    source: Literal["Live", "LabelFiles"] | None = Field(None, description="Where the numbers came from.")
    job: str | None = Field(None, description="LabelFiles: the evaluation Job that gave the numbers.")
    evaluated_at: str | None = Field(None, description="When.", json_schema_extra={"format": "date-time"})
    message: str | None = Field(
        None, description="Details with the numbers behind the decision.", max_length=1024
    )
