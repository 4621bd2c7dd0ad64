"""The InferenceService's ``CaptureHealthy`` condition (pure): can the serving pods write what they capture?

A sink the pods cannot write (a claim mounted read-only or not ``ReadWriteMany``, wrong S3 credentials, a
missing bucket) never fails a request: each pod keeps its rows in memory up to a bound, then drops and
counts them (serving/capture.py). Without this condition that would show only in the pods' logs and
metrics. Each pod's own capture metrics (``onnxops_payload_*``, read by a direct scrape of its /metrics)
decide:

- a pod whose last write failed (``onnxops_payload_sink_up`` 0) -> ``CaptureHealthy=False``,
  ``SinkUnavailable``, naming the pods, their failed writes and dropped rows;
- else, when some pod has written rows -> ``True``, ``SinkWritable``;
- no pod with capture metrics yet, or none that tried to write -> no evidence: the condition stays as it
  was (it is removed when ``spec.logging`` is off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from onnxops.api.conditions import Reason
from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.drift import names as N

from .durations import parse_duration

CAPTURE_HEALTHY = "CaptureHealthy"
MIN_CHECK_S, MAX_CHECK_S = 5.0, 60.0
WRITABLE_HINT = "the sink must be writable from every serving pod (an S3 bucket, or a ReadWriteMany claim)"


@dataclass(frozen=True)
class PodCapture:
    """One serving pod's capture counters (as of one scrape)."""

    pod: str
    version: str
    written: float = 0.0  # rows written to the sink
    errors: float = 0.0  # failed writes
    dropped: float = 0.0  # rows dropped (every reason)
    sink_up: bool = True  # False after a failed write, until a good one


def parse_capture(pod: str, version: str, text: str) -> PodCapture | None:
    """A pod's capture counters from its /metrics exposition (summed over the pod's model/version series);
    None when the pod does not capture (no payload series)."""
    from prometheus_client.parser import text_string_to_metric_families

    seen = False
    written = errors = dropped = 0.0
    up = True
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == N.PAYLOAD_ROWS_WRITTEN:
                written += s.value
            elif s.name == N.PAYLOAD_WRITE_ERRORS:
                errors += s.value
            elif s.name == N.PAYLOAD_ROWS_DROPPED:
                dropped += s.value
            elif s.name == N.PAYLOAD_SINK_UP:
                up = up and s.value >= 1
            else:
                continue
            seen = True
    return PodCapture(pod, version, written, errors, dropped, up) if seen else None


def _n(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def decide(logging_enabled: bool, pods: Sequence[PodCapture]) -> tuple[bool, str, str] | None:
    """(status, reason, message) of ``CaptureHealthy``, or None when there is no evidence either way."""
    if not logging_enabled:
        return None
    down = sorted((p for p in pods if not p.sink_up), key=lambda p: p.pod)
    if down:
        shown = ", ".join(
            f"{p.pod} (v{p.version}: {_n(p.errors)} failed writes, {_n(p.dropped)} rows dropped)"
            for p in down[:5]
        )
        more = f" and {len(down) - 5} more" if len(down) > 5 else ""
        return (
            False,
            Reason.SINK_UNAVAILABLE,
            (
                f"{len(down)} of {len(pods)} serving pods cannot write captured rows to spec.logging.sink: "
                f"{shown}{more}; requests are answered, the rows are dropped; {WRITABLE_HINT}"
            ),
        )
    writers = [p for p in pods if p.written > 0]
    if not writers:
        return None
    rows = sum(p.written for p in writers)
    return (
        True,
        Reason.SINK_WRITABLE,
        (f"{len(writers)} of {len(pods)} serving pods wrote {_n(rows)} captured rows to spec.logging.sink"),
    )


def check_interval(isvc: ParsedInferenceService | Mapping[str, Any]) -> float | None:
    """Seconds between two checks (the capture's flushInterval, within 5..60 s); None: capture is off.
    ``isvc``: parsed (a dict is parsed here); the flush interval comes with the API's default."""
    log = ParsedInferenceService.of(isvc).spec.logging
    if log is None or not log.enabled:
        return None
    return min(MAX_CHECK_S, max(MIN_CHECK_S, parse_duration(log.flush_interval)))
