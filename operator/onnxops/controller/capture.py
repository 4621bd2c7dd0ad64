"""``CaptureHealthy`` on the InferenceService loop: every capture flushInterval (5..60 s) while
``spec.logging`` is on, scrape the service's serving pods' /metrics and set the condition from their capture
counters (the decision: reconcile/capture_health.py). A pod that cannot be scraped is no evidence."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import aiohttp

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.servicerecord import ServiceRecord
from onnxops.builders import labels
from onnxops.reconcile import capture_health as ch
from onnxops.reconcile.status import status_patch

from .context import API, ISVC, Context
from .drift import parsed

log = logging.getLogger(__name__)
SCRAPE_TIMEOUT_S = 3.0


async def check_capture_if_due(ctx: Context, ns: str, name: str) -> float | None:
    """Seconds until the next check, or None when capture is off (the condition is then removed)."""
    from onnxops.drift.scrape import scrape

    c = ctx.client
    isvc = await ctx.read_isvc(ns, name)
    if isvc is None or isvc["metadata"].get("deletionTimestamp"):
        return None
    typed = parsed(isvc)  # a spec that does not parse is not checked (its reconcile reports it)
    if typed is None:
        return None
    status = isvc.get("status") or {}
    record = ServiceRecord.from_status(status)  # status.conditions, parsed once
    interval = ch.check_interval(typed)
    if interval is None:
        if record.condition(ch.CAPTURE_HEALTHY) is not None:
            kept = cond.remove_condition(record.conditions_as_stored(), ch.CAPTURE_HEALTHY)
            ctx.isvc_written(ns, name)
            await c.patch_status(API, ISVC, ns, name, status_patch(status, {**status, "conditions": kept}))
        return None
    key = (ns, name)
    wait = interval - (time.monotonic() - float(ctx.capture_checks.get(key, 0.0)))
    if wait > 0:
        return wait
    ctx.capture_checks.put(key, time.monotonic())
    pods = await c.list("v1", "Pod", ns, label_selector={labels.INFERENCE_SERVICE: name})
    found: list[ch.PodCapture] = []
    async with aiohttp.ClientSession() as session:
        for p in pods:
            md, ip = p["metadata"], (p.get("status") or {}).get("podIP")
            if not ip or md.get("deletionTimestamp"):
                continue
            try:
                url = f"http://{ip}:{ctx.settings.serving_port}/metrics"
                text = await scrape(session, url, SCRAPE_TIMEOUT_S)
            except RuntimeError as e:
                log.info("capture metrics of %s/%s unavailable: %s", ns, md["name"], e)
                continue
            pc = ch.parse_capture(md["name"], (md.get("labels") or {}).get(labels.VERSION, "?"), text)
            if pc is not None:
                found.append(pc)
    verdict = ch.decide(True, found)
    if verdict is not None:
        ok, reason, message = verdict
        conds = cond.set_condition(
            record.conditions_as_stored(),
            ch.CAPTURE_HEALTHY,
            ok,
            reason,
            message,
            generation=typed.meta.generation,
            now=datetime.now(UTC),
        )
        patch = status_patch(status, {**status, "conditions": conds})
        if patch:
            ctx.isvc_written(ns, name)
            await c.patch_status(API, ISVC, ns, name, patch)
    return interval
