"""Live-performance evaluation on the InferenceService loop, every ``monitoring.interval``, beside drift.

Reads the window's feedback counters (``drift/performance_source.py``: Prometheus, or a direct scrape of the
service's pods) or, with ``source: LabelFiles``, the result of the label-file evaluation Job
(``controller/label_eval.py``), runs the pure policy (``drift/performance_policy.py``) with the data-drift
verdict the drift evaluation left in ``status.drift``, and applies the plan
(``reconcile/performance_hook.py``). The breach counts and ``evaluatedAt`` live in
``status.performance``; only direct-scrape snapshots are kept in memory.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.remediation import MonitoringStatus
from onnxops.reconcile import versions
from onnxops.reconcile.performance_hook import apply_performance
from onnxops.reconcile.remediation import retrain_running, since, stored_time
from onnxops.reconcile.rollout import RolloutState, parse_duration

from .context import API, ISVC, Context
from .drift import parsed, served_roles, serving_targets
from .serving import apply_drift_plan, observe_children, prometheus_url, retrain_children

log = logging.getLogger(__name__)


def performance_due(isvc: ParsedInferenceService | dict[str, Any], now: datetime) -> float | None:
    """Seconds until the next evaluation (0: now), or None when performance monitoring is off (``isvc``:
    parsed; a dict is parsed here)."""
    isvc = ParsedInferenceService.of(isvc)
    mon = isvc.spec.monitoring
    if mon is None or mon.performance is None or not mon.performance.enabled:
        return None
    perf = MonitoringStatus.from_status(isvc.status).performance
    return max(0.0, parse_duration(mon.interval) - since(perf.evaluated_at if perf else None, now))


def data_drift_of(status: MonitoringStatus | dict[str, Any]) -> str:
    """The drift evaluation's verdict the performance policy weighs: Drift, NoDrift or Unknown."""
    return MonitoringStatus.of(status).data_drift()


async def evaluate_performance_if_due(ctx: Context, ns: str, name: str) -> float | None:
    # Imported here (numpy/scipy; loaded off the loop by controller/lazy.py first); never guarded: a missing
    # module is an error, not a silent "no performance monitoring".
    from onnxops.drift.evaluate import _parse_time
    from onnxops.drift.live import Inconclusive
    from onnxops.drift.performance_policy import (
        PerfPolicySpec,
        PerfPrior,
        ServedPerf,
        decide_performance,
    )
    from onnxops.drift.performance_source import (
        Performance,
        fetch_performance_prometheus,
        fetch_performance_scrape,
    )
    from onnxops.drift.prometheus import scope_matchers
    from onnxops.drift.scrape import Target
    from onnxops.drift.window import duration_seconds

    from .label_eval import LabelJobResult, label_files_performance

    isvc = await ctx.read_isvc(ns, name)
    now = datetime.now(UTC)
    typed = parsed(isvc)
    wait = None if typed is None else performance_due(typed, now)
    state = RolloutState.from_status(dict(typed.status) if typed else None)
    if isvc is None or typed is None or wait is None or not served_roles(state):
        return None
    spec, mon = typed.spec, typed.spec.monitoring
    if mon is None or mon.performance is None:  # performance_due said so already (for mypy)
        return None
    isvc.setdefault("apiVersion", API)
    isvc.setdefault("kind", ISVC)
    status = MonitoringStatus.from_status(typed.status)
    interval = parse_duration(mon.interval)
    batch: LabelJobResult | None = None
    if mon.performance.source == "LabelFiles":
        last = stored_time(status.performance.evaluated_at) if status.performance else None
        got = await label_files_performance(ctx, typed, now, interval, last)
        if not isinstance(got, LabelJobResult):
            return got
        batch = got
    elif wait > 0:
        return wait
    pspec = PerfPolicySpec.from_spec(spec)
    window = mon.performance.window
    model = spec.model
    mvs = await ctx.model_versions(ns, model)
    by_v = versions.by_version(mvs, model)  # parsed once
    prom = prometheus_url(ctx, typed)
    perf: Performance | Inconclusive
    if batch is not None:
        perf = batch.performance
    elif prom:
        perf = await fetch_performance_prometheus(
            prom, model, window, extra_matchers=scope_matchers(ns, name), at=now.timestamp()
        )
    else:
        key = (ns, name, "performance")
        perf, scrape_state = await fetch_performance_scrape(
            [Target(*t) for t in await serving_targets(ctx, ns, name)],
            model,
            ctx.scrape_states.get(key) or {},
            duration_seconds(window),
            now.timestamp(),
            service=name,
        )
        ctx.scrape_states.put(key, scrape_state)
    served = []
    for v, role in served_roles(state):
        listed = by_v.get(v)
        mv_spec = listed.parsed.spec if listed is not None and listed.parsed is not None else None
        counts: Any = (
            perf
            if isinstance(perf, Inconclusive)
            else perf.versions.get(
                str(v), Inconclusive("NoLabels", f"no labelled predictions of v{v} in the window")
            )
        )
        served.append(
            ServedPerf(
                str(v),
                role,
                counts,
                dict(mv_spec.metrics or {}) if mv_spec else {},
                mv_spec.signature.task if mv_spec and mv_spec.signature else None,
            )
        )
    children = await retrain_children(ctx, ns, name)
    prior = PerfPrior(
        status.performance_breaches(),
        _parse_time(status.promoted_at),
        retrain_running(children),
        _parse_time(status.retrain.at) if status.retrain else None,
    )
    decision = decide_performance(served, pspec, prior, now, status.data_drift())
    observed = await observe_children(ctx, ns, name, spec.autoscaling is not None, typed.meta.uid)
    dp = apply_performance(
        typed,
        mvs,
        observed,
        decision,
        settings=ctx.settings,
        now=now,
        retrain_children=children,
        unresolved=perf.unresolved if isinstance(perf, Performance) else None,
        source="LabelFiles" if batch is not None else "Live",
        job=batch.job if batch is not None else None,
    )
    await apply_drift_plan(ctx, isvc, dp, observed)
    return interval
