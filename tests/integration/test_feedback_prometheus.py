"""The performance source against a REAL Prometheus scraping real servers: per-version accuracy and macro-F1
from ``sum by (version, truth, predicted) (increase(...))``, scoped by namespace and InferenceService, equal
scikit-learn's on the labelled rows, whichever replica received the labels."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.metrics import accuracy_score, f1_score
from test_drift_prometheus_support import Prometheus, wait
from test_serving_support import Bundle, ServerThread, post_json, train_classifier, v2_body

from onnxops.drift.performance import accuracy, macro_f1
from onnxops.drift.performance_source import Performance, fetch_performance_prometheus
from onnxops.drift.prometheus import scope_matchers

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed"),
]


def test_prometheus_gives_the_per_version_numbers_of_one_service(tmp_path: Path) -> None:
    clf: Bundle = train_classifier(tmp_path / "clf")
    _, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(5)
    cfg = [("team-a", "1"), ("team-a", "2"), ("team-b", "1")]  # team-b serves an iris of the same name
    servers = [ServerThread(clf.config(model_version=v, inference_service="iris")) for _, v in cfg]
    for s in servers:
        s.__enter__()
    prom = None
    try:
        prom = Prometheus(
            tmp_path, [s.port for s in servers], "iris", target_labels=[{"namespace": ns} for ns, _ in cfg]
        )
        rows: dict[str, list[tuple[str, str]]] = {"1": [], "2": []}
        for n, ((ns, ver), srv) in enumerate(zip(cfg, servers, strict=True)):
            idx = rng.integers(0, 150, 40)
            st, doc = post_json(
                srv.port, "/v2/models/iris/infer", v2_body(clf.X[idx].astype(np.float32), "X", id=f"r{n}")
            )
            assert st == 200
            pred = doc["outputs"][0]["data"]
            truth = [int((y[j] + (1 if ver == "2" and i % 3 == 0 else 0)) % 3) for i, j in enumerate(idx)]
            items: list[dict[str, Any]] = [
                {"id": f"r{n}:{i}", "truth": truth[i], "version": ver, "prediction": pred[i]}
                for i in range(40)
            ]
            if ns == "team-b":  # other team's labels (all wrong) must not leak into team-a's numbers
                items = [dict(it, truth=(int(it["prediction"]) + 1) % 3) for it in items]
            else:
                rows[ver] += [(str(t), str(p)) for t, p in zip(truth, pred, strict=True)]
            other = servers[(n + 1) % 2] if ns == "team-a" else srv  # team-a: the other replica
            st, got = post_json(other.port, "/v2/models/iris/feedback", items)
            assert st == 200 and got["accepted"] == 40

        def scraped() -> bool:
            r = prom.query('sum(onnxops_feedback_labels_total{model="iris"})')  # type: ignore[union-attr]
            return bool(r) and float(r[0]["value"][1]) == 120

        wait(scraped, 20, "the labels in Prometheus")
        perf = asyncio.run(
            fetch_performance_prometheus(
                prom.url, "iris", "10m", extra_matchers=scope_matchers("team-a", "iris")
            )
        )
        assert isinstance(perf, Performance), perf
        assert set(perf.versions) == {"1", "2"}
        for ver in ("1", "2"):
            t, p = [r[0] for r in rows[ver]], [r[1] for r in rows[ver]]
            pc = perf.versions[ver]
            assert pc.n == len(t) == 40
            assert accuracy(pc.confusion) == pytest.approx(accuracy_score(t, p), abs=1e-9)
            assert macro_f1(pc.confusion) == pytest.approx(f1_score(t, p, average="macro"), abs=1e-9)
        down = asyncio.run(fetch_performance_prometheus("http://127.0.0.1:9", "iris", "10m"))
        assert not isinstance(down, Performance) and down.reason == "PrometheusUnavailable"
    finally:
        if prom is not None:
            prom.stop()
        for s in servers:
            s.__exit__(None, None, None)
