"""Operator settings, read from the environment (the Helm chart sets these on the operator Deployment)."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from typing import Any

from onnxops import __version__

IMAGE_REPO = "ghcr.io/onnxops"
PVC_MOUNT_ROOT = "/var/lib/onnxops/pvc"  # where pods mount PVCs: <root>/<claim>
TERMINATION_LOG = "/dev/termination-log"


# Requests/limits of training pods whose TrainingJob sets no template.resources (the scheduler then knows
# what a training needs; without them the pods are BestEffort, first to be evicted under memory pressure).
DEFAULT_TRAINER_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "500m", "memory": "1Gi"},
    "limits": {"memory": "4Gi"},
}
DEFAULT_JOB_DEADLINE_SECONDS = 86400


def _resources(name: str, value: str | None) -> dict[str, Any]:
    if value is None or not value.strip():
        return copy.deepcopy(DEFAULT_TRAINER_RESOURCES)
    try:
        data = json.loads(value)
    except ValueError as e:
        raise ValueError(f"{name} must be JSON like {json.dumps(DEFAULT_TRAINER_RESOURCES)}: {e}") from None
    if (
        not isinstance(data, dict)
        or set(data) - {"requests", "limits"}
        or not all(isinstance(v, dict) for v in data.values())
    ):
        raise ValueError(f"{name} must be an object with requests and/or limits maps, got {value!r}")
    return {k: {str(q): str(n) for q, n in v.items()} for k, v in data.items()}


def _port(value: str | None, default: int) -> int:
    """ONNXOPS_SERVING_GRPC_PORT: a port number, 0 = no gRPC."""
    if value is None or not value.strip():
        return default
    try:
        n = int(value)
    except ValueError:
        msg = f"ONNXOPS_SERVING_GRPC_PORT must be a port number (0: no gRPC), got {value!r}"
        raise ValueError(msg) from None
    if not 0 <= n <= 65535:
        raise ValueError(f"ONNXOPS_SERVING_GRPC_PORT must be between 0 and 65535, got {n}")
    return n


def _non_negative_int(name: str, value: str | None, default: int) -> int:
    if value is None or not value.strip():
        return default
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of seconds (0: none), got {value!r}") from None
    if n < 0:
        raise ValueError(f"{name} must be >= 0 (0: none), got {n}")
    return n


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _optional_resources(name: str, value: str | None) -> dict[str, Any] | None:
    """A ResourceRequirements JSON object from the environment (None when unset); a clear error otherwise."""
    if value is None or not value.strip():
        return None
    try:
        parsed = json.loads(value)
    except ValueError as e:
        raise ValueError(f"{name}: not valid JSON ({e})") from None
    if (
        not isinstance(parsed, dict)
        or not set(parsed) <= {"requests", "limits"}
        or not all(isinstance(v, dict) for v in parsed.values())
    ):
        raise ValueError(f"{name}: expected an object with 'requests' and/or 'limits' maps, got {value!r}")
    return parsed


NOTIFY_FORMATS = ("JSON", "CloudEvents", "Slack")


def _notify_sinks(value: str | None) -> tuple[dict[str, Any], ...]:
    """ONNXOPS_NOTIFY_SINKS: a JSON list of {"name", "format", "events", "urlEnv"} (the chart writes it)."""
    if not value:
        return ()
    try:
        data = json.loads(value)
    except json.JSONDecodeError as e:
        raise ValueError(f"ONNXOPS_NOTIFY_SINKS: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise ValueError("ONNXOPS_NOTIFY_SINKS: expected a list of sinks")
    out = []
    for i, s in enumerate(data):
        if not isinstance(s, dict) or not s.get("urlEnv"):
            raise ValueError(f"ONNXOPS_NOTIFY_SINKS[{i}]: each sink needs urlEnv (the variable with its URL)")
        if s.get("format", "JSON") not in NOTIFY_FORMATS:
            raise ValueError(f"ONNXOPS_NOTIFY_SINKS[{i}].format: one of {', '.join(NOTIFY_FORMATS)}")
        out.append(
            {
                "name": str(s.get("name") or f"global-{i}"),
                "format": s.get("format", "JSON"),
                "events": list(s.get("events") or []),
                "urlEnv": str(s["urlEnv"]),
            }
        )
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    trainer_image: str = f"{IMAGE_REPO}/onnxops-trainer:{__version__}"
    serving_image: str = f"{IMAGE_REPO}/onnxops-serving:{__version__}"
    image_pull_policy: str = "IfNotPresent"
    # Default artifact store for TrainingJobs without spec.output (the chart's PVC).
    default_storage_uri: str = "pvc://onnxops-artifacts/models"
    # Default Prometheus for InferenceServices without monitoring.metricsSource ("" = scrape pods directly).
    prometheus_url: str = ""
    # Namespaces to watch; empty = cluster-wide.
    watch_namespaces: tuple[str, ...] = field(default_factory=tuple)
    # Serving container port.
    serving_port: int = 8080
    # Serving container port of the Open Inference Protocol's gRPC form (the port named `grpc`); 0: off.
    serving_grpc_port: int = 8081
    # S3 artifact store: endpoint and region given to pods that read or write s3:// URIs, and the Secret
    # (keys AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) used by s3:// URIs that name no credentialsSecret.
    s3_endpoint_url: str = ""
    s3_region: str = ""
    default_credentials_secret: str = ""
    # activeDeadlineSeconds of training Jobs whose TrainingJob sets none (0: no deadline): a pod stuck in
    # e.g. ImagePullBackOff ends the training after this long instead of never.
    job_deadline_seconds: int = DEFAULT_JOB_DEADLINE_SECONDS
    # Training pods' resources when the TrainingJob's template sets none.
    trainer_resources: dict[str, Any] = field(default_factory=lambda: _resources("", None))
    # Default resources of serving containers without spec.resources (ONNXOPS_SERVING_RESOURCES, JSON; the
    # chart's servingPods.resources). None: the builder's default; {} : none at all.
    serving_resources: dict[str, Any] | None = None
    # Global webhook sinks (the chart's notifications.sinks): [{"name", "format", "events", "urlEnv"}], the
    # URL itself in the environment variable urlEnv (from a Secret), never in the settings.
    notify_sinks: tuple[dict[str, Any], ...] = ()
    notify_retries: int = 5  # retries after a failed delivery (so at most 6 attempts)
    notify_backoff_seconds: float = 1.0  # the first retry's wait, doubling up to 60 s
    # Where the stable pods mirror a shadow phase's requests: the shadow's per-version Service, by DNS
    # ({service}, {namespace}, {port}); another cluster domain, or a local runtime without DNS, sets its own.
    shadow_url_template: str = "http://{service}.{namespace}.svc:{port}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        d = cls()
        return cls(
            trainer_image=e.get("ONNXOPS_TRAINER_IMAGE", d.trainer_image),
            serving_image=e.get("ONNXOPS_SERVING_IMAGE", d.serving_image),
            image_pull_policy=e.get("ONNXOPS_IMAGE_PULL_POLICY", d.image_pull_policy),
            default_storage_uri=e.get("ONNXOPS_DEFAULT_STORAGE_URI", d.default_storage_uri),
            prometheus_url=e.get("ONNXOPS_PROMETHEUS_URL", d.prometheus_url),
            watch_namespaces=_csv(e.get("ONNXOPS_WATCH_NAMESPACES", "")),
            serving_port=int(e.get("ONNXOPS_SERVING_PORT", str(d.serving_port))),
            serving_grpc_port=_port(e.get("ONNXOPS_SERVING_GRPC_PORT"), d.serving_grpc_port),
            s3_endpoint_url=e.get("ONNXOPS_S3_ENDPOINT_URL", d.s3_endpoint_url),
            s3_region=e.get("ONNXOPS_S3_REGION", d.s3_region),
            default_credentials_secret=e.get(
                "ONNXOPS_DEFAULT_CREDENTIALS_SECRET", d.default_credentials_secret
            ),
            job_deadline_seconds=_non_negative_int(
                "ONNXOPS_JOB_DEADLINE_SECONDS", e.get("ONNXOPS_JOB_DEADLINE_SECONDS"), d.job_deadline_seconds
            ),
            trainer_resources=_resources("ONNXOPS_TRAINER_RESOURCES", e.get("ONNXOPS_TRAINER_RESOURCES")),
            serving_resources=_optional_resources(
                "ONNXOPS_SERVING_RESOURCES", e.get("ONNXOPS_SERVING_RESOURCES")
            ),
            notify_sinks=_notify_sinks(e.get("ONNXOPS_NOTIFY_SINKS")),
            notify_retries=_non_negative_int(
                "ONNXOPS_NOTIFY_RETRIES", e.get("ONNXOPS_NOTIFY_RETRIES"), d.notify_retries
            ),
            notify_backoff_seconds=float(e.get("ONNXOPS_NOTIFY_BACKOFF_SECONDS") or d.notify_backoff_seconds),
            shadow_url_template=e.get("ONNXOPS_SHADOW_URL_TEMPLATE") or d.shadow_url_template,
        )
