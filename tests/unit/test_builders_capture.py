"""spec.logging reaches every served version's pods: capture settings, pod name, a writable sink."""

from __future__ import annotations

from typing import Any

import pytest
from _operator_fixtures import isvc, mv

from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec
from onnxops.builders.deployment import deployment
from onnxops.serving.config import parse_config
from onnxops.settings import PVC_MOUNT_ROOT, Settings

S = Settings()  # default store pvc://onnxops-artifacts/models
S3 = Settings(
    default_storage_uri="s3://models/onnxops",
    s3_endpoint_url="http://minio.storage:9000",
    s3_region="eu-west-1",
    default_credentials_secret="onnxops-s3",
)


def _container(d: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = d["spec"]["template"]["spec"]["containers"][0]
    return c


def _env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def test_no_logging_no_capture_settings() -> None:
    for spec in ({}, {"logging": {"enabled": False}}):
        env = _env(_container(deployment(isvc(**spec), mv(2), 1, S)))
        assert not [k for k in env if k.startswith("ONNXOPS_CAPTURE")]


@pytest.mark.parametrize("version", [1, 2])
def test_every_version_gets_the_settings_the_server_reads(version: int) -> None:
    log = {"sampleRate": 0.25, "flushInterval": "1m", "maxRowsPerFile": 500}
    InferenceServiceSpec.model_validate({"model": "iris", "logging": log})  # a valid spec
    c = _container(deployment(isvc(logging=log), mv(version), 1, S))
    env = _env(c)
    assert env["ONNXOPS_CAPTURE_SINK_URI"] == "pvc://onnxops-artifacts/models/ml/iris/traffic/"
    assert env["ONNXOPS_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # what the server makes of them (the pod name comes from the downward API)
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    cfg = parse_config([], {**plain, "ONNXOPS_POD_NAME": "iris-v2-abc"}).capture
    assert cfg is not None
    assert (cfg.sink_uri, cfg.sample_rate, cfg.flush_interval, cfg.max_rows_per_file, cfg.pod) == (
        "pvc://onnxops-artifacts/models/ml/iris/traffic/",
        0.25,
        60.0,
        500,
        "iris-v2-abc",
    )


def test_a_pvc_sink_is_mounted_read_write_even_when_the_artifacts_share_the_claim() -> None:
    m = mv(2, uri="pvc://onnxops-artifacts/models/iris/x/model.onnx")
    d = deployment(isvc(logging={}), m, 1, S)
    pod = d["spec"]["template"]["spec"]
    path = f"{PVC_MOUNT_ROOT}/onnxops-artifacts"
    mounts = [x for x in _container(d)["volumeMounts"] if x["mountPath"] == path]
    assert len(mounts) == 1 and not mounts[0].get("readOnly")
    vol = next(v for v in pod["volumes"] if v["name"] == mounts[0]["name"])
    assert vol["persistentVolumeClaim"] == {"claimName": "onnxops-artifacts"}
    # a separate claim for the sink: the artifact claim stays read-only
    d = deployment(isvc(logging={"sink": {"uri": "pvc://traffic-rwx/iris/"}}), mv(2), 1, S)
    by_path = {x["mountPath"]: x for x in _container(d)["volumeMounts"]}
    assert by_path[f"{PVC_MOUNT_ROOT}/artifacts"]["readOnly"] is True
    assert not by_path[f"{PVC_MOUNT_ROOT}/traffic-rwx"].get("readOnly")
    assert _env(_container(d))["ONNXOPS_PVC_ROOT"] == PVC_MOUNT_ROOT


def test_an_s3_sink_gets_endpoint_and_its_credentials_secret() -> None:
    sink = {"uri": "s3://traffic/ml/iris/", "credentialsSecret": {"name": "w"}}
    d = deployment(isvc(logging={"sink": sink}), mv(2), 1, S3)
    c = _container(d)
    assert _env(c)["AWS_ENDPOINT_URL"] == "http://minio.storage:9000"
    assert {"secretRef": {"name": "w"}} in c["envFrom"]
    d = deployment(isvc(logging={}), mv(2), 1, S3)  # default: the operator's S3 store and Secret
    c = _container(d)
    assert _env(c)["ONNXOPS_CAPTURE_SINK_URI"] == "s3://models/onnxops/ml/iris/traffic/"
    assert c["envFrom"] == [{"secretRef": {"name": "onnxops-s3"}}]


@pytest.mark.parametrize(
    ("logging", "field"),
    [
        ({"sampleRate": 0}, "sampleRate"),
        ({"sampleRate": 1.5}, "sampleRate"),
        ({"sink": {"uri": "https://x/y"}}, "uri"),
        ({"maxRowsPerFile": 0}, "maxRowsPerFile"),
        ({"flushInterval": "soon"}, "flushInterval"),
    ],
)
def test_bad_logging_specs_are_rejected_naming_the_field(logging: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        InferenceServiceSpec.model_validate({"model": "iris", "logging": logging})


def test_a_from_serving_training_reads_the_services_sink_and_the_labels() -> None:
    from _operator_fixtures import tj

    from onnxops.api.v1alpha1.modelversion import ModelVersionSpec
    from onnxops.api.v1alpha1.termination import TrainerSuccess
    from onnxops.builders import job
    from onnxops.reconcile.trainingjob import model_version_body

    t = tj()
    t["spec"]["dataset"] = {
        "target": "species",
        "fromServing": {"service": "iris", "window": "6h", "labels": {"uri": "pvc://labels/iris/"}},
    }
    c = _container(job.training_job(t, S))
    env = _env(c)
    assert env["ONNXOPS_FROM_SERVING_SINK_URI"] == "pvc://onnxops-artifacts/models/ml/iris/traffic/"
    # the window ends at the TrainingJob's creation: every attempt of the Job reads the same rows
    t["metadata"]["creationTimestamp"] = "2026-03-02T12:30:00Z"
    assert _env(_container(job.training_job(t, S)))["ONNXOPS_FROM_SERVING_NOW"] == "2026-03-02T12:30:00Z"
    claims = {m["mountPath"] for m in c["volumeMounts"]}
    assert {f"{PVC_MOUNT_ROOT}/labels", f"{PVC_MOUNT_ROOT}/onnxops-artifacts"} <= claims
    lineage = {
        "service": "iris",
        "sinkUri": env["ONNXOPS_FROM_SERVING_SINK_URI"],
        "windowStart": "2026-03-02T06:30:00Z",
        "windowEnd": "2026-03-02T12:30:00Z",
        "files": 3,
        "filesDigest": "f" * 64,
        "rowsCaptured": 13,
        "rowsLabelled": 7,
        "rowsUsed": 7,
        "labelsUri": "pvc://labels/iris/",
        "labelsDigest": "e" * 64,
    }
    result = {
        "artifact": {"uri": "pvc://a/m.onnx", "sha256": "a" * 64},
        "dataset": {"uri": lineage["sinkUri"], "sha256": "f" * 64, "fromServing": lineage},
    }
    body = model_version_body(t, TrainerSuccess.model_validate(result), S)
    assert body["spec"]["lineage"]["dataset"]["fromServing"] == lineage
    ModelVersionSpec.model_validate({**body["spec"], "version": 3})  # the ModelVersion API takes it


def test_a_dataset_needs_a_uri_or_from_serving() -> None:
    from onnxops.api.v1alpha1.trainingjob import Dataset

    with pytest.raises(ValueError, match="dataset needs a uri, or fromServing"):
        Dataset.model_validate({"target": "y"})
    with pytest.raises(ValueError, match=r"mix draws rows from dataset\.uri"):
        Dataset.model_validate(
            {
                "target": "y",
                "fromServing": {"service": "s", "labels": {"uri": "pvc://l/x"}, "mix": {"rowShare": 0.5}},
            }
        )
