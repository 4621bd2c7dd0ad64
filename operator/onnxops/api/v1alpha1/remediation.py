"""The status blocks of an InferenceService's drift, live-performance and retrain paths, typed:
``status.drift`` (:class:`~.inferenceservice.DriftSummary`), ``status.performance``
(:class:`~.performance.PerformanceSummary`) and ``status.retrain`` (:class:`RetrainRecord`).

:meth:`MonitoringStatus.from_status` parses them once from the stored status (as
``reconcile/state.RolloutState.from_status`` does for the rollout's fields); their one writer each
(``reconcile/drift_hook``, ``reconcile/performance_hook``, ``reconcile/remediation``) builds the model and
writes ``to_dict()``, the same JSON as before the paths were typed.

A stored block is read the way the dict readers read it: a block that is not an object is absent, and a
field (or one entry of a map, e.g. a breach count that is not a number) that does not parse is left out
and read as unset, never a crash: the next evaluation writes the block anew.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field

from .common import KubeModel
from .inferenceservice import DriftSummary
from .performance import PerformanceSummary
from .stored import read_block

__all__ = ["MonitoringStatus", "RetrainRecord", "read_block"]


class RetrainRecord(KubeModel):
    """``status.retrain``: the last retrain (also the retrain TrainingJob's ``onnxops.dev/retrain-record``
    annotation, which records it after an interrupted evaluation). Not a CRD schema of its own (the field
    keeps unknown fields): other fields are kept as they are."""

    model_config = ConfigDict(extra="allow")

    training_job: str | None = Field(None, description="The retrain TrainingJob.")
    at: str | None = Field(None, description="When.", json_schema_extra={"format": "date-time"})
    reason: str | None = Field(None, description="The decision's reason, e.g. DriftDetected, ConceptDrift.")
    count: int | None = Field(None, ge=0, description="Retrains so far (names the next TrainingJob).")
    scores: dict[str, float] | None = Field(None, description="The scores (or live metrics) behind it.")

    @property
    def number(self) -> int:
        """``count``, 0 when unset."""
        return self.count or 0


@dataclass(frozen=True)
class MonitoringStatus:
    """What the drift, performance and retrain paths read of a stored InferenceService status, parsed once.
    ``promoted_at`` is the rollout's ``status.promotedAt`` (the policies' bake window reads it; the rollout
    writes it)."""

    drift: DriftSummary | None = None
    performance: PerformanceSummary | None = None
    retrain: RetrainRecord | None = None
    promoted_at: str | None = None

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> MonitoringStatus:
        st = status or {}
        promoted = st.get("promotedAt")
        return cls(
            read_block(DriftSummary, st.get("drift")),
            read_block(PerformanceSummary, st.get("performance")),
            read_block(RetrainRecord, st.get("retrain")),
            promoted if isinstance(promoted, str) else None,
        )

    @classmethod
    def of(cls, status: MonitoringStatus | Mapping[str, Any] | None) -> MonitoringStatus:
        """``status`` itself when parsed, else parsed (the tests' stored-status dicts)."""
        return status if isinstance(status, MonitoringStatus) else cls.from_status(status)

    @property
    def retrain_count(self) -> int:
        """Retrains recorded so far (0 without a record)."""
        return self.retrain.number if self.retrain is not None else 0

    def drift_breaches(self) -> dict[str, int]:
        """Consecutive drifting windows per version: ``status.drift.breaches``, else (a status written
        before the map) the focus version's ``consecutiveBreaches``."""
        d = self.drift
        if d is None:
            return {}
        if d.breaches is not None:
            return dict(d.breaches)
        if d.version is not None and d.consecutive_breaches is not None:
            return {str(d.version): d.consecutive_breaches}
        return {}

    def performance_breaches(self) -> dict[str, int]:
        """Consecutive degraded windows per version (``status.performance.breaches``)."""
        p = self.performance
        return dict(p.breaches) if p is not None and p.breaches is not None else {}

    def data_drift(self) -> Literal["Drift", "NoDrift", "Unknown"]:
        """The drift evaluation's verdict as the performance policy reads it: Drift, NoDrift or Unknown."""
        v = self.drift.verdict if self.drift is not None else None
        if v == "Drift" or v == "NoDrift":
            return v
        return "Unknown"
