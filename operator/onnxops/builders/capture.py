"""What a serving pod needs for payload capture (InferenceService ``spec.logging``): the server's
``ONNXOPS_CAPTURE_*`` settings, its pod name, and write access to the sink (a read-write mount of a pvc://
claim, or S3 endpoint and credentials through ``pod.storage_access``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onnxops.api.v1alpha1.fromserving import FromServing
from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
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


def sink_uri(isvc: ParsedInferenceService, settings: Settings) -> str:
    """Where ``isvc``'s serving pods write the captured rows: ``spec.logging.sink.uri``, else the default."""
    log, md = isvc.spec.logging, isvc.meta
    sink = log.sink if log else None
    return (sink.uri if sink else None) or default_sink_uri(settings, md.namespace, md.name)


def sink_secret(isvc: ParsedInferenceService) -> dict[str, Any] | None:
    """``spec.logging.sink.credentialsSecret`` (a Secret reference), or None."""
    log = isvc.spec.logging
    secret = log.sink.credentials_secret if log and log.sink else None
    return secret.to_dict() if secret else None


def capture_sink(isvc: ParsedInferenceService | Mapping[str, Any], settings: Settings) -> CaptureSink | None:
    """The capture settings of the serving pods, or None when ``spec.logging`` is absent or disabled.
    ``isvc``: parsed (a dict is parsed first)."""
    isvc = ParsedInferenceService.of(isvc)
    log = isvc.spec.logging
    if log is None or not log.enabled:
        return None
    uri = sink_uri(isvc, settings)
    env: list[dict[str, Any]] = [
        {"name": "ONNXOPS_CAPTURE", "value": "true"},
        {"name": "ONNXOPS_CAPTURE_SINK_URI", "value": uri},
        {"name": "ONNXOPS_CAPTURE_SAMPLE_RATE", "value": repr(float(log.sample_rate))},
        {"name": "ONNXOPS_CAPTURE_FLUSH_INTERVAL", "value": log.flush_interval},
        {"name": "ONNXOPS_CAPTURE_MAX_ROWS_PER_FILE", "value": str(log.max_rows_per_file)},
        {"name": "ONNXOPS_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    # feedback labels go to <sink>/_labels/ (serving/feedback.py) with the retrain's target column
    target = isvc.spec.retrain.training_job.dataset.target if isvc.spec.retrain else None
    if target:
        env.append({"name": "ONNXOPS_FEEDBACK_TARGET", "value": str(target)})
    return CaptureSink(uri, sink_secret(isvc), env)


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
    fs: FromServing | None, namespace: str, settings: Settings, isvc: ParsedInferenceService | None = None
) -> list[tuple[str, dict[str, Any] | None]]:
    """For a TrainingJob with ``dataset.fromServing`` ``fs``: [(sink URI, its secret), (labels URI, its
    secret)]; the sink is ``fromServing.sinkUri``, else the service's own (``isvc``: its
    ``spec.logging.sink``, as ``sink_uri`` gives it), else the service's default location."""
    if fs is None:
        return []
    secret = fs.credentials_secret.to_dict() if fs.credentials_secret else None
    if fs.sink_uri:
        sink = fs.sink_uri
    elif isvc is not None and isvc.meta.name == fs.service:
        sink = sink_uri(isvc, settings)
        secret = secret or sink_secret(isvc)
    else:
        sink = default_sink_uri(settings, namespace, fs.service)
    out = [(str(sink), secret)]
    if fs.labels.uri:
        ref = fs.labels.credentials_secret
        out.append((fs.labels.uri, ref.to_dict() if ref else None))
    return out
