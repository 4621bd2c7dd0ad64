"""docs/metrics.md: every metric of the contract (onnxops.drift.names) and of the server is documented with
the type and labels the server really exposes (its /metrics text parsed by prometheus_client), and the
PromQL examples are valid and compute what the page says (evaluated by `promtool test rules`, i.e. the
Prometheus query engine, on hand-made series)."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from onnxops.drift import names
from onnxops.profile import (
    ClassPrediction,
    NumericPrediction,
    Profile,
    categorical_feature,
    numeric_feature,
)
from onnxops.serving import metrics as server_metrics
from onnxops.serving.drift_state import DriftState
from onnxops.serving.metrics import ServerMetrics

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")


def family_table() -> dict[str, tuple[str, list[str]]]:
    """metric -> (type, labels) from the page's families table."""
    out = {}
    for line in DOC.split("## Families", 1)[1].split("\n## ", 1)[0].splitlines():
        m = re.match(r"^\| `(onnxops_\w+)` \| (\w+) \| ([^|]*) \|", line)
        if m:
            out[m[1]] = (m[2], re.findall(r"`(\w+)`", m[3]))
    return out


def contract_names(payload: bool = False) -> list[str]:
    """The drift/SLO families of the contract module (or, with ``payload``, its payload-capture ones)."""
    return sorted(
        v
        for k, v in vars(names).items()
        if k.isupper()
        and isinstance(v, str)
        and v.startswith("onnxops_")
        and k.startswith("PAYLOAD_") == payload
    )


def test_every_contract_metric_is_documented() -> None:
    found = contract_names()
    assert len(found) == 8  # the module's families, read from the module itself
    table = family_table()
    for name in found:
        assert f"`{name}`" in DOC, name
        assert name in table, name


def test_every_payload_capture_metric_is_documented_with_the_type_the_server_exposes(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from onnxops.serving.capture import Capture
    from onnxops.serving.capture_config import CaptureConfig
    from onnxops.serving.sink import LocalSink

    section = DOC.split("## Payload capture", 1)[1].split("\n## ", 1)[0]
    table = {m[1]: m[2] for m in re.finditer(r"^\| `(onnxops_\w+)` \| (\w+) \|", section, re.M)}
    found = contract_names(payload=True)
    assert len(found) == 8
    reg = CollectorRegistry()
    reg.register(
        Capture(CaptureConfig(sink_uri=tmp_path.as_uri(), pod="p"), "m", "1", LocalSink(tmp_path.as_uri()))
    )
    exposed = {
        f.name if f.type != "counter" else f.name + "_total": f.type
        for f in text_string_to_metric_families(generate_latest(reg).decode())
    }
    for name in found:
        assert name in table and table[name] == exposed.get(name), name


def test_server_only_metrics_are_documented() -> None:
    extras = [
        server_metrics.INFERENCE_DURATION,
        server_metrics.MODEL_READY,
        server_metrics.DRIFT_PSI,
        server_metrics.DRIFT_WINDOW_ROWS,
    ]
    table = family_table()
    for name in extras:
        assert name in table, name


def _exposition(profile: Profile, feeds: np.ndarray, prediction: np.ndarray) -> str:
    m = ServerMetrics("iris", "2")
    m.ready = True
    m.drift = DriftState(profile, "input")
    m.record_request(names.PROTOCOL_V2, 200, 0.001)
    m.record_request(names.PROTOCOL_V1, 503, 0.002)
    m.record_inference(0.0005, len(feeds))
    m.drift.update({"input": feeds.astype(np.float32)}, prediction)
    return m.exposition().decode()


def exposed_families() -> dict[str, tuple[str, set[str]]]:
    """family -> (type, label names) of a real scrape: a classifier and a regressor, with a numeric and
    a categorical feature each."""
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(size=200), rng.integers(0, 3, 200)]).astype(float)
    feats = [numeric_feature("a", 0, x[:, 0]), categorical_feature("colour", 1, x[:, 1].tolist())]
    clf = Profile(
        task="classification",
        rows=200,
        features=feats,
        prediction=ClassPrediction(classes=["0", "1"], counts=[100, 100]),
    )
    reg = Profile(
        task="regression",
        rows=200,
        features=feats,
        prediction=NumericPrediction(edges=[0.0, 1.0], counts=[60, 70, 70]),
    )
    text = _exposition(clf, x[:5], np.array([0, 1, 1, 0, 1])) + _exposition(reg, x[:5], np.linspace(-1, 2, 5))
    out: dict[str, tuple[str, set[str]]] = {}
    for fam in text_string_to_metric_families(text):
        name = fam.name + ("_total" if fam.type == "counter" else "")
        labels = {k for s in fam.samples for k in s.labels if k != "le"}
        if name in out:
            assert out[name][0] == fam.type
            labels |= out[name][1]
        out[name] = (fam.type, labels)
    return out


