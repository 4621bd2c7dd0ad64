"""Payload capture end to end: requests over real HTTP -> Parquet files -> read back by pandas,
pyarrow.dataset and DuckDB, compared with what the server answered; S3 sink on a real S3 server (moto's);
a broken sink; SIGTERM of the real process."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import duckdb
import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_serving_process import Proc, env_for
from test_serving_support import (
    Bundle,
    ServerThread,
    post_json,
    request,
    train_classifier,
    v2_body,
    wait_loaded,
)

from onnxops.serving.capture_config import CaptureConfig

FILE_RE = re.compile(
    r"^model=iris/version=3/date=\d{4}-\d{2}-\d{2}/hour=\d{2}/[A-Za-z0-9._-]+-\d{8}T\d{6}-\d{6}\.parquet$"
)


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_classifier(tmp_path_factory.mktemp("clf"))


def capture_cfg(sink: str, **kw: Any) -> CaptureConfig:
    return replace(CaptureConfig(sink_uri=sink, flush_interval=60.0, pod="pod-a"), **kw)


def metric(port: int, name: str, **labels: str) -> float:
    text = request(port, "GET", "/metrics")[2].decode()
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def serve_traffic(port: int, clf: Bundle) -> list[dict[str, Any]]:
    """Mixed traffic; returns one record per served row: id, features, predicted label, probabilities."""
    rng = np.random.default_rng(7)
    served: list[dict[str, Any]] = []

    def keep(rid: str, x: np.ndarray, labels: list[Any], proba: list[list[float]]) -> None:
        for i in range(len(x)):
            served.append(
                {"id": rid if len(x) == 1 else f"{rid}:{i}", "x": x[i], "label": labels[i], "proba": proba[i]}
            )

    for n, rid in ((1, "client-1"), (7, "client-batch"), (1, None), (3, None)):
        x = clf.X[rng.integers(0, 150, n)] + rng.normal(0, 0.1, (n, 4)).astype(np.float32)
        extra = {"id": rid} if rid else {}
        status, doc = post_json(port, "/v2/models/iris/infer", v2_body(x.astype(np.float32), "X", **extra))
        assert status == 200, doc
        got = doc["id"]
        assert (got == rid) if rid else re.fullmatch(r"[0-9a-f]{32}", got)
        keep(
            got,
            x.astype(np.float32),
            doc["outputs"][0]["data"],
            np.array(doc["outputs"][1]["data"]).reshape(n, -1).tolist(),
        )
    for n, hdr in ((1, "from-header"), (2, None)):
        x = clf.X[rng.integers(0, 150, n)].astype(np.float32)
        headers = {"Content-Type": "application/json", **({"X-Request-Id": hdr} if hdr else {})}
        status, h, body = request(
            port, "POST", "/v1/models/iris:predict", json.dumps({"instances": x.tolist()}), headers
        )
        doc = json.loads(body)
        assert status == 200, doc
        assert h["x-request-id"] == doc["id"] and (doc["id"] == hdr if hdr else len(doc["id"]) == 32)
        keep(doc["id"], x, doc["predictions"], doc["probabilities"])
    return served


def check_same(frame: pd.DataFrame, served: list[dict[str, Any]], names: list[str]) -> None:
    assert len(frame) == len(served)
    by_id = frame.set_index("id")
    assert sorted(by_id.index) == sorted(s["id"] for s in served)
    for s in served:
        row = by_id.loc[s["id"]]
        np.testing.assert_array_equal(row[names].to_numpy(dtype=np.float32), s["x"])
        assert int(row["prediction"]) == s["label"]
        np.testing.assert_allclose(np.asarray(row["probabilities"], dtype=np.float64), s["proba"], rtol=1e-6)
        assert str(row["model"]) == "iris" and str(row["version"]) == "3"


def test_captured_rows_read_back_equal_what_was_served(clf: Bundle, tmp_path: Path) -> None:
    sink = tmp_path / "traffic"
    with ServerThread(clf.config(capture=capture_cfg(sink.as_uri()))) as server:
        served = serve_traffic(server.port, clf)
        assert metric(server.port, "onnxops_payload_rows_captured_total") == len(served)
    files = sorted(str(p.relative_to(sink)) for p in sink.rglob("*") if p.is_file())
    assert files and all(FILE_RE.match(f) for f in files), files  # nothing temporary left behind
    names = [f.name for f in clf.profile.features]
    by_pandas = pd.read_parquet(sink)
    check_same(by_pandas, served, names)
    by_arrow = pads.dataset(sink, format="parquet", partitioning="hive").to_table().to_pandas()
    check_same(by_arrow, served, names)
    by_duck = duckdb.sql(f"SELECT * FROM read_parquet('{sink}/**/*.parquet', hive_partitioning = true)").df()
    check_same(by_duck, served, names)
    schema = pq.read_schema(sink / files[0])
    assert schema.names == ["id", "request_id", "row", "timestamp", *names, "prediction", "probabilities"]
    assert str(schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert (by_pandas["timestamp"] <= pd.Timestamp.now(tz="UTC")).all()


def test_a_full_file_is_written_without_waiting_for_the_interval(clf: Bundle, tmp_path: Path) -> None:
    sink = tmp_path / "traffic"
    cfg = clf.config(capture=capture_cfg(sink.as_uri(), max_rows_per_file=5))
    with ServerThread(cfg) as server:
        for i in range(12):
            assert (
                post_json(server.port, "/v2/models/iris/infer", v2_body(clf.X[i : i + 1], "X", id=f"r{i}"))[0]
                == 200
            )
        deadline = time.monotonic() + 20
        while metric(server.port, "onnxops_payload_rows_written_total") < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(server.port, "onnxops_payload_files_written_total") >= 2  # interval is 60 s
    files = list(sink.rglob("*.parquet"))
    counts = [pq.read_metadata(f).num_rows for f in files]
    assert sum(counts) == 12 and max(counts) <= 5


def test_sink_down_requests_succeed_rows_dropped_and_counted_memory_bounded(
    clf: Bundle, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the sink's directory should be")
    cfg = clf.config(capture=capture_cfg((blocker / "traffic").as_uri(), flush_interval=0.1, queue_rows=20))
    with ServerThread(cfg) as server:
        for i in range(60):
            assert post_json(server.port, "/v2/models/iris/infer", v2_body(clf.X[i : i + 1], "X"))[0] == 200
            assert metric(server.port, "onnxops_payload_queue_rows") <= 20
        deadline = time.monotonic() + 10
        while metric(server.port, "onnxops_payload_write_errors_total") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(server.port, "onnxops_payload_sink_up") == 0
        assert metric(server.port, "onnxops_payload_rows_dropped_total", reason="queue_full") >= 40
        assert metric(server.port, "onnxops_payload_rows_written_total") == 0
        assert metric(server.port, "onnxops_requests_total", code="200") == 60
        running = server.running
    assert running is not None and running.capture is not None
    # shutdown with the sink still down: what was held is counted, not silently lost
    c = running.capture
    assert c.queued_rows == 0 and c.dropped["shutdown"] + c.dropped["queue_full"] == 60


# -- S3 (moto's real S3 server on 127.0.0.1) ----------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_s3_sink_writes_whole_objects_readable_as_a_dataset(
    clf: Bundle, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = "capture-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]
    s3.create_bucket(Bucket=bucket)
    with ServerThread(
        clf.config(capture=capture_cfg(f"s3://{bucket}/ns/iris/traffic/", max_rows_per_file=4))
    ) as server:
        served = serve_traffic(server.port, clf)
        deadline = time.monotonic() + 20  # full files go out before the interval (60 s) and the stop
        while metric(server.port, "onnxops_payload_files_written_total") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        files_before_stop = metric(server.port, "onnxops_payload_files_written_total")
        running = server.running
    assert running is not None and running.capture is not None
    c = running.capture
    assert (c.written, c.dropped, c.errors) == (len(served), dict.fromkeys(c.dropped, 0), 0)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert files_before_stop >= 1
    assert all(
        k.startswith("ns/iris/traffic/") and FILE_RE.match(k.removeprefix("ns/iris/traffic/")) for k in keys
    ), keys
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")  # one PUT per file
    local = tmp_path / "copy"
    for k in keys:
        dest = local / k
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
    check_same(pd.read_parquet(local / "ns/iris/traffic"), served, [f.name for f in clf.profile.features])


# -- SIGTERM of the real process ------------------------------------------------------------------------
def test_sigterm_flushes_every_accepted_row(clf: Bundle, tmp_path: Path) -> None:
    sink = tmp_path / "traffic"
    p = Proc(
        env_for(
            clf,
            ONNXOPS_CAPTURE="true",
            ONNXOPS_CAPTURE_SINK_URI=sink.as_uri(),
            ONNXOPS_CAPTURE_FLUSH_INTERVAL="10m",
            ONNXOPS_POD_NAME="iris-v3-abc",
        )
    )
    try:
        assert wait_loaded(p.port)["ready"] is True
        ids = []
        for i in range(25):
            status, doc = post_json(p.port, "/v2/models/iris/infer", v2_body(clf.X[i : i + 2], "X"))
            assert status == 200
            ids += [f"{doc['id']}:0", f"{doc['id']}:1"]
        assert not list(sink.rglob("*.parquet"))  # nothing flushed yet: the interval is 10 minutes
        p.p.send_signal(signal.SIGTERM)
        assert p.p.wait(30) == 0
    finally:
        p.stop()
    files = list(sink.rglob("*.parquet"))
    assert files and all(f.name.startswith("iris-v3-abc-") for f in files)
    frame = pd.read_parquet(sink)
    assert sorted(frame["id"]) == sorted(ids)
    assert (frame.groupby("request_id").size() == 2).all() and len(frame) == 50


def test_from_serving_reads_an_s3_sink_and_s3_labels(
    clf: Bundle, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The trainer's side of the contract on S3: list the capture's objects, join labels from S3."""
    from onnxops.api.v1alpha1.trainingjob import Dataset
    from onnxops.trainer.from_serving import load_from_serving

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = "train-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]
    s3.create_bucket(Bucket=bucket)
    with ServerThread(clf.config(capture=capture_cfg(f"s3://{bucket}/ns/iris/traffic/"))) as server:
        served = serve_traffic(server.port, clf)
    truth = {s["id"]: int(s["label"]) for s in served}
    body = "id,species\n" + "".join(f"{i},{y}\n" for i, y in truth.items())
    s3.put_object(Bucket=bucket, Key="labels/part-1.csv", Body=body.encode())
    ds = Dataset.model_validate(
        {
            "target": "species",
            "fromServing": {
                "service": "iris",
                "window": "1h",
                "sinkUri": f"s3://{bucket}/ns/iris/traffic/",
                "labels": {"uri": f"s3://{bucket}/labels/"},
                "minRows": len(served),
            },
        }
    )
    table = load_from_serving(ds)
    assert len(table.frame) == len(served) and table.lineage is not None
    assert table.lineage["rowsCaptured"] == table.lineage["rowsLabelled"] == len(served)
    by_id = {s["id"]: s for s in served}
    names = [f.name for f in clf.profile.features]
    got = sorted(
        (*np.asarray(r[:4], np.float32).tolist(), int(r[4]))
        for r in table.frame[[*names, "species"]].itertuples(index=False)
    )
    want = sorted((*by_id[i]["x"].astype(np.float32).tolist(), truth[i]) for i in truth)
    assert got == want
