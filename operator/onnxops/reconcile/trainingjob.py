"""TrainingJob reconcile (pure): (object, observed Job and pods, registered ModelVersion) -> plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from onnxops import API_VERSION
from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason
from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.meta import ObjectMeta
from onnxops.api.v1alpha1.termination import (
    MALFORMED_REASON,
    TrainerFailure,
    TrainerSuccess,
    parse_trainer_result,
)
from onnxops.api.v1alpha1.trainingjob import ParsedTrainingJob, TrainingJobSpec, TrainingJobStatus
from onnxops.builders import job as job_builder
from onnxops.builders import labels
from onnxops.objects.compare import contains
from onnxops.settings import Settings

from .errors import describe_error, error_status
from .status import primary_metric, status_patch
from .termination import latest_typed, short, stuck_waiting

TERMINAL = ("Succeeded", "Failed")
CONTAINER = "trainer"


@dataclass
class TrainingPlan:
    status: dict[str, Any]
    status_patch: dict[str, Any]
    job: dict[str, Any] | None  # the Job to ensure (None once the training is over)
    register: dict[str, Any] | None = None  # ModelVersion body to register (name/version set at creation)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None  # look again (e.g. for the InferenceService fromServing names)


UNCHECKED: Literal["unchecked"] = "unchecked"
SERVICE_RECHECK_S = 10.0


def from_serving_service(tj: ParsedTrainingJob) -> str | None:
    """The InferenceService ``spec.dataset.fromServing`` names (None without fromServing)."""
    fs = tj.spec.dataset.from_serving
    return fs.service if fs is not None else None


def parse_service(
    service: ParsedInferenceService | Mapping[str, Any] | None,
) -> ParsedInferenceService | str | None:
    """The InferenceService ``dataset.fromServing`` names, parsed (None: not found), or why its stored spec
    does not parse (naming the field)."""
    return None if service is None else ParsedInferenceService.parse_or_problem(service)


def from_serving_problem(
    tj: ParsedTrainingJob, isvc: ParsedInferenceService | str | None
) -> tuple[str, str] | None:
    """Why a training on captured traffic cannot start: (reason, message naming the field), else None.

    ``isvc``: the InferenceService ``fromServing.service`` names (``parse_service``), None when there is
    none. A service without ``spec.logging`` captures nothing, and one whose spec does not parse has no
    sink the training can trust, unless ``fromServing.sinkUri`` names the files explicitly."""
    fs = tj.spec.dataset.from_serving
    if fs is None:
        return None
    name, ns = fs.service, tj.meta.namespace
    field_ = "spec.dataset.fromServing.service"
    if isvc is None:
        return Reason.SERVICE_NOT_FOUND, (
            f"{field_}: InferenceService {name!r} not found in namespace {ns!r}; the training starts when it "
            "exists"
        )
    if fs.sink_uri:
        return None
    if isinstance(isvc, str):
        return Reason.INVALID_SPEC, (
            f"{field_}: InferenceService {name!r} cannot be read ({isvc}), so where it captures traffic is "
            "unknown; the training starts when its spec is fixed (or name captured files with "
            "fromServing.sinkUri)"
        )
    log = isvc.spec.logging
    if log is None or not log.enabled:
        return Reason.CAPTURE_NOT_ENABLED, (
            f"{field_}: InferenceService {name!r} has no spec.logging enabled, so it captures no traffic to "
            "train on; enable it (or name captured files with fromServing.sinkUri)"
        )
    return None


def job_condition(job: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((job or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return dict(c)
    return None


def model_version_body(
    tj: ParsedTrainingJob | Mapping[str, Any],
    result: TrainerSuccess,
    settings: Settings,
    ran: TrainingJobSpec | None = None,
) -> dict[str, Any]:
    """The ModelVersion for a successful training (no ownerReference: it outlives the TrainingJob).

    ``ran``: the spec the Job actually trained with (``ran_spec``); the TrainingJob's current spec only
    when the Job cannot tell (it is gone), since edits made after the Job started never reach it."""
    tj = ParsedTrainingJob.of(tj)
    md, spec = tj.meta, ran or tj.spec
    art = result.artifact
    out_secret = spec.output.credentials_secret if spec.output else None
    artifact: dict[str, Any] = {"uri": art.uri, "sha256": art.sha256, "format": "onnx"}
    if art.size_bytes is not None:
        artifact["sizeBytes"] = art.size_bytes
    if out_secret:
        artifact["credentialsSecret"] = out_secret.to_dict()
    mv_spec: dict[str, Any] = {"model": spec.model, "artifact": artifact}
    prof = result.profile
    if prof is not None and prof.uri and prof.sha256:
        mv_spec["profile"] = {"uri": prof.uri, "sha256": prof.sha256}
    if result.signature:
        mv_spec["signature"] = result.signature
    if result.metrics:
        mv_spec["metrics"] = dict(result.metrics)
    if result.slices:  # spec.evaluation.slices / fairness of the training
        mv_spec["slices"] = result.slices
    if result.fairness:
        mv_spec["fairness"] = result.fairness
    if result.champion is not None:
        mv_spec["champion"] = result.champion
    mv_spec["lineage"] = _lineage(md, spec, result, settings)
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {
            "namespace": md.namespace,
            "labels": {
                labels.MODEL: spec.model,
                labels.TRAINING_JOB: md.name,
                labels.TRAINING_JOB_UID: md.uid,
                labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
            },
        },
        "spec": mv_spec,
    }


def _lineage(
    md: ObjectMeta, spec: TrainingJobSpec, result: TrainerSuccess, settings: Settings
) -> dict[str, Any]:
    """The ModelVersion's ``spec.lineage``: the run, the estimator trained (with a search's best
    parameters), the image and the data."""
    est = spec.estimator
    searched = result.search
    params = est.params
    if searched and isinstance(searched.get("bestParams"), dict):  # what was trained: the best found
        params = {**(params or {}), **searched["bestParams"]}
    lineage: dict[str, Any] = {
        "trainingJob": f"{md.namespace}/{md.name}",
        "estimator": {
            k: v
            for k, v in {"className": est.class_name, "params": params, "search": searched}.items()
            if v is not None
        },
        "image": (spec.template.image if spec.template else None) or settings.trainer_image,
    }
    ds = result.dataset
    lineage["dataset"] = (
        {k: v for k, v in {"uri": ds.uri, "sha256": ds.sha256, "fromServing": ds.from_serving}.items() if v}
        if ds is not None
        else {k: v for k, v in {"uri": spec.dataset.uri}.items() if v}
    )
    if result.code_version:
        lineage["codeVersion"] = result.code_version
    return lineage


def ran_spec(job: dict[str, Any] | None) -> TrainingJobSpec | None:
    """The spec a training Job runs (``job_builder.ran_spec``: its trainer's ``--spec-json``, model and
    image), typed; None when the Job cannot tell or what it tells does not parse (an older operator's
    spec): the TrainingJob's own spec stands in, as for a Job that is gone."""
    raw = job_builder.ran_spec(job)
    if raw is None:
        return None
    try:
        return TrainingJobSpec.model_validate(raw)
    except ValidationError:
        return None


