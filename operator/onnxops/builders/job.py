"""batch/v1 Jobs: the training Job of a TrainingJob and the verification Job of a ModelVersion."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from onnxops import API_VERSION
from onnxops.api.v1alpha1.common import PodOverrides, SecretReference
from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.meta import ObjectMeta
from onnxops.api.v1alpha1.modelversion import ParsedModelVersion
from onnxops.api.v1alpha1.trainingjob import ParsedTrainingJob, TrainingJobSpec
from onnxops.settings import TERMINATION_LOG, Settings
from onnxops.trainer.errors import FINAL_EXIT_CODES

from . import labels, names
from .capture import from_serving_access
from .pod import (
    apply_overrides,
    base_env,
    container_security_context,
    pod_security_context,
    pvc_claim,
    resources,
    storage_access,
    user_env,
    volumes_for,
)

TRAINER_COMMAND = ["python", "-m", "onnxops.trainer"]
SERVING_COMMAND = ["python", "-m", "onnxops.serving"]
VERIFY_BACKOFF_LIMIT = 1
VERIFY_DEADLINE_SECONDS = 600


def pod_failure_policy(container: str, final_exit_codes: tuple[int, ...] = ()) -> dict[str, Any]:
    """batch/v1 podFailurePolicy: fail the Job at once on an exit code no retry can fix; a pod the cluster
    disrupted (node drain, preemption, eviction: the DisruptionTarget condition) is replaced without
    counting against backoffLimit; every other failure counts (the default).

    The verifier (serving/verify.py) exits 1 on every failure, so its Job gets the disruption rule only
    (it retries once: VERIFY_BACKOFF_LIMIT)."""
    rules: list[dict[str, Any]] = []
    if final_exit_codes:
        rules.append(
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": container,
                    "operator": "In",
                    "values": sorted(final_exit_codes),
                },
            }
        )
    rules.append({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]})
    return {"rules": rules}


def output_uri(spec: TrainingJobSpec, settings: Settings) -> str:
    return spec.output.uri if spec.output else settings.default_storage_uri


CHAMPION_ENV = "ONNXOPS_CHAMPION_JSON"  # the trainer's onnxops.trainer.champion.ENV


def champion_env_value(champion: dict[str, Any]) -> str:
    """The champion for the trainer (the credentials Secret reaches it through envFrom, not here)."""
    return json.dumps(
        {k: v for k, v in champion.items() if k != "credentialsSecret"}, sort_keys=True, separators=(",", ":")
    )


def _secret(ref: SecretReference | None) -> dict[str, Any] | None:
    return ref.to_dict() if ref else None


def _owner(kind: str, md: ObjectMeta) -> dict[str, Any]:
    """The parent ``labels.owner_reference`` reads: our API version, ``kind``, name and uid."""
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": md.name, "uid": md.uid}}


def training_job(
    tj: ParsedTrainingJob | Mapping[str, Any],
    settings: Settings,
    isvc: ParsedInferenceService | Mapping[str, Any] | None = None,
    champion: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Job running the trainer for TrainingJob ``tj`` (parsed; a dict as read from the API server is
    parsed first); ``isvc``: the InferenceService that ``dataset.fromServing`` names, when found and
    parsed (a dict is parsed first; its capture sink is read); ``champion``: the resolved champion of its
    champion gates (reconcile/champion.py), read by the trainer."""
    tj = ParsedTrainingJob.of(tj)
    md, spec = tj.meta, tj.spec
    if md.uid is None:
        raise ValueError("metadata.uid is required: the training run is named by it")
    name, model = md.name, spec.model
    template = spec.template or PodOverrides()
    out = output_uri(spec, settings)
    dataset = spec.dataset
    fs = dataset.from_serving
    service = ParsedInferenceService.of(isvc) if isvc is not None else None
    served = from_serving_access(fs, md.namespace, settings, service)  # the service's sink and the labels
    champ = []
    if champion and champion.get("uri"):
        champ.append((str(champion["uri"]), champion.get("credentialsSecret")))
    volumes, mounts = volumes_for(
        [dataset.uri, out, *(u for u, _ in served), *(u for u, _ in champ)], read_only=False
    )
    pvc = len(volumes) > 1
    s3_env, env_from = storage_access(
        [
            (dataset.uri, _secret(dataset.credentials_secret)),
            (out, _secret(spec.output.credentials_secret if spec.output else None)),
            *served,
            *champ,
        ],
        settings,
    )
    if champion is not None:
        s3_env.append({"name": CHAMPION_ENV, "value": champion_env_value(champion)})
    if served:
        s3_env.append({"name": "ONNXOPS_FROM_SERVING_SINK_URI", "value": served[0][0]})
    if fs is not None and md.creation_timestamp:
        # the window ends when the TrainingJob was created: every attempt reads the same captured rows, and a
        # retry after NotEnoughLabels (exit 7) finds the labels that were still arriving for them
        s3_env.append({"name": "ONNXOPS_FROM_SERVING_NOW", "value": md.creation_timestamp})
    overrides = template.to_dict()  # the pod-level pieces shared with the serving pods (builders/pod.py)
    container: dict[str, Any] = {
        "name": "trainer",
        "image": template.image or settings.trainer_image,
        "imagePullPolicy": template.image_pull_policy or settings.image_pull_policy,
        "command": list(TRAINER_COMMAND),
        "args": [
            "--spec-json",
            # the spec as stored, not re-serialised from the model: the pod template must stay the same
            json.dumps(tj.raw_spec, sort_keys=True, separators=(",", ":")),
            "--model",
            model,
            "--run-id",
            md.uid,
            "--output-uri",
            out,
        ],
        "env": base_env(pvc) + s3_env + user_env(overrides),
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if env_from:
        container["envFrom"] = env_from
    res = resources(overrides.get("resources"), settings.trainer_resources)  # the template's, else defaults
    if res:
        container["resources"] = res
    lbl = labels.training(name, model, md.uid)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    }
    apply_overrides(pod_spec, overrides)
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "podFailurePolicy": pod_failure_policy("trainer", FINAL_EXIT_CODES),
        "suspend": spec.suspend,
        "template": {"metadata": {"labels": dict(lbl)}, "spec": pod_spec},
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    elif settings.job_deadline_seconds > 0:
        job_spec["activeDeadlineSeconds"] = settings.job_deadline_seconds
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.training_job(name),
            "namespace": md.namespace,
            "labels": lbl,
            "annotations": {labels.GENERATION: str(md.generation)},
            "ownerReferences": [labels.owner_reference(_owner("TrainingJob", md))],
        },
        "spec": job_spec,
    }


