"""What a serving pod needs for payload capture (InferenceService ``spec.logging``): the server's
``ONNXOPS_CAPTURE_*`` settings, its pod name, and write access to the sink (a read-write mount of a pvc://
claim, or S3 endpoint and credentials through ``pod.storage_access``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onnxops.api.v1alpha1.fromserving import FromServing
from onnxops.settings import PVC_MOUNT_ROOT, Settings
from onnxops.storage import join_uri

from .pod import pvc_claim


@dataclass(frozen=True)
class CaptureSink:
    uri: str
    credentials_secret: dict[str, Any] | None
    env: list[dict[str, Any]]


def default_sink_uri(settings: Settings, namespace: str, service: str) -> str:
    """``<the operator's storage>/<namespace>/<service>/traffic/``."""
    return join_uri(settings.default_storage_uri, namespace, service, "traffic") + "/"


def sink_uri(isvc: dict[str, Any], settings: Settings) -> str:
    md, log = isvc["metadata"], isvc["spec"].get("logging") or {}
    return (log.get("sink") or {}).get("uri") or default_sink_uri(
        settings, md.get("namespace", "default"), md["name"]
    )


def capture_sink(isvc: dict[str, Any], settings: Settings) -> CaptureSink | None:
    """The capture settings of the serving pods, or None when ``spec.logging`` is absent or disabled."""
    log = isvc["spec"].get("logging")
    if log is None or not log.get("enabled", True):
        return None
    uri = sink_uri(isvc, settings)
    env: list[dict[str, Any]] = [
        {"name": "ONNXOPS_CAPTURE", "value": "true"},
        {"name": "ONNXOPS_CAPTURE_SINK_URI", "value": uri},
        {"name": "ONNXOPS_CAPTURE_SAMPLE_RATE", "value": repr(float(log.get("sampleRate", 1.0)))},
        {"name": "ONNXOPS_CAPTURE_FLUSH_INTERVAL", "value": str(log.get("flushInterval") or "30s")},
        {"name": "ONNXOPS_CAPTURE_MAX_ROWS_PER_FILE", "value": str(int(log.get("maxRowsPerFile", 10000)))},
        {"name": "ONNXOPS_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    # feedback labels go to <sink>/_labels/ (serving/feedback.py) with the retrain's target column
    tmpl = (isvc["spec"].get("retrain") or {}).get("trainingJob") or {}
    target = (tmpl.get("dataset") or {}).get("target")
    if target:
        env.append({"name": "ONNXOPS_FEEDBACK_TARGET", "value": str(target)})
    return CaptureSink(uri, (log.get("sink") or {}).get("credentialsSecret"), env)


def mount_writable(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]], uri: str) -> None:
    """Make the sink's claim (if pvc://) mounted read-write, adding it when the artifacts did not."""
    claim = pvc_claim(uri if uri.count("/") > 2 else uri + "/")
    if claim is None:
        return
    path = f"{PVC_MOUNT_ROOT}/{claim}"
    for m in mounts:
        if m["mountPath"] == path:
            m.pop("readOnly", None)
            for v in volumes:
                if v["name"] == m["name"]:
                    v["persistentVolumeClaim"].pop("readOnly", None)
            return
    name = f"pvc-{len(volumes) - 1}"
    volumes.append({"name": name, "persistentVolumeClaim": {"claimName": claim}})
    mounts.append({"name": name, "mountPath": path})


def from_serving_access(
    fs: FromServing | None, namespace: str, settings: Settings, isvc: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any] | None]]:
    """For a TrainingJob with ``dataset.fromServing`` ``fs``: [(sink URI, its secret), (labels URI, its
    secret)]; the sink is ``fromServing.sinkUri``, else the service's own (``isvc``: its
    ``spec.logging.sink``, as ``sink_uri`` gives it), else the service's default location."""
    if fs is None:
        return []
    secret = fs.credentials_secret.to_dict() if fs.credentials_secret else None
    if fs.sink_uri:
        sink = fs.sink_uri
    elif isvc is not None and (isvc.get("metadata") or {}).get("name") == fs.service:
        sink = sink_uri(isvc, settings)
        secret = secret or (((isvc.get("spec") or {}).get("logging") or {}).get("sink") or {}).get(
            "credentialsSecret"
        )
    else:
        sink = default_sink_uri(settings, namespace, fs.service)
    out = [(str(sink), secret)]
    if fs.labels.uri:
        ref = fs.labels.credentials_secret
        out.append((fs.labels.uri, ref.to_dict() if ref else None))
    return out
