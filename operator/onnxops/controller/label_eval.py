"""``spec.monitoring.performance.source: LabelFiles``: the label-file evaluation Job on the InferenceService
loop (thin: reads the Jobs and the newest one's pods, asks ``reconcile/label_eval.py`` what to do, creates
the Job from ``builders/label_eval.py``, turns a result into one evaluation with
``drift/performance_source.from_label_job``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.builders import labels
from onnxops.builders.label_eval import label_evaluation_job
from onnxops.drift.live import Inconclusive
from onnxops.drift.performance_source import Performance, from_label_job
from onnxops.kube.apply import ensure
from onnxops.reconcile.label_eval import label_eval_step

from .context import Context


@dataclass(frozen=True)
class LabelJobResult:
    performance: Performance | Inconclusive
    job: str


async def label_files_performance(
    ctx: Context, isvc: ParsedInferenceService, now: datetime, interval_s: float, last: datetime | None
) -> LabelJobResult | float:
    """A finished evaluation Job's numbers to apply now, or the seconds until the next look; ``last``:
    when the last evaluation was applied (``status.performance.evaluatedAt``)."""
    c, md = ctx.client, isvc.meta
    ns, name = md.namespace, md.name
    jobs = await c.list("batch/v1", "Job", ns, label_selector={labels.LABEL_EVALUATION: name})
    jobs = [j for j in jobs if labels.controller_uid(j) == md.uid]
    newest = max(
        jobs,
        key=lambda j: str(((j.get("metadata") or {}).get("annotations") or {}).get(labels.WINDOW_END, "")),
        default=None,
    )
    pods: list[dict[str, Any]] = []
    if newest is not None:
        uid = newest["metadata"].get("uid")
        pods = [
            p
            for p in await c.list("v1", "Pod", ns, label_selector={labels.LABEL_EVALUATION: name})
            if labels.controller_uid(p) == uid
        ]
    step = label_eval_step(jobs, pods, last, now, interval_s)
    if step.kind == "create":
        await ensure(c, label_evaluation_job(isvc, ctx.settings, now, interval_s))
        return 2.0  # its events wake the service; this is only the fallback look
    if step.kind == "wait":
        return step.wait_s
    return LabelJobResult(from_label_job(step.result, step.failure), str(step.job))
