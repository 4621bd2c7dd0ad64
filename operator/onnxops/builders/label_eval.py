"""The label-file evaluation Job of an InferenceService (``spec.monitoring.performance.source: LabelFiles``).

One Job per evaluation, from the trainer image: ``python -m onnxops.trainer.evaluate_labels`` joins the label
files with the rows the service captured in the window ending at the Job's window end and writes the
per-version numbers to its termination message (docs/feedback.md). The operator reads that message like
the training Job's (``reconcile/label_eval.py``). Finished Jobs are removed by ``ttlSecondsAfterFinished``
(the operator never deletes them); the owner reference removes the rest with the service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.performance import PerformanceSpec
from onnxops.settings import TERMINATION_LOG, Settings

from . import labels, names
from .capture import sink_secret, sink_uri
from .job import pod_failure_policy
from .pod import base_env, container_security_context, pod_security_context, storage_access, volumes_for

COMMAND = ["python", "-m", "onnxops.trainer.evaluate_labels"]
CONTAINER = "evaluate"
DEADLINE_SECONDS = 600
TTL_MIN_SECONDS = 300  # finished Jobs stay this long at least (kubectl describe), or 3 intervals


def window_end_rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def label_evaluation_job(
    isvc: ParsedInferenceService, settings: Settings, window_end: datetime, interval_s: float
) -> dict[str, Any]:
    """The Job evaluating ``isvc``'s label files against its captured rows for the window ending at
    ``window_end`` (whole seconds: the Job's name carries it). ``isvc``: parsed at the handler boundary;
    window and metric come with the API's defaults."""
    md, spec = isvc.meta, isvc.spec
    perf = (spec.monitoring.performance if spec.monitoring else None) or PerformanceSpec()
    files = perf.label_files  # admission requires it with source LabelFiles
    files_uri = files.uri if files else None
    files_secret = files.credentials_secret.to_dict() if files and files.credentials_secret else None
    sink = sink_uri(isvc, settings)
    end = window_end.astimezone(UTC).replace(microsecond=0)
    volumes, mounts = volumes_for([sink, files_uri], read_only=True)
    s3_env, env_from = storage_access([(sink, sink_secret(isvc)), (files_uri, files_secret)], settings)
    args = [
        "--sink-uri",
        sink,
        "--labels-uri",
        str(files_uri),
        "--target",
        str(files.target if files else None),
        "--window",
        perf.window,
        "--now",
        window_end_rfc3339(end),
        "--task",
        "regression" if perf.metric in ("mae", "rmse") else "classification",
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.trainer_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(COMMAND),
        "args": args,
        "env": base_env(len(volumes) > 1) + s3_env,
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
    }
    if env_from:
        container["envFrom"] = env_from
    lbl = labels.label_evaluation(md.name, spec.model)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.label_evaluation_job(md.name, int(end.timestamp())),
            "namespace": md.namespace,
            "labels": lbl,
            "annotations": {labels.WINDOW_END: window_end_rfc3339(end)},
            "ownerReferences": [labels.owner_of("InferenceService", md)],
        },
        "spec": {
            "backoffLimit": 0,  # the next interval evaluates again
            "podFailurePolicy": pod_failure_policy(CONTAINER),
            "activeDeadlineSeconds": DEADLINE_SECONDS,
            "ttlSecondsAfterFinished": int(max(TTL_MIN_SECONDS, 3 * interval_s)),
            "template": {
                "metadata": {"labels": dict(lbl)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,  # the evaluation never calls the API
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
