"""onnxops.dev/v1alpha1: the typed API, single source of truth for the CRDs."""

from .common import Condition, KubeModel, PodOverrides, ResourceRequirements
from .inferenceservice import InferenceService, InferenceServiceSpec, InferenceServiceStatus
from .modelversion import ModelVersion, ModelVersionSpec, ModelVersionStatus
from .trainingjob import TrainingJob, TrainingJobSpec, TrainingJobStatus

__all__ = [
    "Condition",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
    "KubeModel",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "PodOverrides",
    "ResourceRequirements",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
]
