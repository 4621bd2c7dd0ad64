"""Drift evaluation on the InferenceService loop, every ``monitoring.interval``.

The evaluation needs the drift package's live-count sources and policy (``onnxops.drift``); it runs only
when those modules provide ``onnxops.drift.monitor.evaluate`` — an async function
``evaluate(isvc, mvs, pods, settings, now) -> Decision | None`` — and turns its Decision into status and
children through :func:`onnxops.reconcile.drift_hook.apply_decision`. The state (consecutive breaches,
the last decision, evaluatedAt) lives in ``status.drift``, so a restart neither forgets nor repeats.
"""

from __future__ import annotations

import importlib
import logging
from datetime import UTC, datetime
from typing import Any

from onnxops.builders import labels
from onnxops.reconcile.drift_hook import apply_decision
from onnxops.reconcile.rollout import elapsed, parse_duration

from .context import API, ISVC, MV, Context
from .serving import apply_drift_plan, observe, retrain_children

log = logging.getLogger(__name__)
EVALUATOR = "onnxops.drift.monitor"


def _evaluator() -> Any:
    try:
        mod = importlib.import_module(EVALUATOR)
    except ImportError:
        return None
    return getattr(mod, "evaluate", None)


def drift_due(isvc: dict[str, Any], now: datetime) -> float | None:
    """Seconds until the next evaluation (0: now), or None when drift monitoring is off."""
    mon = isvc.get("spec", {}).get("monitoring") or {}
    if not mon.get("drift") or not (mon.get("drift") or {}).get("enabled", True):
        return None
    interval = parse_duration(mon.get("interval"), 30.0)
    since = elapsed(((isvc.get("status") or {}).get("drift") or {}).get("evaluatedAt"), now)
    return max(0.0, interval - since)


async def evaluate_if_due(ctx: Context, ns: str, name: str) -> float | None:
    evaluate = _evaluator()
    if evaluate is None:
        return None
    c = ctx.client
    isvc = await c.get(API, ISVC, ns, name)
    if isvc is None:
        return None
    now = datetime.now(UTC)
    wait = drift_due(isvc, now)
    if wait is None or (isvc.get("status") or {}).get("stableVersion") is None:
        return None
    if wait > 0:
        return wait
    isvc.setdefault("apiVersion", API)
    isvc.setdefault("kind", ISVC)
    model = isvc["spec"]["model"]
    mvs = [m for m in await c.list(API, MV, ns) if m.get("spec", {}).get("model") == model]
    pods = await c.list("v1", "Pod", ns, label_selector={labels.INFERENCE_SERVICE: name})
    decision = await evaluate(isvc, mvs, pods, ctx.settings, now)
    if decision is None:
        return parse_duration((isvc["spec"].get("monitoring") or {}).get("interval"), 30.0)
    observed = await observe(c, ns, name, bool(isvc["spec"].get("autoscaling")))
    dp = apply_decision(
        isvc,
        mvs,
        observed,
        decision,
        settings=ctx.settings,
        now=now,
        retrain_children=await retrain_children(ctx, ns, name),
    )
    await apply_drift_plan(ctx, isvc, dp, observed)
    return parse_duration((isvc["spec"].get("monitoring") or {}).get("interval"), 30.0)
