"""InferenceService: serve a model version with ONNX Runtime, roll out step by step, watch drift."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field
from pydantic.config import JsonValue

from .common import (
    DNS_LABEL_PATTERN,
    Condition,
    Duration,
    KubeModel,
    PodOverrides,
    ResourceRequirements,
    conditions_field,
)
from .logging import PayloadLogging
from .meta import Parsed
from .model import ALIAS_PATTERN
from .notifications import NotificationSink
from .performance import SPEC_PERFORMANCE_RULES, PerformanceSpec, PerformanceSummary
from .trainingjob import TrainingJobSpec

MAX_STEPS = 10


def strictly_increasing_rule(max_items: int = MAX_STEPS) -> str:
    """CEL rule: step weights strictly increase (plain indexing, no extension libraries needed)."""
    parts = [
        f"(size(self) <= {i + 1} || self[{i}].weight < self[{i + 1}].weight)" for i in range(max_items - 1)
    ]
    return " && ".join(parts)


class Autoscaling(KubeModel):
    """A HorizontalPodAutoscaler for each served version's Deployment."""

    min_replicas: int = Field(1, ge=1, le=1000, description="Minimum replicas.")
    max_replicas: int = Field(3, ge=1, le=1000, description="Maximum replicas.")
    target_cpu_utilization: int = Field(70, ge=1, le=100, description="Target average CPU utilisation (%).")


class CanaryStep(KubeModel):
    """One canary step: the share of traffic to the new version, then a pause with analysis."""

    weight: int = Field(ge=1, le=100, description="Percent of traffic sent to the canary (1..100).")
    pause: Duration | None = Field(None, description="How long to hold this step, e.g. 1m.")
    await_promotion: bool | None = Field(
        None,
        description="A manual gate: after the pause (and its passed analysis) the step waits, without a "
        "time limit, until a person runs `onnxops promote` (or `abort`). Status: reason and condition "
        "AwaitingPromotion.",
    )


class Analysis(KubeModel):
    """Service-level checks run at every canary step, from the serving pods' own metrics (or Prometheus).
    On by default: a rollout promotes only on evidence. Opt out with ``enabled: false``."""

    enabled: bool = Field(True, description="Run the checks; false promotes after the pauses without any.")
    max_error_rate: float = Field(
        0.01, ge=0, le=1, description="Largest acceptable share of 5xx responses of the canary."
    )
    max_latency_p99_ms: float = Field(
        500, gt=0, description="Largest acceptable p99 request latency of the canary (ms)."
    )
    min_requests: int = Field(
        50, ge=0, description="Fewer canary requests in a step's window make the check inconclusive."
    )
    failure_limit: int = Field(2, ge=1, le=100, description="Consecutive failed checks before the abort.")
    on_inconclusive: Literal["Pause", "Promote", "Abort"] = Field(
        "Pause",
        description="When a check is inconclusive (too few requests, metrics source down): Pause holds the "
        "step and checks again; Promote moves on without evidence; Abort rolls back at once.",
    )
    inconclusive_limit: int = Field(
        10,
        ge=0,
        le=1000,
        description="With Pause: consecutive inconclusive checks (one per step pause, at least 10s apart) "
        "after which the rollout aborts; 0 holds until spec changes.",
    )


