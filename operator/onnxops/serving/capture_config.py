"""Settings of payload capture (``InferenceService.spec.logging``), as server flags and environment.

Kept apart from ``config.py`` so that the capture can be configured, tested and documented on its own;
``config.parse_config`` calls ``add_arguments`` and ``from_namespace``.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from onnxops.drift.window import duration_seconds

DEFAULT_FLUSH_INTERVAL = 30.0
DEFAULT_MAX_ROWS_PER_FILE = 10_000
DEFAULT_QUEUE_ROWS = 50_000
DEFAULT_FLUSH_TIMEOUT = 8.0

# dest -> environment variable
ENV: dict[str, str] = {
    "capture": "ONNXOPS_CAPTURE",
    "capture_sink_uri": "ONNXOPS_CAPTURE_SINK_URI",
    "capture_sample_rate": "ONNXOPS_CAPTURE_SAMPLE_RATE",
    "capture_flush_interval": "ONNXOPS_CAPTURE_FLUSH_INTERVAL",
    "capture_max_rows_per_file": "ONNXOPS_CAPTURE_MAX_ROWS_PER_FILE",
    "capture_queue_rows": "ONNXOPS_CAPTURE_QUEUE_ROWS",
    "capture_flush_timeout": "ONNXOPS_CAPTURE_FLUSH_TIMEOUT",
    "pod_name": "ONNXOPS_POD_NAME",
}


class CaptureConfigError(ValueError):
    """A capture setting is malformed; the message names the flag."""


@dataclass(frozen=True)
class CaptureConfig:
    sink_uri: str
    sample_rate: float = 1.0
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    max_rows_per_file: int = DEFAULT_MAX_ROWS_PER_FILE
    queue_rows: int = DEFAULT_QUEUE_ROWS
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT
    pod: str = "server"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("payload capture (InferenceService spec.logging)")
    g.add_argument(
        "--capture",
        metavar="BOOL",
        help="capture served rows to Parquet files [ONNXOPS_CAPTURE] (default: false)",
    )
    g.add_argument(
        "--capture-sink-uri",
        help="file://, pvc:// or s3:// directory the Parquet files go to [ONNXOPS_CAPTURE_SINK_URI]",
    )
    g.add_argument(
        "--capture-sample-rate",
        help="share of requests captured, 0 < r <= 1 [ONNXOPS_CAPTURE_SAMPLE_RATE] (default: 1)",
    )
    g.add_argument(
        "--capture-flush-interval",
        help="seconds (or a duration such as 30s, 1m) between "
        "flushes [ONNXOPS_CAPTURE_FLUSH_INTERVAL] (default: 30s)",
    )
    g.add_argument(
        "--capture-max-rows-per-file",
        help="rows per Parquet file at most; a full file "
        "is flushed at once [ONNXOPS_CAPTURE_MAX_ROWS_PER_FILE] "
        f"(default: {DEFAULT_MAX_ROWS_PER_FILE})",
    )
    g.add_argument(
        "--capture-queue-rows",
        help="rows held in memory at most; beyond it rows are dropped "
        f"and counted [ONNXOPS_CAPTURE_QUEUE_ROWS] (default: {DEFAULT_QUEUE_ROWS})",
    )
    g.add_argument(
        "--capture-flush-timeout",
        help="on SIGTERM, seconds given to the last flush, after the "
        f"in-flight requests [ONNXOPS_CAPTURE_FLUSH_TIMEOUT] (default: {DEFAULT_FLUSH_TIMEOUT:g})",
    )


def _seconds(value: str, flag: str) -> float:
    try:
        s = float(value)
    except ValueError:
        try:
            s = duration_seconds(value)
        except ValueError as e:
            raise CaptureConfigError(f"--{flag}: {e}") from None
    if not s > 0:
        raise CaptureConfigError(f"--{flag}: must be > 0, got {value!r}")
    return s


def _count(value: str, flag: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise CaptureConfigError(f"--{flag}: not an integer: {value!r}") from None
    if n < 1:
        raise CaptureConfigError(f"--{flag}: must be >= 1, got {n}")
    return n


def from_namespace(ns: argparse.Namespace, env: Mapping[str, str] | None = None) -> CaptureConfig | None:
    """The capture settings (an argument wins over the environment), or None when capture is off."""
    e = os.environ if env is None else env
    raw: dict[str, str] = {}
    for dest, var in ENV.items():
        value = getattr(ns, dest, None)
        if value is None and e.get(var):
            value = e[var]
        if value is not None:
            raw[dest] = str(value)
    on = raw.get("capture", "false").strip().lower()
    if on not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        raise CaptureConfigError(f"--capture: not a boolean: {raw['capture']!r} (use true/false)")
    if on not in ("1", "true", "yes", "on"):
        return None
    sink = raw.get("capture_sink_uri", "")
    if not sink:
        raise CaptureConfigError("--capture-sink-uri (ONNXOPS_CAPTURE_SINK_URI) is required with --capture")
    if not sink.startswith(("file://", "pvc://", "s3://")):
        raise CaptureConfigError(f"--capture-sink-uri: use file://, pvc:// or s3://, got {sink[:80]!r}")
    try:
        rate = float(raw.get("capture_sample_rate", "1"))
    except ValueError:
        raise CaptureConfigError(
            f"--capture-sample-rate: not a number: {raw['capture_sample_rate']!r}"
        ) from None
    if not 0 < rate <= 1:
        raise CaptureConfigError(f"--capture-sample-rate: must be in (0, 1], got {rate}")
    per_file = _count(
        raw.get("capture_max_rows_per_file", str(DEFAULT_MAX_ROWS_PER_FILE)), "capture-max-rows-per-file"
    )
    return CaptureConfig(
        sink_uri=sink,
        sample_rate=rate,
        flush_interval=_seconds(raw.get("capture_flush_interval", "30"), "capture-flush-interval"),
        max_rows_per_file=per_file,
        queue_rows=_count(
            raw.get("capture_queue_rows", str(max(DEFAULT_QUEUE_ROWS, per_file))), "capture-queue-rows"
        ),
        flush_timeout=_seconds(
            raw.get("capture_flush_timeout", str(DEFAULT_FLUSH_TIMEOUT)), "capture-flush-timeout"
        ),
        pod=raw.get("pod_name") or e.get("HOSTNAME") or socket.gethostname() or "server",
    )
