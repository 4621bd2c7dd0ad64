"""One drift evaluation, for the controller: fetch live counts, run the policy, map to/from status.

The controller (on the InferenceService loop, every ``monitoring.interval``) calls :func:`evaluate` with the
served versions and the prior state read by :func:`prior_from_status` from the status blocks parsed once
(``api/v1alpha1/remediation.MonitoringStatus``), then hands the Decision to
``onnxops.reconcile.drift_hook.apply_decision``, the only writer of ``status.drift``
(``drift_hook.drift_summary``), which acts on ``decision.action`` (Rollback: status only; Retrain: create a
TrainingJob from ``spec.retrain``; Alert: the DriftDetected condition and an Event).

Persistence of the breach counts: ``status.drift.consecutiveBreaches`` holds the focus version's count
(the canary if any, else the stable) and ``status.drift.breaches`` (a map version -> count) every served
version's count, so every count survives a restart (a version no longer served is dropped from the map;
the status write nulls its key). Without the map the other versions restart from 0, which can only delay
an action, never cause one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onnxops.api.v1alpha1.remediation import MonitoringStatus
from onnxops.drift.batch import PrometheusBatcher
from onnxops.drift.policy import Decision, PolicySpec, PriorState, Role, ServedVersion, decide
from onnxops.drift.scrape import ScrapeState, Target
from onnxops.drift.sources import LiveResult, fetch_live
from onnxops.profile import Profile


@dataclass(frozen=True)
class Served:
    version: str
    role: Role
    profile: Profile | None


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def prior_from_status(
    status: MonitoringStatus | Mapping[str, Any] | None,
    served: Sequence[Served],
    *,
    retrain_running: bool = False,
) -> PriorState:
    """PriorState from an InferenceService status (parsed once, ``MonitoringStatus.from_status``; a stored
    status dict is parsed here)."""
    st = MonitoringStatus.of(status)
    counts = st.drift_breaches()
    return PriorState(
        consecutive={v: c for v, c in counts.items() if any(s.version == v for s in served)},
        promoted_at=_parse_time(st.promoted_at),
        retrain_running=retrain_running,
        last_retrain_at=_parse_time(st.retrain.at) if st.retrain is not None else None,
    )


async def evaluate(
    *,
    model: str,
    served: Sequence[Served],
    spec: PolicySpec,
    window: str,
    prior: PriorState,
    now: datetime,
    prometheus_url: str | None = None,
    targets: Sequence[Target] = (),
    scrape_state: ScrapeState | None = None,
    extra_matchers: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
    namespace: str | None = None,
    service: str | None = None,
    batcher: PrometheusBatcher | None = None,
) -> tuple[Decision, LiveResult]:
    """Fetch the window's live counts of every served version and decide. Never raises for an
    unavailable source (the versions are then Inconclusive). ``namespace``/``service`` scope every
    query and scrape to one InferenceService (see :func:`onnxops.drift.sources.fetch_live`)."""
    profiles = {s.version: s.profile for s in served}
    live = await fetch_live(
        model=model,
        profiles=profiles,
        window=window,
        prometheus_url=prometheus_url,
        targets=targets,
        scrape_state=scrape_state,
        extra_matchers=extra_matchers,
        timeout_s=timeout_s,
        now=now.timestamp(),
        namespace=namespace,
        service=service,
        batcher=batcher,
    )
    versions = [ServedVersion(s.version, s.role, live.counts[s.version], s.profile) for s in served]
    return decide(versions, spec, prior, now), live