class Shadow(KubeModel):
    """A shadow phase before the canary steps: the new version gets a mirrored copy of live requests (its
    answers are dropped), takes no traffic and no weight, and is judged before any user sees it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.minAgreement) || !has(self.maxMeanAbsDiff)",
                    "message": "set minAgreement (classifiers) or maxMeanAbsDiff (regressors), not both",
                    "fieldPath": ".maxMeanAbsDiff",
                }
            ]
        }
    )

    duration: Duration = Field(
        "5m",
        description="How long the shadow receives mirrored traffic before "
        "it is judged (the measurement window).",
    )
    sample_rate: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Share of the stable version's answered requests mirrored to the shadow (0 < rate <= 1).",
    )
    max_error_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Largest acceptable share of mirrored "
        "requests the shadow fails (non-200, unreachable or timed out).",
    )
    max_latency_p99_ms: float = Field(
        500,
        gt=0,
        description="Largest acceptable p99 latency of the shadow's answers to mirrored requests (ms).",
    )
    min_agreement: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Classifiers: smallest acceptable share of compared rows where the "
        "shadow predicts the stable version's label (absent: reported, not judged).",
    )
    max_mean_abs_diff: float | None = Field(
        None,
        ge=0,
        description="Regressors: largest acceptable mean |stable - shadow| over compared rows "
        "(absent: reported, not judged).",
    )
    min_requests: int = Field(
        50,
        ge=0,
        description="Fewer mirrored requests in the window make the check "
        "inconclusive (then rollout.analysis.onInconclusive applies).",
    )


class HTTPRouteRef(KubeModel):
    """A Gateway API HTTPRoute whose backend weights the operator sets for exact traffic splits."""

    name: str = Field(description="HTTPRoute name.", pattern=DNS_LABEL_PATTERN, max_length=253)


# The default canary steps (also written into the CRD as the schema default).
DEFAULT_STEPS: list[JsonValue] = [{"weight": 20, "pause": "30s"}, {"weight": 50, "pause": "30s"}]


class Rollout(KubeModel):
    """How a new version replaces the stable one."""

    strategy: Literal["Canary", "Recreate"] = Field("Canary", description="Canary steps or immediate switch.")
    steps: list[CanaryStep] = Field(
        default_factory=lambda: [CanaryStep.model_validate(s) for s in DEFAULT_STEPS],
        description="Canary steps; weights strictly increase and are at most 100.",
        max_length=MAX_STEPS,
        json_schema_extra={
            "default": DEFAULT_STEPS,
            "x-kubernetes-validations": [
                {
                    "rule": strictly_increasing_rule(),
                    "message": "rollout.steps weights must be strictly increasing",
                }
            ],
        },
    )
    analysis: Analysis = Field(
        default_factory=Analysis,
        description="SLO checks at each step (on by default; enabled: false opts out).",
        json_schema_extra={"default": Analysis().to_dict()},
    )
    bake_time: Duration = Field("2m", description="How long the previous version stays warm after promotion.")
    progress_deadline: Duration = Field("10m", description="A new version not Ready by then is aborted.")
    http_route: HTTPRouteRef | None = Field(None, description="Gateway API HTTPRoute for exact weights.")
    shadow: Shadow | None = Field(
        None,
        description="Start with a shadow phase (mirrored traffic, no weight) judged before the canary "
        "steps; see docs/rollout.md.",
    )


PROMETHEUS_URL_PATTERN = r"^https?://\S+$"


class MetricsSource(KubeModel):
    """Where live metrics come from."""

    prometheus_url: str | None = Field(
        None,
        description="Prometheus base URL (http(s)://host:port). Empty: scrape the serving pods directly.",
        pattern=PROMETHEUS_URL_PATTERN,
        max_length=2048,
    )


DriftMethod = Literal["psi", "js", "ks", "wasserstein", "chi2"]


class Drift(KubeModel):
    """Drift detection against the version's training baseline."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    # for the p-value tests the threshold is a significance level
                    # (policy: else always inconclusive)
                    "rule": "!has(self.method) || !(self.method in ['ks', 'chi2']) || !has(self.threshold)"
                    " || self.threshold < 1.0",
                    "message": "for method ks or chi2 the threshold is a significance level: it must be "
                    "below 1 (e.g. 0.01)",
                    "fieldPath": ".threshold",
                }
            ]
        }
    )

    enabled: bool = Field(True, description="Evaluate drift.")
    method: DriftMethod = Field("psi", description="Statistic: psi, js, ks, wasserstein or chi2.")
    threshold: float = Field(
        0.2,
        gt=0,
        description="Aggregated score above which a window drifts (psi, js, wasserstein); "
        "for ks and chi2 the significance level alpha in (0, 1).",
    )
    window: Duration = Field("5m", description="Live window compared with the baseline.")
    min_samples: int = Field(100, ge=1, description="Fewer observations make a window inconclusive.")
    failure_limit: int = Field(3, ge=1, le=100, description="Consecutive drifting windows before acting.")
    features: list[str] | None = Field(None, description="Features to watch; default: all.", max_length=512)
    include_predictions: bool = Field(True, description="Count prediction drift as a feature.")