def training_template_key(job: dict[str, Any] | None) -> dict[str, Any]:
    """A training Job's pod template with the Job-control fields (suspend, deadlines: applied to the Job
    itself, see JOB_MUTABLE) removed from the trainer's ``--spec-json``: two templates with equal keys
    train the same thing."""
    tpl: dict[str, Any] = json.loads(json.dumps(((job or {}).get("spec") or {}).get("template") or {}))
    for c in (tpl.get("spec") or {}).get("containers") or []:
        args = c.get("args") or []
        if "--spec-json" in args and args.index("--spec-json") + 1 < len(args):
            i = args.index("--spec-json") + 1
            try:
                spec = json.loads(args[i])
            except ValueError:
                continue
            if isinstance(spec, dict):
                args[i] = {k: v for k, v in spec.items() if k not in JOB_CONTROL_FIELDS}
    return tpl


def _arg(args: list[Any], flag: str) -> str | None:
    i = args.index(flag) + 1 if flag in args else 0
    return str(args[i]) if 0 < i < len(args) else None


def ran_spec(job: dict[str, Any] | None) -> dict[str, Any] | None:
    """The TrainingJob spec a training Job runs (its trainer's ``--spec-json``: the spec when the Job was
    created; the pod template is immutable, so later edits of the TrainingJob never reach it), and the
    trainer's image as ``template.image``. None without a readable one."""
    for c in (((job or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
        args = c.get("args") or []
        raw = _arg(args, "--spec-json")
        if c.get("name") != "trainer" or raw is None:
            continue
        try:
            spec = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), str):
            return None
        spec["model"] = _arg(args, "--model") or spec["model"]
        if c.get("image"):
            spec["template"] = {**(spec.get("template") or {}), "image": c["image"]}
        return spec
    return None


JOB_CONTROL_FIELDS = ("suspend", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "backoffLimit")
# Fields of a Job the operator may change after creation (the pod template is immutable).
JOB_MUTABLE = (("spec", "suspend"), ("spec", "activeDeadlineSeconds"), ("spec", "ttlSecondsAfterFinished"))


def verification_job(mv: ParsedModelVersion | Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The Job running the server image with ``--verify-only`` for ModelVersion ``mv`` (parsed; a dict as
    read from the API server is parsed first).

    The expected signature travels as JSON in ``ONNXOPS_EXPECT_SIGNATURE_JSON`` (unset: load + smoke test):
    the signature as stored, not re-serialised from the model, so the Job stays the same.
    """
    mv = ParsedModelVersion.of(mv)
    md, spec = mv.meta, mv.spec
    name, model = md.name, spec.model
    art, prof = spec.artifact, spec.profile
    volumes, mounts = volumes_for([art.uri, prof.uri if prof else None], read_only=True)
    args = [
        "--verify-only",
        "--model-name",
        model,
        "--model-version",
        str(spec.version),
        "--model-uri",
        art.uri,
        "--sha256",
        art.sha256,
    ]
    if prof is not None:
        args += ["--profile-uri", prof.uri, "--profile-sha256", prof.sha256]
    secret = _secret(art.credentials_secret)
    s3_env, env_from = storage_access(
        [(art.uri, secret), (prof.uri if prof else None, secret)],
        settings,
    )
    env = base_env(len(volumes) > 1) + s3_env
    if spec.signature is not None:
        env.append(
            {
                "name": "ONNXOPS_EXPECT_SIGNATURE_JSON",
                "value": json.dumps(mv.raw_spec["signature"], sort_keys=True, separators=(",", ":")),
            }
        )
    container: dict[str, Any] = {
        "name": "verify",
        "image": settings.serving_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(SERVING_COMMAND),
        "args": args,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
    }
    if env_from:
        container["envFrom"] = env_from
    lbl = labels.verification(name, model)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.verification_job(name),
            "namespace": md.namespace,
            "labels": lbl,
            "ownerReferences": [labels.owner_reference(_owner("ModelVersion", md))],
        },
        "spec": {
            "backoffLimit": VERIFY_BACKOFF_LIMIT,
            "podFailurePolicy": pod_failure_policy("verify"),
            "activeDeadlineSeconds": VERIFY_DEADLINE_SECONDS,
            "template": {
                "metadata": {"labels": dict(lbl)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,  # the verifier never calls the API
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


__all__ = ["JOB_MUTABLE", "output_uri", "pvc_claim", "training_job", "verification_job"]