def test_types_and_labels_match_the_server() -> None:
    exposed = exposed_families()
    table = family_table()
    assert set(table) == set(exposed)  # nothing undocumented, nothing documented that is not exposed
    for name, (typ, labels) in table.items():
        assert (typ, set(labels)) == exposed[name], name
        assert labels[:2] == ["model", "version"], name


def test_documented_latency_buckets_are_the_servers() -> None:
    line = DOC.split("Latency buckets of both duration histograms (seconds):", 1)[1].split("`+Inf`", 1)[0]
    documented = [float(v) for v in re.findall(r"[0-9.]+", line)]
    assert documented == list(server_metrics.LATENCY_BUCKETS)


# --- PromQL ----------------------------------------------------------------------------------------------


def queries() -> dict[str, str]:
    """id (the block's first comment line) -> expression."""
    out = {}
    for block in re.findall(r"```promql\n(.*?)```", DOC, flags=re.S):
        first, expr = block.split("\n", 1)
        assert first.startswith("# "), block
        assert first[2:] not in out, first
        out[first[2:].strip()] = expr.strip()
    return out


def operator_samples() -> set[str]:
    """Sample names of the operator's own registry (onnxops.controller.opmetrics)."""
    from onnxops.controller import opmetrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {f.name + x for f in opmetrics.REGISTRY.collect() for x in suffixes[f.type]}


def test_operator_metrics_are_documented_with_their_type_and_labels() -> None:
    from onnxops.controller import opmetrics

    section = DOC.split("## Operator metrics", 1)[1]
    rows = {
        m[1]: (m[2], re.findall(r"`(\w+)`", m[3]))
        for m in re.finditer(r"^\| `(onnxops_operator_\w+)` \| (\w+) \| ([^|]*) \|", section, re.M)
    }
    families = list(opmetrics.REGISTRY.collect())
    assert len(families) == 8
    for f in families:
        name = f.name + ("_total" if f.type == "counter" else "")
        assert name in rows, name
        assert rows[name][0] == f.type, name
        labels = {
            lbl
            for metric in opmetrics.REGISTRY._names_to_collectors.values()
            if getattr(metric, "_name", None) == f.name
            for lbl in metric._labelnames
        }
        assert set(rows[name][1]) == labels, name


def test_queries_use_exposed_series_only() -> None:
    exposed = exposed_families()
    samples = set()
    for name, (typ, _) in exposed.items():
        samples |= {name + s for s in ("_bucket", "_sum", "_count")} if typ == "histogram" else {name}
    samples |= operator_samples()
    for qid, expr in queries().items():
        used = set(re.findall(r"\bonnxops_\w+", expr))
        assert used and used <= samples, (qid, used - samples)