FOREIGN_JOB = "WaitingForOldJob"
NOT_APPLIED = "spec changes after the training started are not applied; create a new TrainingJob"


def applied_generation(
    job: dict[str, Any] | None, desired: dict[str, Any], gen: int, old: TrainingJobStatus
) -> int:
    """The generation the running (or finished) training reflects.

    A Job's pod template is immutable: a spec edit after the Job was created is applied only when the Job
    still matches what the current spec builds (the edit touched mutable fields only, e.g. suspend);
    otherwise the generation the Job was created for (its annotation) stays observed."""
    if job is None:
        return gen
    have, want = job.get("spec") or {}, desired.get("spec") or {}
    if contains(job_builder.training_template_key(job), job_builder.training_template_key(desired)) and (
        contains(have.get("backoffLimit"), want.get("backoffLimit"))
    ):
        return gen
    ann = ((job.get("metadata") or {}).get("annotations") or {}).get(labels.GENERATION)
    try:
        return min(gen, int(str(ann)))
    except ValueError:
        return min(gen, old.observed_generation or 1)


def foreign_job(meta: ObjectMeta, job: dict[str, Any] | None) -> bool:
    """True when the Job named like ours is not controlled by this TrainingJob (e.g. a deleted and
    recreated namesake's run that garbage collection has not removed yet, or a user's Job)."""
    return job is not None and labels.controller_uid(job) != meta.uid


