"""Drift evaluation on the InferenceService loop, every ``monitoring.interval``.

It uses the drift package (``onnxops.drift.evaluate``: live counts from Prometheus or a direct scrape of the
serving pods, then the policy) and turns the Decision into status and children through
:func:`onnxops.reconcile.drift_hook.apply_decision` (the only writer of ``status.drift``). The breach
counts, the last decision and ``evaluatedAt`` live in ``status.drift`` (a restart neither forgets nor
repeats); only the direct-scrape snapshots are kept in memory (after a restart the first window is
inconclusive).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.modelversion import ListedModelVersion
from onnxops.api.v1alpha1.remediation import MonitoringStatus
from onnxops.builders import labels
from onnxops.reconcile import versions
from onnxops.reconcile.drift_hook import apply_decision, retrain_running
from onnxops.reconcile.remediation import since
from onnxops.reconcile.rollout import RolloutState, parse_duration

from .context import API, ISVC, Context, Lru
from .serving import apply_drift_plan, observe_children, prometheus_url, retrain_children

if TYPE_CHECKING:  # the drift package loads numpy/scipy: imported where a check runs
    from onnxops.drift.chain import Role

log = logging.getLogger(__name__)
PROFILE_CACHE_SIZE = 256
_PROFILES = Lru(PROFILE_CACHE_SIZE)  # (uri, sha256) -> Profile (immutable content), bounded


def drift_due(isvc: ParsedInferenceService | dict[str, Any], now: datetime) -> float | None:
    """Seconds until the next evaluation (0: now), or None when drift monitoring is off (``isvc``: parsed;
    a dict is parsed here)."""
    isvc = ParsedInferenceService.of(isvc)
    mon = isvc.spec.monitoring
    if mon is None or mon.drift is None or not mon.drift.enabled:
        return None
    drift = MonitoringStatus.from_status(isvc.status).drift
    return max(0.0, parse_duration(mon.interval) - since(drift.evaluated_at if drift else None, now))


async def _profile(mv: ListedModelVersion | None) -> Any:
    """The training-data profile of a served version (None: it has none, or its stored spec does not parse
    and so names none the check can trust; that version's drift is inconclusive)."""
    prof = mv.parsed.spec.profile if mv is not None and mv.parsed is not None else None
    if prof is None:
        return None
    key = (prof.uri, prof.sha256)
    if key not in _PROFILES:
        from onnxops.profile import load_profile
        from onnxops.storage import read_bytes

        try:
            data = await asyncio.to_thread(read_bytes, prof.uri, prof.sha256)
            _PROFILES.put(key, load_profile(data))
        except Exception as e:  # unreadable baseline: that version is inconclusive
            log.warning("cannot read profile %s: %s", prof.uri, e)
            return None
    return _PROFILES.get(key)


def _batcher(ctx: Context) -> Any:
    from onnxops.drift.batch import PrometheusBatcher

    if ctx.drift_batcher is None:
        ctx.drift_batcher = PrometheusBatcher()
    return ctx.drift_batcher


def served_roles(state: RolloutState) -> list[tuple[int, Role]]:
    """The served versions and their roles, in the order the policies weigh them."""
    roles: tuple[tuple[int | None, Role], ...] = (
        (state.stable, "stable"),
        (state.canary, "canary"),
        (state.previous, "previous"),
    )
    return [(int(v), role) for v, role in roles if v is not None]


def parsed(isvc: dict[str, Any] | None) -> ParsedInferenceService | None:
    """The InferenceService read for a check, parsed once (None: gone, or a spec that does not parse,
    which its reconcile reports and nothing acts on)."""
    if isvc is None:
        return None
    try:
        return ParsedInferenceService.parse(isvc)
    except ValidationError:
        return None


async def serving_targets(
    ctx: Context, ns: str, name: str, *, shadow: bool = False
) -> list[tuple[str, str, str]]:
    """(pod, version, metrics URL) of the service's running serving pods (and, in a shadow phase, the
    shadow's: the drift of the mirrored rows), the direct scrape's targets."""
    pods = await ctx.client.list("v1", "Pod", ns, label_selector={labels.INFERENCE_SERVICE: name})
    if shadow:
        pods += await ctx.client.list("v1", "Pod", ns, label_selector={labels.SHADOW_OF: name})
    return [
        (
            p["metadata"]["name"],
            (p["metadata"].get("labels") or {}).get(labels.VERSION, ""),
            f"http://{p['status']['podIP']}:{ctx.settings.serving_port}/metrics",
        )
        for p in pods
        if (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")
    ]


async def evaluate_if_due(ctx: Context, ns: str, name: str) -> float | None:
    """Drift, then live performance (which reads the drift verdict); the sooner of the two next runs."""
    from .performance import evaluate_performance_if_due

    waits = [await evaluate_drift_if_due(ctx, ns, name), await evaluate_performance_if_due(ctx, ns, name)]
    due = [w for w in waits if w is not None]
    return min(due) if due else None


async def evaluate_drift_if_due(ctx: Context, ns: str, name: str) -> float | None:
    # Imported here, not at the top: the drift package pulls in numpy/scipy (controller/lazy.py loads it
    # before the first check, off the reconcile path). A missing module is an error, never a silent "no
    # monitoring".
    from onnxops.drift import evaluate as ev
    from onnxops.drift.policy import PolicySpec
    from onnxops.drift.scrape import Target

    isvc = await ctx.read_isvc(ns, name)
    now = datetime.now(UTC)
    typed = parsed(isvc)
    wait = None if typed is None else drift_due(typed, now)
    state = RolloutState.from_status(dict(typed.status) if typed else None)
    if isvc is None or typed is None or wait is None or not served_roles(state):
        return None
    if wait > 0:
        return wait
    isvc.setdefault("apiVersion", API)
    isvc.setdefault("kind", ISVC)
    spec, mon = typed.spec, typed.spec.monitoring
    if mon is None or mon.drift is None:  # drift_due said so already (for mypy)
        return None
    interval = parse_duration(mon.interval)
    model = spec.model
    mvs = await ctx.model_versions(ns, model)
    by_v = versions.by_version(mvs, model)  # parsed once (a stored object that does not parse: no profile)
    served = [ev.Served(str(v), role, await _profile(by_v.get(v))) for v, role in served_roles(state)]
    children = await retrain_children(ctx, ns, name)
    prior = ev.prior_from_status(
        MonitoringStatus.from_status(typed.status), served, retrain_running=retrain_running(children)
    )
    prom = prometheus_url(ctx, typed)
    targets = [] if prom else [Target(*t) for t in await serving_targets(ctx, ns, name, shadow=state.shadow)]
    state_key = (ns, name)
    decision, live = await ev.evaluate(
        model=model,
        served=served,
        spec=PolicySpec.from_spec(spec),
        window=mon.drift.window,
        prior=prior,
        now=now,
        prometheus_url=prom,
        targets=targets,
        scrape_state=ctx.scrape_states.get(state_key),
        namespace=ns,  # every query and scrape: this InferenceService's series only
        service=name,
        batcher=_batcher(ctx),  # one query per family for the services of this namespace due now
    )
    ctx.scrape_states.put(state_key, live.scrape_state)
    observed = await observe_children(ctx, ns, name, spec.autoscaling is not None, typed.meta.uid)
    # apply_decision is the only writer of status.drift (reconcile.drift_hook.drift_summary)
    dp = apply_decision(
        typed, mvs, observed, decision, settings=ctx.settings, now=now, retrain_children=children
    )
    await apply_drift_plan(ctx, isvc, dp, observed)
    return interval