def promtool(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_every_query_parses(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "doc",
                "rules": [
                    {"record": f"doc:{qid.replace('-', '_')}", "expr": expr}
                    for qid, expr in queries().items()
                ],
            }
        ]
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    result = promtool(tmp_path, "check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


NS = 'namespace="prod",model="iris"'
# Counters as Prometheus would scrape them once a minute for 10 minutes: '0+60x10' grows by 60 a minute,
# i.e. rate() = 1/s. Expected values below are worked out by hand from these slopes.
SERIES = {
    # traffic: v1 90/min (1.5/s), v2 10/min; v1 has 5xx (6/min of its 90), v2 only 200s and 4xx
    f'onnxops_requests_total{{{NS},version="1",protocol="v2",code="200"}}': "0+84x10",
    f'onnxops_requests_total{{{NS},version="1",protocol="v2",code="503"}}': "0+6x10",
    f'onnxops_requests_total{{{NS},version="2",protocol="v2",code="200"}}': "0+8x10",
    f'onnxops_requests_total{{{NS},version="2",protocol="v1",code="422"}}': "0+2x10",
    # v1 latency: half the requests <= 1 ms, all <= 10 ms
    f'onnxops_request_duration_seconds_bucket{{{NS},version="1",protocol="v2",le="0.001"}}': "0+45x10",
    f'onnxops_request_duration_seconds_bucket{{{NS},version="1",protocol="v2",le="0.01"}}': "0+90x10",
    f'onnxops_request_duration_seconds_bucket{{{NS},version="1",protocol="v2",le="+Inf"}}': "0+90x10",
    f'onnxops_request_duration_seconds_sum{{{NS},version="1",protocol="v2"}}': "0+0.45x10",
    f'onnxops_request_duration_seconds_count{{{NS},version="1",protocol="v2"}}': "0+90x10",
    # feature a of v1: 30% <= 1, 80% <= 2
    f'onnxops_feature_value_bucket{{{NS},version="1",feature="petal_length",le="1.0"}}': "0+30x10",
    f'onnxops_feature_value_bucket{{{NS},version="1",feature="petal_length",le="2.0"}}': "0+80x10",
    f'onnxops_feature_value_bucket{{{NS},version="1",feature="petal_length",le="+Inf"}}': "0+100x10",
    f'onnxops_feature_value_count{{{NS},version="1",feature="petal_length"}}': "0+100x10",
    f'onnxops_feature_missing_total{{{NS},version="1",feature="petal_length"}}': "0+10x10",
    f'onnxops_rows_total{{{NS},version="1"}}': "0+100x10",
    f'onnxops_prediction_class_total{{{NS},version="1",class="setosa"}}': "0+25x10",
    f'onnxops_prediction_class_total{{{NS},version="1",class="virginica"}}': "0+75x10",
    # the PSI gauge of two pods of v1: one without rows in its window (NaN), one with 0.5
    f'onnxops_drift_psi{{{NS},version="1",feature="petal_length",pod="a"}}': " ".join(["NaN"] * 11),
    f'onnxops_drift_psi{{{NS},version="1",feature="petal_length",pod="b"}}': "0.5+0x10",
}
V1 = '{namespace="prod",model="iris",version="1"}'
V2 = '{namespace="prod",model="iris",version="2"}'
EXPECTED: dict[str, list[tuple[str, float]]] = {
    "requests-per-version": [(V1, 1.5), (V2, 10 / 60)],
    "traffic-share": [(V1, 0.9), (V2, 0.1)],
    "rows-per-version": [(V1, 100 / 60)],
    # rank 0.99 * 90 = 89.1 lies in (0.001, 0.01] holding 45 of them: 0.001 + 0.009 * (89.1 - 45) / 45
    "p99-latency": [(V1, 0.001 + 0.009 * (89.1 - 45) / 45)],
    "mean-latency": [(V1, 0.45 / 90)],
    "error-rate": [(V1, 6 / 90)],
    "error-rate-or-zero": [(V1, 6 / 90), (V2, 0.0)],
    "client-error-rate": [(V2, 0.2)],
    "feature-cdf": [
        (V1[:-1] + ',le="1.0"}', 0.3),
        (V1[:-1] + ',le="2.0"}', 0.8),
        (V1[:-1] + ',le="+Inf"}', 1.0),
    ],
    "class-share": [(V1[:-1] + ',class="setosa"}', 0.25), (V1[:-1] + ',class="virginica"}', 0.75)],
    "missing-share": [(V1[:-1] + ',feature="petal_length"}', 0.1)],
    "server-psi": [(V1[:-1] + ',feature="petal_length"}', 0.5)],
}


# promtool compares sample values exactly; both sides are rounded to STEP the way PromQL's round() does it.
STEP = 1e-9


def rounded(value: float) -> float:
    inverse = 1.0 / STEP
    return math.floor(value * inverse + 0.5) / inverse


@needs_promtool
def test_queries_compute_what_the_page_says(tmp_path: Path) -> None:
    found = queries()
    assert set(EXPECTED) <= set(found)
    tests = [
        {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
            "promql_expr_test": [
                {
                    "expr": f"round(({found[qid]}), {STEP})",
                    "eval_time": "10m",
                    "exp_samples": [{"labels": labels, "value": rounded(value)} for labels, value in samples],
                }
                for qid, samples in EXPECTED.items()
            ],
        }
    ]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({"rule_files": [], "tests": tests}, sort_keys=False))
    result = promtool(tmp_path, "test", "rules", "test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_check_is_not_vacuous(tmp_path: Path) -> None:
    """A wrong expectation fails, so a pass above means the values were compared."""
    tests = [
        {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
            "promql_expr_test": [
                {
                    "expr": queries()["error-rate"],
                    "eval_time": "10m",
                    "exp_samples": [{"labels": V1, "value": 0.07}],
                }
            ],
        }
    ]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({"rule_files": [], "tests": tests}))
    result = promtool(tmp_path, "test", "rules", "test.yaml")
    assert result.returncode != 0
    assert "exp:" in result.stderr and "got:" in result.stderr, result.stderr  # a value mismatch