def foreign_job_plan(tj: ParsedTrainingJob, job: dict[str, Any], now: datetime) -> TrainingPlan:
    """Leave the foreign Job alone (its pods and artifact are not this run's); wait for it to go."""
    old, st = dict(tj.status), tj.observed
    gen = tj.meta.generation
    jmd = job.get("metadata") or {}
    message = short(
        f"Job {jmd.get('namespace', '')}/{jmd.get('name', '')} belongs to another owner "
        f"(controller uid {labels.controller_uid(job) or 'none'}); waiting for it to be deleted"
    )
    new: dict[str, Any] = {
        "phase": "Pending",
        "message": message,
        "conditions": cond.summarize(
            st.conditions_as_stored(),
            ready=False,
            reason=FOREIGN_JOB,
            message=message,
            reconciling=True,
            generation=gen,
            now=now,
        ),
    }
    events = [] if st.message == message else [("Warning", FOREIGN_JOB, message)]
    return TrainingPlan(new, status_patch(old, new), None, None, events)


def invalid_spec_plan(tj: dict[str, Any], exc: ValidationError, now: datetime) -> TrainingPlan:
    """A TrainingJob whose spec does not parse into the API's types (e.g. stored before the API refused
    what it holds): nothing is built or run; Ready=False and Stalled=True with reason InvalidSpec and a
    message naming the field and the problem (as any failed reconcile records it), and one Warning Event.
    A spec edit wakes the loop again."""
    reason, message = describe_error(exc)
    old = dict(tj.get("status") or {})
    new = {**error_status("TrainingJob", tj, reason, message, now), "message": message}
    patch = status_patch(old, new)
    return TrainingPlan(new, patch, None, None, [("Warning", reason, message)] if patch else [])


def reconcile(
    tj: ParsedTrainingJob | Mapping[str, Any],
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    registered: str | None,
    settings: Settings,
    now: datetime,
    service: ParsedInferenceService | Mapping[str, Any] | Literal["unchecked"] | None = UNCHECKED,
    champion: dict[str, Any] | None = None,
) -> TrainingPlan:
    """``registered``: name of the ModelVersion labelled with this TrainingJob's uid, if any.
    ``service``: the InferenceService ``dataset.fromServing.service`` names (None: not found), looked up
    by the caller; its sink is where the training reads, and a training that has not started waits while
    the service is missing or captures nothing. ``champion``: the champion of the champion gates
    (reconcile/champion.py), None without them.

    ``tj``: parsed at the handler boundary (``ParsedTrainingJob.parse``); a dict is parsed here."""
    tj = ParsedTrainingJob.of(tj)
    old, st = dict(tj.status), tj.observed  # the stored status (compared), and as read
    gen = tj.meta.generation
    isvc = None if isinstance(service, str) else parse_service(service)
    desired = job_builder.training_job(tj, settings, None if isinstance(isvc, str) else isvc, champion)
    events: list[tuple[str, str, str]] = []
    register = None
    terminal = st.phase == "Failed" or (st.phase == "Succeeded" and bool(st.model_version))
    if terminal or (job is None and st.phase == "Succeeded" and st.artifact is not None):
        observed_gen = min(gen, st.observed_generation or gen)  # over: later edits do nothing
    else:
        observed_gen = applied_generation(job, desired, gen, st)
    new: dict[str, Any] = {"observedGeneration": observed_gen, "jobName": desired["metadata"]["name"]}
    problem = None
    if not terminal and job is None and service != UNCHECKED:
        problem = from_serving_problem(tj, isvc)
    if terminal:
        phase: str = st.phase or "Failed"  # terminal: Succeeded or Failed
        reason = Reason.SUCCEEDED if phase == "Succeeded" else _reason_from(st)
        message = st.message or ""
        job_out = None
    elif problem is not None:  # not started: nothing to read yet; a fix (or the service) starts it
        phase, (reason, message) = "Pending", problem
        job_out = None
        if message != st.message:
            events.append(("Warning", reason, message))
    else:
        phase, reason, message, job_out, register = _job_progress(
            tj, job, desired, pods, st, new, events, registered=registered, settings=settings
        )
    if observed_gen < gen and NOT_APPLIED not in message:
        message = f"{message}; {NOT_APPLIED}" if message else NOT_APPLIED
    new["phase"] = phase
    new["message"] = message
    done = phase == "Succeeded" and bool(new.get("modelVersion") or st.model_version)
    new["conditions"] = cond.summarize(
        st.conditions_as_stored(),
        ready=done,
        reason=reason,
        message=message,
        reconciling=phase in ("Pending", "Running") or (phase == "Succeeded" and not done),
        stalled=phase == "Failed" or problem is not None,
        generation=observed_gen,
        now=now,
    )
    if phase in TERMINAL:
        new["conditions"] = cond.set_condition(
            new["conditions"],
            cond.SUCCEEDED,
            phase == "Succeeded",
            reason,
            message,
            generation=observed_gen,
            now=now,
        )
    return TrainingPlan(
        new,
        status_patch(old, new),
        job_out,
        register,
        events,
        SERVICE_RECHECK_S if problem is not None else None,
    )


