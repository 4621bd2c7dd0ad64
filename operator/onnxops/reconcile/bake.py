"""The bake extension (pure): past ``bakeTime`` the previous version stays warm while the promoted
version's drift is being investigated, so the drift policy can still compare the two on the same traffic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec
from onnxops.api.v1alpha1.remediation import MonitoringStatus

from . import defaults
from .durations import parse_duration


def investigation_seconds(spec: InferenceServiceSpec | Mapping[str, Any]) -> float:
    """``failureLimit`` x ``monitoring.interval`` when drift monitoring is on (the time a breach that opened
    during the bake needs to be confirmed), else 0. ``spec``: typed (a dict is parsed first)."""
    mon = defaults.spec_of(spec).monitoring
    if mon is None or mon.drift is None or not mon.drift.enabled:
        return 0.0
    return mon.drift.failure_limit * parse_duration(mon.interval)


def drift_investigating(status: MonitoringStatus | Mapping[str, Any] | None, version: int | None) -> bool:
    """``version`` has an open drift breach count (> 0) in ``status.drift`` (``MonitoringStatus``: the
    per-version breaches, else a status written before the map: the focus version's count)."""
    if version is None:
        return False
    return MonitoringStatus.of(status).drift_breaches().get(str(version), 0) > 0


def bake_extended(bake_seconds: float, extension: float, since: float, investigating: bool) -> bool:
    """Past ``bakeTime``, the previous version stays warm while the promoted version's drift is being
    investigated (an open breach count), for at most ``extension`` (failureLimit x interval) more: the drift
    policy can still compare the two versions on the same traffic and roll back instead of concluding that
    "every version drifts" because only the new one is left."""
    return investigating and bake_seconds <= since < bake_seconds + extension