class Monitoring(KubeModel):
    """Live analysis of each served version."""

    metrics_source: MetricsSource | None = Field(None, description="Prometheus, or direct scrape.")
    interval: Duration = Field("30s", description="How often drift and SLOs are evaluated.")
    drift: Drift | None = Field(None, description="Drift detection.")
    on_drift: Literal["Rollback", "Retrain", "Alert"] = Field(
        "Rollback", description="Rollback to the previous version, Retrain, or only Alert."
    )
    performance: PerformanceSpec | None = Field(
        None, description="Live accuracy (or error) per version from ground truth, and concept drift."
    )


class Retrain(KubeModel):
    """The TrainingJob to create when the live data itself drifted."""

    training_job: TrainingJobSpec = Field(description="Spec of the TrainingJob to create.")
    min_interval: Duration = Field("30m", description="At most one retrain per interval.")


# Cross-field rules of the spec, evaluated by the API server (CEL) after defaulting. has() guards keep them
# safe on objects that were never defaulted.
SPEC_RULES: list[JsonValue] = [
    {
        "rule": "!has(self.monitoring) || !has(self.monitoring.onDrift)"
        " || self.monitoring.onDrift != 'Retrain' || has(self.retrain)",
        "message": "spec.retrain (a TrainingJob template) is required when monitoring.onDrift is Retrain",
        "fieldPath": ".retrain",
        "reason": "FieldValueRequired",
    },
    {
        "rule": "!has(self.autoscaling) || !has(self.autoscaling.minReplicas)"
        " || !has(self.autoscaling.maxReplicas)"
        " || self.autoscaling.minReplicas <= self.autoscaling.maxReplicas",
        "message": "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
        "fieldPath": ".autoscaling.minReplicas",
    },
    {
        # the retrained versions must be versions of the model this service serves (else the retrain
        # registers another model's version and the drift never ends)
        "rule": "!has(self.retrain) || self.retrain.trainingJob.model == self.model",
        "message": "retrain.trainingJob.model must be the same model as spec.model",
        "fieldPath": ".retrain.trainingJob.model",
    },
    *SPEC_PERFORMANCE_RULES,
]


