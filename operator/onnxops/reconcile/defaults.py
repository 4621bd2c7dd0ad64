"""The API's defaults, read from the pydantic models in ``api/`` (the single source of truth that also
writes them into the CRDs), for the code that reads specs as dicts: a field the API server would have
defaulted but an object carries without (an object never defaulted, a test's bare dict) behaves as its
default, never as a second hand-written number.

Durations are parsed once, here, with :func:`onnxops.reconcile.durations.parse_duration`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from onnxops.api.v1alpha1.inferenceservice import (
    Drift,
    InferenceServiceSpec,
    Rollout,
)
from onnxops.api.v1alpha1.performance import PerformanceSpec

from .durations import parse_duration


def api_default(model: type[BaseModel], field: str) -> Any:
    """The default of ``model.field`` as the API declares it (a factory is called)."""
    return model.model_fields[field].get_default(call_default_factory=True)


def api_duration(model: type[BaseModel], field: str) -> float:
    """The default of a Duration field of ``model``, in seconds."""
    return parse_duration(str(api_default(model, field)))


# spec.rollout
ROLLOUT_STRATEGY: str = api_default(Rollout, "strategy")
ROLLOUT_STEPS: tuple[tuple[int, float], ...] = tuple(
    (step.weight, parse_duration(step.pause)) for step in api_default(Rollout, "steps")
)
BAKE_SECONDS: float = api_duration(Rollout, "bake_time")
PROGRESS_DEADLINE_SECONDS: float = api_duration(Rollout, "progress_deadline")
# spec.monitoring
DRIFT_WINDOW: str = api_default(Drift, "window")
PERFORMANCE_WINDOW: str = api_default(PerformanceSpec, "window")
# spec.version (the drift hook's resolution reads the dict)
SPEC_VERSION: int | str = api_default(InferenceServiceSpec, "version")


def spec_of(spec: InferenceServiceSpec | Mapping[str, Any]) -> InferenceServiceSpec:
    """``spec`` typed; a dict (a test's, possibly a fragment without ``model``) parsed with the API's
    defaults (the typed code reads them from the model, not from the constants above)."""
    if isinstance(spec, InferenceServiceSpec):
        return spec
    return InferenceServiceSpec.model_validate({"model": "unnamed", **spec})