def _job_progress(
    tj: ParsedTrainingJob,
    job: dict[str, Any] | None,
    desired: dict[str, Any],
    pods: list[dict[str, Any]],
    old: TrainingJobStatus,
    new: dict[str, Any],
    events: list[tuple[str, str, str]],
    *,
    registered: str | None,
    settings: Settings,
) -> tuple[str, str, str, dict[str, Any] | None, dict[str, Any] | None]:
    """(phase, reason, message, Job to ensure, ModelVersion to register) of a training under way or just
    finished; fills ``new`` (status) and ``events``."""
    jst = (job or {}).get("status") or {}
    job_out: dict[str, Any] | None = desired
    register = None
    attempts = sum(int(jst.get(k) or 0) for k in ("active", "failed", "succeeded"))
    if job is not None:
        new["attempts"] = attempts
        new["startTime"] = jst.get("startTime") or old.start_time
    complete, failed = job_condition(job, "Complete"), job_condition(job, "Failed")
    if job is None and old.phase == "Succeeded" and old.artifact is not None:
        # the Job is gone (ttlSecondsAfterFinished) before the registration: finish from status
        job_out, complete = None, {"lastTransitionTime": old.completion_time}
    if complete:
        phase, reason, message, register = _succeeded(
            tj, job, pods, old, new, events, complete, registered=registered, settings=settings
        )
    elif failed:
        phase, reason, message = _failed(tj.spec, pods, new, failed, attempts)
        events.append(("Warning", reason, message))
    elif tj.spec.suspend:
        phase, reason, message = "Suspended", Reason.SUSPENDED, "training is suspended (spec.suspend)"
    elif (stuck := stuck_waiting(pods)) is not None:
        # e.g. ImagePullBackOff, CreateContainerConfigError: the pod never starts until someone fixes it
        phase, (reason, detail) = "Pending", stuck
        message = f"{reason}: training {detail}"
        if message != old.message:
            events.append(("Warning", reason, message))
    elif int(jst.get("active") or 0) > 0:
        phase, reason, message = "Running", Reason.RUNNING, f"training (attempt {attempts})"
    else:
        phase, reason, message = "Pending", Reason.PENDING, "waiting for the training pod"
    if phase != old.phase:
        events.append(("Normal" if phase != "Failed" else "Warning", f"Training{phase}", message))
    return phase, reason, message, job_out, register