class InferenceServiceSpec(KubeModel):
    """What to serve and how to roll it out."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": SPEC_RULES})

    model: str = Field(description="Model name.", pattern=DNS_LABEL_PATTERN, max_length=50)
    version: int | str = Field(
        "latest",
        description="Version number (>= 1), 'latest' (the newest Ready version this InferenceService has "
        "not rolled back: see status.rejectedVersions; approved, if the Model requires approval) or "
        "'@<alias>' (the version the Model's alias names, e.g. '@production').",
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "x-kubernetes-validations": [
                {
                    "rule": "type(self) == int ? self >= 1 : (self == 'latest' || "
                    f"(size(self) <= 64 && self.matches('^@{ALIAS_PATTERN[1:]}')))",
                    "message": "version must be an integer >= 1, 'latest' or '@<alias>' (e.g. '@production')",
                }
            ],
        },
    )
    replicas: int = Field(1, ge=0, le=1000, description="Replicas of the stable version (no autoscaling).")
    resources: ResourceRequirements | None = Field(None, description="Serving container resources.")
    autoscaling: Autoscaling | None = Field(None, description="HorizontalPodAutoscaler settings.")
    rollout: Rollout | None = Field(None, description="Rollout strategy.")
    monitoring: Monitoring | None = Field(None, description="Drift and SLO monitoring.")
    retrain: Retrain | None = Field(None, description="Retraining template (needed for onDrift: Retrain).")
    template: PodOverrides | None = Field(None, description="Overrides for the serving pods.")
    logging: PayloadLogging | None = Field(None, description="Capture served rows to Parquet for retraining.")
    notifications: list[NotificationSink] | None = Field(
        None,
        max_length=8,
        description="Webhooks told about promotions, steps, gates, rollbacks, retrains, breaches and "
        "approvals (docs/notifications.md); delivered asynchronously, retried, never blocking a rollout.",
    )


InferencePhase = Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"]


class DriftSummary(KubeModel):
    """The latest drift evaluation."""

    score: float | None = Field(None, description="Aggregated score of the stable (or canary) version.")
    version: int | None = Field(None, description="Version the score is for.")
    features: dict[str, float] | None = Field(None, description="Per-feature scores.")
    versions: dict[str, float] | None = Field(None, description="Aggregated score per served version.")
    samples: int | None = Field(None, ge=0, description="Observations in the window.")
    verdict: Literal["NoDrift", "Drift", "Inconclusive"] | None = Field(None, description="Window verdict.")
    consecutive_breaches: int | None = Field(None, ge=0, description="Consecutive drifting windows.")
    breaches: dict[str, int] | None = Field(
        None, description="Consecutive drifting windows per served version (kept across operator restarts)."
    )
    evaluated_at: str | None = Field(None, description="When.", json_schema_extra={"format": "date-time"})
    message: str | None = Field(None, description="Details.")


class RollbackRecord(KubeModel):
    """An automatic rollback; it holds until spec changes (a new generation)."""

    from_version: int = Field(alias="from", description="Version rolled back.")
    to_version: int = Field(alias="to", description="Version restored.")
    reason: str = Field(description="Machine-readable reason, e.g. DriftDetected, AnalysisFailed.")
    message: str | None = Field(None, description="Details with the scores that led to it.")
    at: str = Field(description="When.", json_schema_extra={"format": "date-time"})
    generation: int = Field(ge=0, description="metadata.generation the rollback applies to.")
    scores: dict[str, float] | None = Field(None, description="Scores that led to it.")


class RejectedVersion(KubeModel):
    """A version this InferenceService rolled back: ``version: latest`` skips it here, and only here."""

    version: int = Field(ge=1, description="The version rolled back.")
    reason: str = Field(description="Why, e.g. DriftDetected, AnalysisFailed.")
    at: str = Field(description="When.", json_schema_extra={"format": "date-time"})
    generation: int = Field(
        ge=0,
        description="metadata.generation when it was rolled back; a later "
        "generation that pins this version in spec.version re-admits it.",
    )


class HistoryEntry(KubeModel):
    """One promotion, rollback or retrain."""

    action: Literal["Deployed", "Promoted", "Aborted", "RolledBack", "Retrained"] = Field(description="What.")
    version: int = Field(description="Version concerned.")
    at: str = Field(description="When.", json_schema_extra={"format": "date-time"})
    reason: str | None = Field(None, description="Why.")


class VersionCapacity(KubeModel):
    """Pods of one served version."""

    version: int = Field(description="Version.")
    role: Literal["Stable", "Canary", "Previous"] = Field(description="Stable, Canary or Previous (baking).")
    desired: int | None = Field(None, ge=0, description="Replicas wanted (absent with autoscaling).")
    ready: int = Field(ge=0, description="Ready pods.")


class AnalysisSummary(KubeModel):
    """One SLO check of a canary step."""

    verdict: Literal["Pass", "Fail", "Inconclusive"] = Field(description="Pass, Fail or Inconclusive.")
    message: str = Field(description="What was measured.", max_length=1024)
    version: int = Field(description="Canary version checked.")
    step: int = Field(ge=0, description="Index of the canary step.")
    at: str = Field(description="When.", json_schema_extra={"format": "date-time"})
    phase: Literal["Shadow"] | None = Field(
        None, description="Shadow: the check of the shadow phase (spec.rollout.shadow), not of a canary step."
    )


class ControlRequest(KubeModel):
    """A person's rollout command (`onnxops promote|abort|pause`), written to the status subresource."""

    version: int = Field(ge=1, description="The canary version the command is for (stale once it changed).")
    step: int | None = Field(None, ge=0, description="promote: the step index it promotes from.")
    full: bool | None = Field(None, description="promote --full: skip every remaining step.")
    by: str | None = Field(
        None, description="Who (as the API server identified the command's user).", max_length=256
    )
    at: str | None = Field(None, description="When.", json_schema_extra={"format": "date-time"})
    reason: str | None = Field(None, description="Why (abort, pause).", max_length=1024)


