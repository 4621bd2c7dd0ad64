"""The label-file evaluation's step (pure): create the next evaluation Job, wait for the running one, or
hand over the finished one's result (``spec.monitoring.performance.source: LabelFiles``).

State lives in the API only: each Job carries the end of its window (annotation, and in its name), and
``status.performance.evaluatedAt`` says when a result was last applied. A finished Job whose window ended
after that time has not been applied yet (a crash between the Job's end and the status write applies it at
the next reconcile; a result is never applied twice: the write sets ``evaluatedAt`` after the window end).
The next Job is created one ``monitoring.interval`` after the newest window end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from onnxops.builders import labels

from .rollout import parse_time
from .termination import latest_result, scrub, short

RECHECK_S = 5.0  # while a Job runs (its events wake the service sooner)


@dataclass(frozen=True)
class LabelEvalStep:
    kind: Literal["create", "wait", "evaluate"]
    wait_s: float = 0.0
    job: str | None = None  # evaluate: the finished Job
    result: dict[str, Any] | None = None  # evaluate: its termination message
    failure: tuple[str, str] | None = None  # evaluate: (reason, message) when it left no result


def window_end(job: Mapping[str, Any]) -> datetime | None:
    md = job.get("metadata") or {}
    return parse_time((md.get("annotations") or {}).get(labels.WINDOW_END)) or parse_time(
        md.get("creationTimestamp")
    )


def finished(job: Mapping[str, Any]) -> Literal["Complete", "Failed"] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
            return "Complete" if c["type"] == "Complete" else "Failed"
    return None


def _failure(job: Mapping[str, Any], raw: str) -> tuple[str, str]:
    cond: Mapping[str, Any] = next(
        (
            c
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("type") == "Failed" and c.get("status") == "True"
        ),
        {},
    )
    why = raw or cond.get("message") or "the evaluation Job failed without a result"
    return str(cond.get("reason") or "LabelEvaluationFailed"), short(scrub(str(why)), 500)


def label_eval_step(
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    last_evaluated: datetime | None,
    now: datetime,
    interval_s: float,
) -> LabelEvalStep:
    """``jobs``: the service's evaluation Jobs; ``pods``: the pods of the newest one."""
    dated = [(w, j) for j in jobs if (w := window_end(j)) is not None]
    if not dated:
        return LabelEvalStep("create")
    end, newest = max(dated, key=lambda t: t[0])
    state = finished(newest)
    if state is None:
        return LabelEvalStep("wait", RECHECK_S)
    if last_evaluated is None or end > last_evaluated:
        name = str((newest.get("metadata") or {}).get("name"))
        result, raw = latest_result([dict(p) for p in pods], "evaluate")
        if result is not None:
            return LabelEvalStep("evaluate", job=name, result=result)
        return LabelEvalStep("evaluate", job=name, failure=_failure(newest, raw))
    due = end + timedelta(seconds=interval_s)
    if now >= due:
        return LabelEvalStep("create")
    return LabelEvalStep("wait", (due - now).total_seconds())
