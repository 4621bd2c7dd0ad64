"""InferenceService.spec.monitoring.performance: live accuracy (or error) per served version from ground
truth (docs/feedback.md), and what to do when it degrades (concept drift)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field
from pydantic.config import JsonValue

from .common import Duration, KubeModel
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
        " || !has(self.monitoring.performance.onConceptDrift)"
        " || self.monitoring.performance.onConceptDrift != 'Retrain' || has(self.retrain)",
        "message": "spec.retrain (a TrainingJob template, ideally with dataset.fromServing) is required when "
        "monitoring.performance.onConceptDrift is Retrain",
        "fieldPath": ".retrain",
        "reason": "FieldValueRequired",
    },
]


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
        None, gt=0, le=1,
        description="Relative to the version's own held-out metric (ModelVersion spec.metrics): degraded "
        "when the live value is worse by more than this share (0.1 = 10 %). Default when neither min nor "
        "max is set: 0.1.",
    )
    max_regression: float = Field(
        0.02, ge=0,
        description="A canary or just-promoted version whose live metric is worse than the previous "
        "version's on the same window by more than this (in the metric's unit) is rolled back.",
    )
    min_labels: int = Field(
        100, ge=1,
        description="Fewer labelled predictions of a version in the window: inconclusive, no action."
    )
    window: Duration = Field("1h", description="Labels counted over this window (by arrival time).")
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
    reference: float | None = Field(None, description="The threshold it is held to (min/max or held-out "
                                    "metric with maxDegradation).")
    verdict: Literal["Healthy", "Degraded", "Inconclusive"] = Field(description="This window's verdict.")


class PerformanceSummary(KubeModel):
    """The latest live-performance evaluation."""

    metric: str | None = Field(None, description="The metric.")
    value: float | None = Field(None, description="Live metric of the stable version (printer column).")
    version: int | None = Field(None, description="The version value is for.")
    versions: dict[str, VersionPerformance] | None = Field(None, description="Per served version.")
    verdict: Literal["Healthy", "Degraded", "Regressed", "ConceptDrift", "Inconclusive"] | None = Field(
        None, description="Window verdict over the served versions.")
    action: str | None = Field(None, description="The decision: None, Rollback, Retrain or Alert.")
    consecutive_breaches: int | None = Field(None, ge=0, description="Consecutive degraded windows.")
    breaches: dict[str, int] | None = Field(
        None, description="Consecutive degraded windows per served version (kept across operator restarts)."
    )
    unresolved: int | None = Field(None, ge=0, description="Feedback items no replica could tie to a version "
                                   "in the window (left to the batch path).")
    evaluated_at: str | None = Field(None, description="When.", json_schema_extra={"format": "date-time"})
    message: str | None = Field(None, description="Details with the numbers behind the decision.",
                                max_length=1024)
