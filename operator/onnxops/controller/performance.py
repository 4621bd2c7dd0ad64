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

from onnxops.builders import labels
from onnxops.reconcile import defaults
from onnxops.reconcile.performance_hook import apply_performance, prior_consecutive
from onnxops.reconcile.remediation import retrain_running
from onnxops.reconcile.rollout import elapsed, parse_duration

from .context import API, ISVC, Context
from .serving import apply_drift_plan, observe_children, retrain_children

log = logging.getLogger(__name__)


def performance_due(isvc: dict[str, Any], now: datetime) -> float | None:
    """Seconds until the next evaluation (0: now), or None when performance monitoring is off."""
    mon = isvc.get("spec", {}).get("monitoring") or {}
    perf = mon.get("performance")
    if not perf or not perf.get("enabled", True):
        return None
    interval = parse_duration(mon.get("interval"), defaults.MONITORING_INTERVAL_SECONDS)
    since = elapsed(((isvc.get("status") or {}).get("performance") or {}).get("evaluatedAt"), now)
    return max(0.0, interval - since)


def _served(status: dict[str, Any]) -> list[tuple[int, str]]:
    roles = (("stableVersion", "stable"), ("canaryVersion", "canary"), ("previousVersion", "previous"))
    return [(int(status[k]), role) for k, role in roles if status.get(k) is not None]


def data_drift_of(status: dict[str, Any]) -> str:
    verdict = (status.get("drift") or {}).get("verdict")
    return verdict if verdict in ("Drift", "NoDrift") else "Unknown"


async def evaluate_performance_if_due(ctx: Context, ns: str, name: str) -> float | None:
    # Imported here (numpy/scipy; loaded off the loop by controller/lazy.py first); never guarded: a missing
    # module is an error, not a silent "no performance monitoring".
    from onnxops.api.v1alpha1 import InferenceServiceSpec
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

    c = ctx.client
    isvc = await c.get(API, ISVC, ns, name)
    now = datetime.now(UTC)
    wait = None if isvc is None else performance_due(isvc, now)
    if isvc is None or wait is None or not _served(isvc.get("status") or {}):
        return None
    isvc.setdefault("apiVersion", API)
    isvc.setdefault("kind", ISVC)
    spec, status = isvc["spec"], isvc.get("status") or {}
    mon = spec.get("monitoring") or {}
    interval = parse_duration(mon.get("interval"), defaults.MONITORING_INTERVAL_SECONDS)
    batch: LabelJobResult | None = None
    if (mon.get("performance") or {}).get("source") == "LabelFiles":
        got = await label_files_performance(ctx, isvc, now, interval)
        if not isinstance(got, LabelJobResult):
            return got
        batch = got
    elif wait > 0:
        return wait
    pspec = PerfPolicySpec.from_spec(InferenceServiceSpec.model_validate(spec))
    window = str((mon.get("performance") or {}).get("window") or defaults.PERFORMANCE_WINDOW)
    model = spec["model"]
    mvs = await ctx.model_versions(ns, model)
    by_v = {int(m["spec"]["version"]): m for m in mvs}
    prom = (mon.get("metricsSource") or {}).get("prometheusUrl") or ctx.settings.prometheus_url or None
    perf: Performance | Inconclusive
    if batch is not None:
        perf = batch.performance
    elif prom:
        perf = await fetch_performance_prometheus(
            prom, model, window, extra_matchers=scope_matchers(ns, name), at=now.timestamp()
        )
    else:
        pods = await c.list("v1", "Pod", ns, label_selector={labels.INFERENCE_SERVICE: name})
        targets = [
            Target(
                p["metadata"]["name"],
                (p["metadata"].get("labels") or {}).get(labels.VERSION, ""),
                f"http://{p['status']['podIP']}:{ctx.settings.serving_port}/metrics",
            )
            for p in pods
            if (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")
        ]
        key = (ns, name, "performance")
        perf, state = await fetch_performance_scrape(
            targets,
            model,
            ctx.scrape_states.get(key) or {},
            duration_seconds(window),
            now.timestamp(),
            service=name,
        )
        ctx.scrape_states.put(key, state)
    served = []
    for v, role in _served(status):
        mv_spec = (by_v.get(v) or {}).get("spec") or {}
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
                role,  # type: ignore[arg-type]
                counts,
                dict(mv_spec.get("metrics") or {}),
                (mv_spec.get("signature") or {}).get("task"),
            )
        )
    children = await retrain_children(ctx, ns, name)
    retrain = status.get("retrain") or {}
    prior = PerfPrior(
        prior_consecutive(status),
        _parse_time(status.get("promotedAt")),
        retrain_running(children),
        _parse_time(retrain.get("at")) if retrain else None,
    )
    decision = decide_performance(served, pspec, prior, now, data_drift_of(status))  # type: ignore[arg-type]
    uid = isvc["metadata"].get("uid")
    observed = await observe_children(ctx, ns, name, bool(spec.get("autoscaling")), uid)
    dp = apply_performance(
        isvc,
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
