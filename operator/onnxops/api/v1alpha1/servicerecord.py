"""What the InferenceService reconcile reads back of its stored status besides the rollout's own fields
(``reconcile/state.RolloutState``) and the monitoring blocks (``remediation.MonitoringStatus``), typed:
``status.conditions`` (:class:`~.common.Condition`), the last ``reason``, ``status.history``
(:class:`~.inferenceservice.HistoryEntry`), ``status.rejectedVersions``
(:class:`~.inferenceservice.RejectedVersion`) and ``status.rollback``
(:class:`~.inferenceservice.RollbackRecord`, for a rejection an older operator recorded only there).

:meth:`ServiceRecord.from_status` parses them once, leniently (``stored.read_block`` / ``read_list``): an
entry that does not parse (a required field missing, a version that is not a number) is left out, a list
or block that is not one is absent. The conditions are handed to the ``api/conditions`` helpers (shared
by every kind) as the entries that parse, each with the fields it was stored with
(:meth:`ServiceRecord.conditions_as_stored`). Their one writer (``reconcile/inferenceservice.assemble``, with
``reconcile/versions.record_rejections``) writes ``to_dict()`` of each entry: for what parses, the JSON
it read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .common import Condition
from .inferenceservice import HistoryEntry, RejectedVersion, RollbackRecord
from .stored import as_stored, read_block, read_list


@dataclass(frozen=True)
class ServiceRecord:
    """The stored ``reason``, ``history``, ``rejectedVersions`` and ``rollback`` of an InferenceService."""

    conditions: tuple[Condition, ...] = ()
    reason: str | None = None
    history: list[HistoryEntry] | None = None
    rejected_versions: list[RejectedVersion] | None = None
    rollback: RollbackRecord | None = None

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> ServiceRecord:
        st = status or {}
        reason = st.get("reason")
        return cls(
            tuple(read_list(Condition, st.get("conditions")) or ()),
            reason if isinstance(reason, str) else None,
            read_list(HistoryEntry, st.get("history")),
            read_list(RejectedVersion, st.get("rejectedVersions")),
            read_block(RollbackRecord, st.get("rollback")),
        )

    @classmethod
    def of(cls, status: ServiceRecord | Mapping[str, Any] | None) -> ServiceRecord:
        """``status`` itself when parsed, else parsed (the callers and tests that hold the stored dict)."""
        return status if isinstance(status, ServiceRecord) else cls.from_status(status)

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, or None."""
        return next((c for c in self.conditions if c.type == type_), None)

    def conditions_as_stored(self) -> list[dict[str, Any]]:
        """``status.conditions`` for the ``api/conditions`` helpers: the entries that parse, each with the
        fields it was stored with (none added)."""
        return as_stored(self.conditions)

    def history_as_stored(self) -> list[dict[str, Any]] | None:
        """``status.history`` as it is written back (the entries that parse, as stored)."""
        return None if self.history is None else [h.to_dict() for h in self.history]