class RolloutControl(KubeModel):
    """Manual rollout commands. Written by the CLI to the status subresource (GitOps tools neither apply nor
    diff status), consumed by the operator: promote and abort are cleared once acted on (or stale), pause
    stays until `onnxops resume` or the canary ends."""

    promote: ControlRequest | None = Field(None, description="Move the canary on (one step, or --full).")
    abort: ControlRequest | None = Field(None, description="Roll the canary back (held until spec changes).")
    pause: ControlRequest | None = Field(None, description="Hold the canary at its step until resume.")


class InferenceServiceStatus(KubeModel):
    """Observed state of serving."""

    observed_generation: int | None = Field(None, ge=0, description="Generation last reconciled.")
    conditions: list[Condition] = conditions_field()
    phase: InferencePhase | None = Field(None, description="Pending, Progressing, Ready, Degraded or Failed.")
    message: str | None = Field(None, description="Human-readable state.")
    stable_version: int | None = Field(None, description="Version serving the main share of traffic.")
    canary_version: int | None = Field(None, description="Version being rolled out.")
    canary_weight: int | None = Field(None, ge=0, le=100, description="Percent of traffic to the canary.")
    current_step: int | None = Field(None, ge=0, description="Index of the canary step.")
    shadow: bool | None = Field(
        None,
        description="The canary version is in its shadow phase: mirrored "
        "requests only, no traffic, no weight.",
    )
    step_started_at: str | None = Field(
        None, description="When the step began.", json_schema_extra={"format": "date-time"}
    )
    previous_version: int | None = Field(None, description="Previous version kept warm during the bake time.")
    promoted_at: str | None = Field(
        None, description="When the stable version was promoted.", json_schema_extra={"format": "date-time"}
    )
    effective_canary_weight: int | None = Field(
        None,
        ge=0,
        le=100,
        description="Share of traffic the canary gets once its pods run (without an HTTPRoute the split "
        "follows pod counts, so it can differ from canaryWeight).",
    )
    reason: str | None = Field(None, description="Why the service is in its phase (CamelCase).")
    capacity: list[VersionCapacity] | None = Field(
        None, description="Ready and desired pods of each served version.", max_length=8
    )
    url: str | None = Field(None, description="In-cluster URL of the Service.")
    analysis_failures: int | None = Field(None, ge=0, description="Consecutive failed SLO checks.")
    inconclusive_checks: int | None = Field(
        None, ge=0, description="Consecutive inconclusive SLO checks of the current step."
    )
    last_analysis: AnalysisSummary | None = Field(None, description="The latest SLO check of a canary.")
    drift: DriftSummary | None = Field(None, description="Latest drift evaluation.")
    performance: PerformanceSummary | None = Field(None, description="Latest live-performance evaluation.")
    rollback: RollbackRecord | None = Field(None, description="Last rollback (automatic or `onnxops abort`).")
    control: RolloutControl | None = Field(
        None, description="Pending manual commands (onnxops promote/abort/pause); see docs/rollout.md."
    )
    retrain: dict[str, Any] | None = Field(
        None,
        description="Last retrain: trainingJob, at, reason.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    history: list[HistoryEntry] | None = Field(
        None, description="Recent rollout history (bounded).", max_length=20
    )
    rejected_versions: list[RejectedVersion] | None = Field(
        None,
        max_length=64,
        description="Versions this InferenceService rolled back; `version: latest` skips them for this "
        "service only (other services may still serve them). An entry is cleared by pinning that version in "
        "spec.version, or by removing it from status (see docs/drift.md, 'Re-admitting a version').",
    )


class InferenceService(KubeModel):
    """Serves an ONNX model version with canary rollouts, SLO analysis and drift-triggered rollback."""

    api_version: Literal["onnxops.dev/v1alpha1"] = "onnxops.dev/v1alpha1"
    kind: Literal["InferenceService"] = "InferenceService"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None


class ParsedInferenceService(Parsed[InferenceServiceSpec]):
    """An InferenceService parsed at the handler boundary (``meta.Parsed``). What the serving pods embed
    from the user (resources, pod overrides, env) is taken from ``raw_spec``, the spec as stored, so that
    a Deployment comes out byte for byte the same as before the path was typed."""

    SPEC = InferenceServiceSpec
