"""Helpers for the drift tests against a real Prometheus (no tests here): free ports, polling, a Prometheus
process with a generated config and a 1 s scrape interval, and an independent reading of an exposition."""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from onnxops.drift import names as N
from onnxops.drift.live import LiveCounts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return bytes(r.read())


def wait(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = pred()
            if value:
                return value
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Prometheus:
    def __init__(
        self,
        tmp: Path,
        target_ports: list[int],
        model: str,
        target_labels: list[dict[str, str]] | None = None,
    ) -> None:
        """``target_labels``: per target, the labels Prometheus attaches (as Kubernetes discovery attaches
        ``namespace``); none by default."""
        self.model = model
        self.targets = len(target_ports)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = tmp / "prometheus.yml"
        labels = target_labels or [{} for _ in target_ports]
        cfg.write_text(
            json.dumps(
                {  # JSON is YAML
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "exporter",
                            "static_configs": [
                                {"targets": [f"127.0.0.1:{p}"], "labels": lab}
                                for p, lab in zip(target_ports, labels, strict=True)
                            ],
                        }
                    ],
                }
            )
        )
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait(
                lambda: self.proc.poll() is None and get(self.url + "/-/ready") is not None, 30, "prometheus"
            )
        except BaseException:
            self.stop()
            raise

    def query(self, q: str) -> list[dict]:
        body = json.loads(get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": q})))
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def _stamps(self, version: str | None = None) -> tuple[float, list[float]]:
        """(sum of rows, timestamp of each target's latest scrape) over the rows series."""
        sel = f'{N.ROWS}{{model="{self.model}"' + (f',version="{version}"' if version else "") + "}"
        total = self.query(f"sum({sel})")
        stamps = self.query(f"timestamp({sel})")
        per_target: dict[str, float] = {}
        for r in stamps:
            inst = r["metric"]["instance"]
            per_target[inst] = max(per_target.get(inst, 0.0), float(r["value"][1]))
        return (float(total[0]["value"][1]) if total else -1.0), list(per_target.values())

    def zero_window_start(self) -> float:
        """A time with, for EVERY target, a zero-valued scrape before it and another after it: a window
        starting there sees the series existing (``offset``) and nothing to extrapolate (first sample 0)."""

        def all_zero() -> list[float] | None:
            total, stamps = self._stamps()
            return stamps if total == 0 and len(stamps) == self.targets else None

        start = max(wait(all_zero, 20, "a zero scrape of every target")) + 0.01
        wait(lambda: (st := all_zero()) is not None and min(st) > start, 10, "a second zero scrape")
        return start

    def last_sample(self, total: float, version: str | None = None) -> float:
        """Timestamp of the scrape where the rows (of ``version``, one target) reached ``total``."""

        def ts() -> float | None:
            value, stamps = self._stamps(version)
            return max(stamps) if value == total and stamps else None

        return float(wait(ts, 20, f"a scrape with {total} rows", interval=0.25))

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def from_exposition(text: str, version: str) -> dict[str, object]:
    """Independent reading of the exposition: per-feature bins, categories, missing, classes, rows."""
    hist: dict[str, list[tuple[float, float]]] = {}
    out: dict[str, dict] = {"cat": {}, "miss": {}, "cls": {}, "rows": 0.0, "req": 0.0, "err": 0.0, "lat": []}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.labels.get("version") != version:
                continue
            if s.name == "onnxops_feature_value_bucket":
                hist.setdefault(s.labels["feature"], []).append((float(s.labels["le"]), s.value))
            elif s.name == "onnxops_feature_category_total":
                out["cat"].setdefault(s.labels["feature"], {})[s.labels["category"]] = s.value
            elif s.name == "onnxops_feature_missing_total":
                out["miss"][s.labels["feature"]] = s.value
            elif s.name == "onnxops_prediction_class_total":
                out["cls"][s.labels["class"]] = s.value
            elif s.name == "onnxops_request_duration_seconds_bucket":
                out["lat"].append((s.labels["le"], s.value))
            elif s.name == "onnxops_rows_total":
                out["rows"] = s.value
            elif s.name == "onnxops_requests_total":
                out["req"] += s.value
                out["err"] += s.value if s.labels["code"].startswith("5") else 0
    bins = {}
    for f, pts in hist.items():
        pts.sort()
        cum = [c for _, c in pts]
        bins[f] = [cum[0]] + [b - a for a, b in itertools.pairwise(cum)]
    return {"bins": bins, **out}


def assert_same(lc: LiveCounts, ref: dict) -> None:
    for f, bins in ref["bins"].items():
        assert list(lc.numeric[f]) == pytest.approx(bins, abs=1e-9), f
    assert set(lc.categorical) == set(ref["cat"])
    for f, cats in ref["cat"].items():
        assert dict(lc.categorical[f]) == pytest.approx(cats, abs=1e-9), f
    assert dict(lc.missing) == pytest.approx(ref["miss"], abs=1e-9)
    assert dict(lc.prediction_classes) == pytest.approx(ref["cls"], abs=1e-9)
    assert lc.rows == pytest.approx(ref["rows"], abs=1e-9)
    assert (lc.requests, lc.errors) == pytest.approx((ref["req"], ref["err"]), abs=1e-9)
