"""onnxops.dev/v1alpha1: the typed API, single source of truth for the CRDs."""

from .common import PATTERN_MESSAGES as _COMMON_MESSAGES
from .common import Condition, KubeModel, PodOverrides, ResourceRequirements
from .inferenceservice import (
    PROMETHEUS_URL_PATTERN,
    InferenceService,
    InferenceServiceSpec,
    InferenceServiceStatus,
)
from .model import Model, ModelSpec, ModelStatus
from .modelversion import ModelVersion, ModelVersionSpec, ModelVersionStatus
from .slices import PATTERN_MESSAGES as _SLICE_MESSAGES
from .trainingjob import (
    DATASET_URI_PATTERN,
    GATE_PATTERN,
    METRICS,
    TrainingJob,
    TrainingJobSpec,
    TrainingJobStatus,
)

# pattern -> the plain-words message the CRD's CEL rule gives instead of the regular expression
PATTERN_MESSAGES: dict[str, str] = {
    **_COMMON_MESSAGES,
    **_SLICE_MESSAGES,
    PROMETHEUS_URL_PATTERN: "must be an http:// or https:// URL (no spaces)",
    DATASET_URI_PATTERN: "must be file://<path>, pvc://<claim>/<path>, s3://<bucket>/<key>, https://<url>, "
    "or sklearn://<iris|wine|breast_cancer|digits|diabetes>",
    GATE_PATTERN: "must read '<metric> <op> <number>', e.g. 'accuracy >= 0.9', with a metric among "
    + ", ".join(METRICS)
    + " and an operator among >=, <=, >, <",
}

__all__ = [
    "PATTERN_MESSAGES",
    "Condition",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
    "KubeModel",
    "Model",
    "ModelSpec",
    "ModelStatus",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "PodOverrides",
    "ResourceRequirements",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
]
