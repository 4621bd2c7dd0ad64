"""S3 storage and the trainer against a real S3 server on 127.0.0.1 (moto's server, started here)."""

from __future__ import annotations

import hashlib
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from sklearn.datasets import load_iris

from onnxops.storage import AlreadyExists, DigestMismatch, NotFound, StorageError, put_bundle, read_bytes
from onnxops.storage.s3 import put_bundle_s3
from onnxops.trainer.__main__ import main

SECRET = "s3cr3t-Value-That-Must-Not-Leak"


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


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = "b-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket
    return client


FILES = {
    "model.onnx": b"\x08\x01onnx-bytes" * 100,
    "profile.json": b'{"rows": 1}',
    "metadata.json": b'{"m": 1}',
}


def test_put_get_and_refuse_overwrite(s3: Any) -> None:
    base = f"s3://{s3.bucket}/models/iris/run-1"
    uris = put_bundle(base, FILES)
    assert uris == {n: f"{base}/{n}" for n in FILES}
    for name, data in FILES.items():
        assert read_bytes(uris[name], hashlib.sha256(data).hexdigest()) == data
        assert s3.get_object(Bucket=s3.bucket, Key=f"models/iris/run-1/{name}")["Body"].read() == data
    with pytest.raises(AlreadyExists, match="run-1 already exists"):
        put_bundle(base + "/", {"model.onnx": b"other", "profile.json": b"{}", "metadata.json": b"{}"})
    assert read_bytes(uris["model.onnx"]) == FILES["model.onnx"]
    with pytest.raises(DigestMismatch, match=f"sha256 mismatch for {base}/model.onnx"):
        read_bytes(uris["model.onnx"], "0" * 64)
    with pytest.raises(NotFound, match=f"s3://{s3.bucket}/models/none: no such object"):
        read_bytes(f"s3://{s3.bucket}/models/none")


def _fail_marker_once(client: Any) -> list[str]:
    """Make the first PUT of metadata.json fail as if the pod died mid-upload; record PUT order."""
    order: list[str] = []

    def before_put(params: dict[str, Any], **_: Any) -> None:
        order.append(params["Key"])
        if params["Key"].endswith("metadata.json") and order.count(params["Key"]) == 1:
            raise ConnectionError("simulated crash before the marker")

    client.meta.events.register("before-parameter-build.s3.PutObject", before_put)
    return order


def test_marker_is_written_last_and_a_crashed_attempt_is_not_a_bundle(s3: Any) -> None:
    client = boto3.client("s3", region_name="us-east-1")
    order = _fail_marker_once(client)
    base = f"s3://{s3.bucket}/m/run-2"
    with pytest.raises(ConnectionError):
        put_bundle_s3(s3.bucket, "m/run-2", base, FILES, "metadata.json", s3=client)
    assert order == ["m/run-2/model.onnx", "m/run-2/profile.json", "m/run-2/metadata.json"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket, Prefix="m/run-2/").get("Contents", [])}
    assert keys == {"m/run-2/model.onnx", "m/run-2/profile.json"}  # no marker: not a bundle
    # the retry of the same run replaces the orphans and commits
    put_bundle_s3(s3.bucket, "m/run-2", base, FILES, "metadata.json", s3=client)
    assert read_bytes(f"{base}/metadata.json") == FILES["metadata.json"]


class _Http:
    status_code = 501

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}


def test_servers_without_conditional_writes_get_head_then_put(s3: Any) -> None:
    """A server that answers NotImplemented to If-None-Match: the marker is HEAD-checked instead."""
    client = boto3.client("s3", region_name="us-east-1")
    seen: list[bool] = []

    def no_conditional(params: dict[str, Any], **_: Any) -> Any:
        conditional = "If-None-Match" in params["headers"]  # the serialized request at before-call
        seen.append(conditional)
        if conditional:
            return _Http(), {
                "Error": {"Code": "NotImplemented", "Message": "If-None-Match"},
                "ResponseMetadata": {"HTTPStatusCode": 501},
            }
        return None

    client.meta.events.register("before-call.s3.PutObject", no_conditional)
    base = f"s3://{s3.bucket}/m/run-3"
    put_bundle_s3(s3.bucket, "m/run-3", base, FILES, "metadata.json", s3=client)
    assert seen == [False, False, True, False]  # data, data, conditional marker (refused), plain marker
    assert read_bytes(f"{base}/metadata.json") == FILES["metadata.json"]
    with pytest.raises(AlreadyExists):
        put_bundle_s3(s3.bucket, "m/run-3", base, FILES, "metadata.json", s3=client)