def _succeeded(
    tj: ParsedTrainingJob,
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    old: TrainingJobStatus,
    new: dict[str, Any],
    events: list[tuple[str, str, str]],
    complete: dict[str, Any],
    *,
    registered: str | None,
    settings: Settings,
) -> tuple[str, str, str, dict[str, Any] | None]:
    """The Job completed: the trainer's result into ``new`` (status), and the ModelVersion to register
    (None once ``registered``)."""
    jst = (job or {}).get("status") or {}
    found = latest_typed(pods, CONTAINER, parse_trainer_result, ok=True)
    result = found.result if isinstance(found.result, TrainerSuccess) else None
    if result is None and old.artifact is not None:
        result = _result_from_status(old)
    if result is None:
        if found.malformed:  # a JSON result that breaks the contract: say which field
            return "Failed", MALFORMED_REASON, short(found.malformed), None
        message = "the trainer succeeded but its result (termination message) could not be read"
        return "Failed", Reason.TRAINING_FAILED, message, None
    art, prof = result.artifact, result.profile
    new["artifact"] = {
        k: v
        for k, v in {
            "uri": art.uri,
            "sha256": art.sha256,
            "sizeBytes": art.size_bytes,
            "profileUri": prof.uri if prof else None,
            "profileSha256": prof.sha256 if prof else None,
        }.items()
        if v is not None
    }
    metrics = dict(result.metrics)
    new["metrics"] = metrics or None
    if result.champion is not None:  # champion gates: both scores
        new["champion"] = result.champion
    new["primaryMetric"] = primary_metric(metrics, _gates(tj.spec))
    new["completionTime"] = jst.get("completionTime") or complete.get("lastTransitionTime")
    if registered:
        new["modelVersion"] = registered
        message = f"registered ModelVersion {registered}"
        events.append(("Normal", Reason.REGISTERED, message))
        return "Succeeded", Reason.SUCCEEDED, message, None
    register = model_version_body(tj, result, settings, ran_spec(job))
    return "Succeeded", Reason.SUCCEEDED, "training succeeded; registering the ModelVersion", register


def _failed(
    spec: TrainingJobSpec,
    pods: list[dict[str, Any]],
    new: dict[str, Any],
    failed: dict[str, Any],
    attempts: int,
) -> tuple[str, str, str]:
    """The Job failed: the reason (the trainer's own, else the Job's) and message; fills ``new``."""
    found = latest_typed(pods, CONTAINER, parse_trainer_result, ok=False)
    result = found.result if isinstance(found.result, TrainerFailure) else None
    raw = found.raw
    job_reason = str(failed.get("reason") or "")
    if result is not None and result.champion is not None:  # both scores, also failed
        new["champion"] = result.champion
    if result is not None and result.metrics:  # e.g. GateNotMet: the metrics that missed
        metrics = dict(result.metrics)
        new["metrics"] = metrics
        new["primaryMetric"] = primary_metric(metrics, _gates(spec))
    if result is not None and result.reason:
        reason = result.reason
        message = f"{reason}: {short(result.message)}"
    elif found.malformed:  # a JSON result that breaks the contract: say which field
        reason, message = MALFORMED_REASON, short(found.malformed)
    elif job_reason == "DeadlineExceeded":
        reason, message = Reason.DEADLINE_EXCEEDED, f"DeadlineExceeded: {failed.get('message') or ''}"
    elif job_reason == "BackoffLimitExceeded":
        reason = Reason.BACKOFF_LIMIT_EXCEEDED
        message = f"BackoffLimitExceeded after {attempts} attempts" + (f": {short(raw)}" if raw else "")
    else:
        reason = Reason.TRAINING_FAILED
        message = f"{job_reason or 'Failed'}: {short(str(failed.get('message') or raw))}"
    if job_reason == "DeadlineExceeded" and reason != Reason.DEADLINE_EXCEEDED:
        reason, message = (
            Reason.DEADLINE_EXCEEDED,
            f"DeadlineExceeded; last trainer result: {message}",
        )
    new["completionTime"] = failed.get("lastTransitionTime")
    return "Failed", reason, message


def _result_from_status(old: TrainingJobStatus) -> TrainerSuccess | None:
    """The result recorded in status (the Job is gone before the registration), or None when status does
    not hold a complete artifact reference."""
    art = old.artifact
    if art is None:
        return None
    try:
        return TrainerSuccess.model_validate(
            {
                "artifact": {"uri": art.uri, "sha256": art.sha256, "sizeBytes": art.size_bytes},
                "metrics": old.metrics or {},
            }
        )
    except ValueError:
        return None


def _reason_from(old: TrainingJobStatus) -> str:
    return old.ready_reason() or Reason.TRAINING_FAILED


def _gates(spec: TrainingJobSpec) -> list[str] | None:
    return spec.evaluation.gates if spec.evaluation else None
