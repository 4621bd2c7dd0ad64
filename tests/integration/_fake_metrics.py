"""A MetricsProvider for the operator tests: per-version request stats read from a JSON file named by
$ONNXOPS_FAKE_METRICS ({"<version>" or "<service>/<version>": [requests, errors, p99_ms]}, the service's
own entry first); versions not listed look healthy."""

from __future__ import annotations

import json
import os
from pathlib import Path

from onnxops.reconcile.analysis import RequestStats

HEALTHY = (100.0, 0.0, 5.0)


class FakeMetrics:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def request_stats(
        self, *, namespace: str, service: str, model: str, version: int, window_seconds: float
    ) -> RequestStats | None:
        self.calls.append((service, version))
        path = os.environ.get("ONNXOPS_FAKE_METRICS", "")
        table = json.loads(Path(path).read_text()) if path and Path(path).exists() else {}
        req, err, p99 = table.get(f"{service}/{version}", table.get(str(version), HEALTHY))
        return RequestStats(float(req), float(err), float(p99))


provider = FakeMetrics()