def test_concurrent_commit_loses_with_already_exists(s3: Any) -> None:
    """Another writer commits between our marker check and our marker PUT: If-None-Match refuses ours."""
    client = boto3.client("s3", region_name="us-east-1")
    base = f"s3://{s3.bucket}/m/run-4"

    def other_writer_commits(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].endswith("metadata.json") and "IfNoneMatch" in params:
            s3.put_object(Bucket=s3.bucket, Key=params["Key"], Body=b'{"other": true}')

    client.meta.events.register("before-parameter-build.s3.PutObject", other_writer_commits)
    with pytest.raises(AlreadyExists):
        put_bundle_s3(s3.bucket, "m/run-4", base, FILES, "metadata.json", s3=client)
    assert read_bytes(f"{base}/metadata.json") == b'{"other": true}'


def _run(
    tmp_path: Path, spec: dict[str, Any], output: str, run_id: str = "run-1"
) -> tuple[int, dict[str, Any]]:
    term = tmp_path / f"term-{run_id}"
    rc = main(
        [
            "--spec-json",
            json.dumps(spec),
            "--run-id",
            run_id,
            "--output-uri",
            output,
            "--termination-log",
            str(term),
        ]
    )
    return rc, json.loads(term.read_text())


def test_trainer_reads_and_writes_s3(s3: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    df = load_iris(as_frame=True).frame
    body = df.to_csv(index=False).encode()
    s3.put_object(Bucket=s3.bucket, Key="data/iris.csv", Body=body)
    sha = hashlib.sha256(body).hexdigest()
    spec = {
        "model": "iris",
        "dataset": {"uri": f"s3://{s3.bucket}/data/iris.csv", "target": "target", "sha256": sha},
        "estimator": {"className": "LogisticRegression", "params": {"max_iter": 300}},
    }
    out = f"s3://{s3.bucket}/models"
    rc, term = _run(tmp_path, spec, out)
    assert rc == 0, term
    assert term["dataset"] == {"uri": f"s3://{s3.bucket}/data/iris.csv", "sha256": sha}
    assert term["artifact"]["uri"] == f"{out}/iris/run-1/model.onnx"
    model = s3.get_object(Bucket=s3.bucket, Key="models/iris/run-1/model.onnx")["Body"].read()
    assert hashlib.sha256(model).hexdigest() == term["artifact"]["sha256"]
    prof = s3.get_object(Bucket=s3.bucket, Key="models/iris/run-1/profile.json")["Body"].read()
    assert hashlib.sha256(prof).hexdigest() == term["profile"]["sha256"]
    # same run again: refused, exit 6 (final), the stored model untouched
    spec["estimator"] = {"className": "GaussianNB"}
    rc, term = _run(tmp_path, spec, out)
    assert (rc, term["reason"]) == (6, "AlreadyExists")
    assert s3.get_object(Bucket=s3.bucket, Key="models/iris/run-1/model.onnx")["Body"].read() == model
    # parquet from S3 too
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    s3.put_object(Bucket=s3.bucket, Key="data/iris.parquet", Body=buf.getvalue())
    spec["dataset"] = {"uri": f"s3://{s3.bucket}/data/iris.parquet", "format": "parquet", "target": "target"}
    assert _run(tmp_path, spec, out, run_id="run-2")[0] == 0
    assert SECRET not in caplog.text


def test_trainer_s3_errors(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": f"s3://{s3.bucket}/data/missing.csv", "target": "y"},
        "estimator": {"className": "GaussianNB"},
    }
    rc, term = _run(tmp_path, spec, f"s3://{s3.bucket}/models")
    assert (rc, term["reason"]) == (6, "DataError")  # not found: final
    assert term["message"] == f"s3://{s3.bucket}/data/missing.csv: no such object"
    # unreachable endpoint (connection refused on 127.0.0.1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ONNXOPS_S3_MAX_ATTEMPTS", "1")
    rc, term = _run(tmp_path, spec, f"s3://{s3.bucket}/models", run_id="r2")
    assert (rc, term["reason"]) == (5, "DataError")  # unreachable: transient, the Job retries
    assert f"s3://{s3.bucket}/data/missing.csv: S3 get failed: EndpointConnectionError" in term["message"]
    assert SECRET not in json.dumps(term) and SECRET not in caplog.text


def test_s3_storage_errors_name_the_uri(s3: Any) -> None:
    with pytest.raises(StorageError, match="s3://no-such-bucket-here/x: S3 get failed: NoSuchBucket"):
        read_bytes("s3://no-such-bucket-here/x")
