"""Payload capture without HTTP: settings, sampling, the queue bound, the row schema, partition paths,
failed writes kept for a retry, and the capture metrics documented in docs/metrics.md."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from onnxops.serving import capture as C
from onnxops.serving.capture_config import CaptureConfig
from onnxops.serving.config import ConfigError, parse_config
from onnxops.serving.model import LoadedModel, TensorInfo
from onnxops.storage import StorageError

SHA = "ab" * 32
BASE = {
    "ONNXOPS_MODEL_NAME": "iris",
    "ONNXOPS_MODEL_URI": "file:///m/model.onnx",
    "ONNXOPS_MODEL_SHA256": SHA,
}
DOC = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")


def model(task: str = "classification", width: int = 3) -> LoadedModel:
    inputs = [TensorInfo("X", "FP32", (-1, width), np.float32)]
    if task == "classification":
        outputs = [
            TensorInfo("label", "INT64", (-1,), np.int64),
            TensorInfo("probabilities", "FP32", (-1, 2), np.float32),
        ]
    else:
        outputs = [TensorInfo("variable", "FP32", (-1, 1), np.float32)]
    m = LoadedModel("iris", "2", None, inputs, outputs, None, SHA)  # type: ignore[arg-type]
    return m


def cfg(**kw: object) -> CaptureConfig:
    return CaptureConfig(**{"sink_uri": "file:///tmp/unused", "pod": "p", **kw})  # type: ignore[arg-type]


class MemorySink:
    uri = "mem://"

    def __init__(self, fail: bool = False) -> None:
        self.files: dict[str, bytes] = {}
        self.fail = fail

    def write(self, relpath: str, data: bytes) -> None:
        if self.fail:
            raise StorageError("mem://: down")
        self.files[relpath] = data


# -- settings --------------------------------------------------------------------------------------------
def test_capture_is_off_unless_enabled_and_settings_come_from_the_environment() -> None:
    assert parse_config([], BASE).capture is None
    c = parse_config(
        [],
        {
            **BASE,
            "ONNXOPS_CAPTURE": "true",
            "ONNXOPS_CAPTURE_SINK_URI": "s3://bkt/ns/svc/traffic/",
            "ONNXOPS_CAPTURE_SAMPLE_RATE": "0.25",
            "ONNXOPS_CAPTURE_FLUSH_INTERVAL": "1m",
            "ONNXOPS_CAPTURE_MAX_ROWS_PER_FILE": "500",
            "ONNXOPS_POD_NAME": "iris-v2-x",
        },
    ).capture
    assert c is not None
    assert (c.sink_uri, c.sample_rate, c.flush_interval, c.max_rows_per_file, c.pod) == (
        "s3://bkt/ns/svc/traffic/",
        0.25,
        60.0,
        500,
        "iris-v2-x",
    )
    assert c.queue_rows >= c.max_rows_per_file
    args = parse_config(
        ["--capture", "true", "--capture-sink-uri", "file:///d", "--capture-flush-interval", "2.5"], BASE
    ).capture
    assert args is not None and args.flush_interval == 2.5


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ONNXOPS_CAPTURE_SINK_URI": ""}, "--capture-sink-uri (ONNXOPS_CAPTURE_SINK_URI) is required"),
        ({"ONNXOPS_CAPTURE": "perhaps"}, "--capture: not a boolean"),
        ({"ONNXOPS_CAPTURE_SINK_URI": "https://x/y"}, "--capture-sink-uri: use file://, pvc:// or s3://"),
        ({"ONNXOPS_CAPTURE_SAMPLE_RATE": "0"}, "--capture-sample-rate: must be in (0, 1]"),
        ({"ONNXOPS_CAPTURE_SAMPLE_RATE": "1.5"}, "--capture-sample-rate: must be in (0, 1]"),
        ({"ONNXOPS_CAPTURE_FLUSH_INTERVAL": "soon"}, "--capture-flush-interval: invalid duration"),
        ({"ONNXOPS_CAPTURE_MAX_ROWS_PER_FILE": "0"}, "--capture-max-rows-per-file: must be >= 1"),
    ],
)
def test_bad_capture_settings_name_the_flag(env: dict[str, str], message: str) -> None:
    full = {**BASE, "ONNXOPS_CAPTURE": "true", "ONNXOPS_CAPTURE_SINK_URI": "file:///d", **env}
    with pytest.raises(ConfigError) as exc:
        parse_config([], full)
    assert message in str(exc.value)


# -- request path ------------------------------------------------------------------------------------------
def _answer(m: LoadedModel, x: np.ndarray) -> list[np.ndarray]:
    label = (x[:, 0] > 0).astype(np.int64)
    p1 = (1 / (1 + np.exp(-x[:, 0]))).astype(np.float32)
    return [label, np.column_stack([1 - p1, p1])]


def test_sampling_keeps_the_share_of_requests_the_rate_asks_for() -> None:
    draws = iter([0.05, 0.5, 0.29, 0.3, 0.99, 0.1])  # kept when < 0.3: the 1st, 3rd and 6th
    c = C.Capture(cfg(sample_rate=0.3), "iris", "2", MemorySink(), random_fn=lambda: next(draws))
    m = model()
    for i in range(6):
        x = np.full((1, 3), float(i), np.float32)
        c.record(m, f"r{i}", {"X": x}, _answer(m, x), 1)
    assert [e.request_id for e in c.pending] == ["r0", "r2", "r5"] and c.captured == 3


def test_a_full_queue_drops_and_counts_instead_of_growing() -> None:
    c = C.Capture(cfg(queue_rows=10), "iris", "2", MemorySink())
    m = model()
    for i in range(8):
        x = np.zeros((3, 3), np.float32)
        c.record(m, f"r{i}", {"X": x}, _answer(m, x), 3)
    assert c.queued_rows == 9 and len(c.pending) == 3  # 3 requests of 3 rows fit in 10
    assert c.dropped["queue_full"] == 15


# -- row schema --------------------------------------------------------------------------------------------
def test_rows_of_a_batch_get_their_own_ids_and_the_outputs_of_their_row() -> None:
    m = model()
    x = np.array([[-1, 2, 3], [4, 5, 6]], np.float32)
    outs = _answer(m, x)
    one = [o[:1] for o in outs]
    t = C.build_table(
        [
            C.compact([C.Entry(1_765_000_000.5, "abc", m, {"X": x}, outs, 2)]),
            C.compact([C.Entry(1_765_000_001.0, "one", m, {"X": x[:1]}, one, 1)]),
        ]
    )
    d = t.to_pydict()
    assert t.column_names == [
        "id",
        "request_id",
        "row",
        "timestamp",
        "X_0",
        "X_1",
        "X_2",
        "prediction",
        "probabilities",
    ]
    assert d["id"] == ["abc:0", "abc:1", "one"] and d["request_id"] == ["abc", "abc", "one"]
    assert d["row"] == [0, 1, 0] and d["X_1"] == [2.0, 5.0, 2.0] and d["prediction"] == [0, 1, 0]
    assert d["timestamp"][0] == datetime(2025, 12, 6, 5, 46, 40, 500000, tzinfo=UTC)
    np.testing.assert_allclose(d["probabilities"][1], outs[1][1])


def test_regressor_rows_hold_the_value_and_no_probabilities() -> None:
    m = model("regression", 2)
    x = np.ones((2, 2), np.float32)
    value = np.array([[1.5], [2.5]], np.float32)
    t = C.build_table([C.compact([C.Entry(0.0, "r", m, {"X": x}, [value], 2)])])
    assert t.column_names == ["id", "request_id", "row", "timestamp", "X_0", "X_1", "prediction"]
    assert t.column("prediction").to_pylist() == [1.5, 2.5]


def test_feature_names_that_clash_with_the_columns_are_refused() -> None:
    from onnxops.profile import Profile, numeric_feature

    m = model("classification", 2)
    v = np.array([1.0, 2.0, 3.0])
    m.profile = Profile(
        task="classification", rows=3, features=[numeric_feature("id", 0, v), numeric_feature("b", 1, v)]
    )
    x = np.ones((1, 2), np.float32)
    with pytest.raises(ValueError, match=r"\['id'\] clash"):
        C.build_table([C.compact([C.Entry(0.0, "r", m, {"X": x}, _answer(m, x), 1)])])


def test_partition_path_is_hive_style_by_utc_hour() -> None:
    ts = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC).timestamp()
    assert C.partition_path("iris", "4", ts) == "model=iris/version=4/date=2026-03-01/hour=23"


# -- writer ------------------------------------------------------------------------------------------------
def test_files_split_by_size_and_hour_and_a_failed_write_is_retried() -> None:
    async def scenario() -> tuple[C.Capture, MemorySink]:
        sink = MemorySink(fail=True)
        hour = datetime(2026, 3, 1, 10, 59, tzinfo=UTC).timestamp()
        times = iter([hour, hour + 1, hour + 2, hour + 3, hour + 4, hour + 90])
        c = C.Capture(cfg(max_rows_per_file=4), "iris", "2", sink, clock=lambda: next(times))
        m = model()
        for i in range(6):
            x = np.full((1, 3), float(i), np.float32)
            c.record(m, f"r{i}", {"X": x}, _answer(m, x), 1)
        assert await c.flush() is False  # the sink is down: nothing lost, all queued again, in order
        assert [r for ch in c.queue for r in ch.request_ids] == [f"r{i}" for i in range(6)] and c.errors == 1
        assert c.queued_rows == 6
        assert not c.sink_up
        sink.fail = False
        assert await c.flush() is True
        return c, sink

    c, sink = asyncio.run(scenario())
    paths = sorted(sink.files)
    assert [re.sub(r"-\d{8}T\d{6}-", "-T-", p) for p in paths] == [
        "model=iris/version=2/date=2026-03-01/hour=10/p-T-000001.parquet",  # 4 rows (the maximum)
        "model=iris/version=2/date=2026-03-01/hour=10/p-T-000002.parquet",  # the 5th, last of hour 10
        "model=iris/version=2/date=2026-03-01/hour=11/p-T-000003.parquet",  # hour 11
    ]
    assert (c.written, c.files, c.queued_rows, c.sink_up) == (6, 3, 0, True)
    assert c.bytes == sum(len(v) for v in sink.files.values())


def test_close_counts_what_could_not_be_written() -> None:
    async def scenario() -> C.Capture:
        c = C.Capture(cfg(), "iris", "2", MemorySink(fail=True))
        c.start()
        m = model()
        x = np.zeros((2, 3), np.float32)
        c.record(m, "r", {"X": x}, _answer(m, x), 2)
        await c.close(timeout=0.3)
        return c

    c = asyncio.run(scenario())
    assert c.dropped["shutdown"] == 2 and c.queued_rows == 0


# -- metrics -------------------------------------------------------------------------------------------------
def capture_table() -> dict[str, tuple[str, list[str]]]:
    out = {}
    for line in DOC.split("## Payload capture", 1)[1].split("\n## ", 1)[0].splitlines():
        mm = re.match(r"^\| `(onnxops_\w+)` \| (\w+) \| ([^|]*) \|", line)
        if mm:
            out[mm[1]] = (mm[2], re.findall(r"`(\w+)`", mm[3]))
    return out


def test_capture_metrics_are_exposed_as_documented() -> None:
    c = C.Capture(cfg(), "iris", "2", MemorySink())
    reg = CollectorRegistry(auto_describe=False)
    reg.register(c)
    exposed = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        name = fam.name + ("_total" if fam.type == "counter" else "")
        exposed[name] = (fam.type, {k for s in fam.samples for k in s.labels})
    table = capture_table()
    assert set(table) == set(exposed)
    assert C.PAYLOAD_ROWS_DROPPED in table
    for name, (typ, labels) in table.items():
        assert (typ, set(labels)) == exposed[name], name


def test_rows_that_cannot_be_encoded_are_dropped_and_counted_never_raised() -> None:
    from onnxops.profile import Profile, numeric_feature

    m = model("classification", 2)
    v = np.array([1.0, 2.0, 3.0])
    m.profile = Profile(
        task="classification",
        rows=3,
        features=[numeric_feature("timestamp", 0, v), numeric_feature("b", 1, v)],
    )
    c = C.Capture(cfg(max_rows_per_file=4), "iris", "2", MemorySink())
    for i in range(10):  # every 4 rows a chunk is built on the request path: it must not raise
        x = np.ones((1, 2), np.float32)
        c.record(m, f"r{i}", {"X": x}, _answer(m, x), 1)
    assert c.dropped["unencodable"] == 8 and c.queued_rows == 2 and not c.queue
