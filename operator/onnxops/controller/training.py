"""Reconcile-and-apply for TrainingJobs and ModelVersions: read, decide (pure), write only what changed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason, now_rfc3339
from onnxops.api.v1alpha1.inferenceservice import ParsedInferenceService
from onnxops.api.v1alpha1.meta import ObjectMeta
from onnxops.api.v1alpha1.modelversion import ParsedModelVersion
from onnxops.api.v1alpha1.trainingjob import ChampionRef, ParsedTrainingJob, TrainingJobStatus
from onnxops.builders import job as job_builder
from onnxops.builders import labels, names
from onnxops.kube import events
from onnxops.kube.apply import ensure
from onnxops.kube.client import ApiError
from onnxops.kube.protocol import KubeApi
from onnxops.reconcile import champion as champion_rules
from onnxops.reconcile import modelversion as mvr
from onnxops.reconcile import notifications, registry
from onnxops.reconcile import trainingjob as tjr
from onnxops.reconcile.inferenceservice import served_versions
from onnxops.reconcile.status import status_patch
from onnxops.reconcile.versions import next_version

from .context import API, ISVC, MV, TJ, Context
from .governance import ensure_model

log = logging.getLogger(__name__)
MAX_REGISTER_TRIES = 50


def _now() -> datetime:
    return datetime.now(UTC)


async def register_model_version(client: KubeApi, body: dict[str, Any]) -> str:
    """Create ``<model>-v<N>`` for a training run exactly once, also with several operator processes at once:
    N is claimed for the run in the model's version counter (reconcile/registry.py) with the counter's
    resourceVersion as a precondition, then the ModelVersion is created; a 409 for a ModelVersion of the
    same run is success, a 409 from another run's ModelVersion claims a new number."""
    md = body["metadata"]
    ns, uid, model = md["namespace"], md["labels"][labels.TRAINING_JOB_UID], body["spec"]["model"]
    taken: set[int] = set()
    for _ in range(MAX_REGISTER_TRIES):
        mine = await client.list(API, MV, ns, label_selector={labels.TRAINING_JOB_UID: uid})
        if mine:
            return str(sorted(m["metadata"]["name"] for m in mine)[0])
        counter = await client.get("v1", "ConfigMap", ns, names.version_counter(model))
        floor = next_version(await client.list(API, MV, ns), model) - 1
        c = registry.claim((counter or {}).get("data"), uid, floor, taken)
        if c.data is not None:
            try:
                if counter is None:
                    await client.create(registry.counter_body(ns, model, c.data))
                else:
                    rv = counter["metadata"]["resourceVersion"]
                    await client.merge_patch(
                        "v1",
                        "ConfigMap",
                        ns,
                        counter["metadata"]["name"],
                        {"metadata": {"resourceVersion": rv}, "data": c.data},
                    )
            except ApiError as e:
                if e.status != 409:
                    raise
                continue  # another writer was first: read the counter again
        name = names.model_version(model, c.version)
        obj = {**body, "metadata": {**md, "name": name}, "spec": {**body["spec"], "version": c.version}}
        try:
            created = await client.create(obj)
            return str(created["metadata"]["name"])
        except ApiError as e:
            if e.status != 409:
                raise
        if registry.owner_uid(await client.get(API, MV, ns, name)) == uid:
            return name  # another operator process registered this run first
        taken.add(c.version)
    raise RuntimeError(f"could not register a version of {model} after {MAX_REGISTER_TRIES} tries")


FOREIGN_JOB_RECHECK = 10.0
# A running training or verification Job's pods (their waiting states) are looked at again when a pod
# changes: pod events (labelled managed-by onnxops) wake the owner, so nothing polls them.
PODS_RECHECK: float | None = None


async def training_pods(client: KubeApi, md: ObjectMeta, job: dict[str, Any]) -> list[dict[str, Any]]:
    """This run's pods: by the training-job-uid label; a Job created before that label existed (its pod
    template lacks it) falls back to the name label, keeping only pods controlled by that Job."""
    tpl_labels = ((job.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
    if labels.TRAINING_JOB_UID in tpl_labels and md.uid:
        return await client.list("v1", "Pod", md.namespace, label_selector={labels.TRAINING_JOB_UID: md.uid})
    pods = await client.list("v1", "Pod", md.namespace, label_selector={labels.TRAINING_JOB: md.name})
    job_uid = (job.get("metadata") or {}).get("uid")
    return [p for p in pods if job_uid is None or labels.controller_uid(p) == job_uid]


async def reconcile_training_job(ctx: Context, ns: str, name: str) -> float | None:
    c = ctx.client
    tj = await c.get(API, TJ, ns, name)
    if tj is None or tj["metadata"].get("deletionTimestamp"):
        return None
    tj.setdefault("apiVersion", API)
    tj.setdefault("kind", TJ)
    try:  # parsed once: reconcile/ and builders/ take the typed spec
        parsed = ParsedTrainingJob.parse(tj)
    except ValidationError as e:  # not built, not run: the status names the field and the problem
        await _report_plan(c, tj, tjr.invalid_spec_plan(tj, e, _now()))
        return None
    st = parsed.observed  # the stored status, read once (TrainingJobStatus)
    terminal = st.phase == "Failed" or (st.phase == "Succeeded" and bool(st.model_version))
    job = None if terminal else await c.get("batch/v1", "Job", ns, names.training_job(name))
    now = _now()
    if job is not None and tjr.foreign_job(parsed.meta, job):  # never read a namesake's run nor touch its Job
        await _report_plan(c, tj, tjr.foreign_job_plan(parsed, job, now))
        return FOREIGN_JOB_RECHECK
    finished = job is not None and (tjr.job_condition(job, "Complete") or tjr.job_condition(job, "Failed"))
    # unfinished: the pods too, to surface a pod that waits for a fix (ImagePullBackOff, a missing Secret);
    # a pod's change wakes this loop (handlers.job_event)
    in_progress = job is not None and not finished and not parsed.spec.suspend
    pods = await training_pods(c, parsed.meta, job) if job is not None and (finished or in_progress) else []
    registered = st.model_version
    champion: dict[str, Any] | None = None
    ref = champion_rules.wanted(parsed.spec)
    if ref is not None and not terminal:
        if job is not None:  # the champion the Job was created with (its pod template is immutable)
            champion = champion_rules.of_job(job)
        else:
            champion, error = await resolve_champion(ctx, ns, parsed.spec.model, ref)
            if error is not None:  # a named champion that cannot be used: no Job; the status says why
                await report_champion_error(ctx, tj, parsed.meta, error)
                return CHAMPION_RECHECK
    # dataset.fromServing: the service named (its sink is read; a missing or non-capturing one waits)
    wanted = None if terminal else tjr.from_serving_service(parsed)
    service: dict[str, Any] | Literal["unchecked"] | None = tjr.UNCHECKED
    if wanted is not None:  # parsed by tjr.reconcile (one whose spec does not parse: why, naming the field)
        service = await c.get(API, ISVC, ns, wanted)

    def decide(job: dict[str, Any] | None, registered: str | None) -> tjr.TrainingPlan:
        return tjr.reconcile(
            parsed,
            job,
            pods,
            registered=registered,
            settings=ctx.settings,
            now=now,
            service=service,
            champion=champion,
        )

    plan = decide(job, registered)
    if plan.job is not None:
        action, made = await ensure(c, plan.job, job, mutable=job_builder.JOB_MUTABLE)
        if action == "created":  # decide again with the Job as created: its fields (attempts) go into this
            job = {"apiVersion": "batch/v1", "kind": "Job", **made}  # status write, not a second one
            plan = decide(job, registered)
    if plan.register is not None:
        async with ctx.model_lock(ns, plan.register["spec"]["model"]):
            registered = await register_model_version(c, plan.register)
        plan = decide(job, registered)
    if plan.status_patch:
        await c.patch_status(API, TJ, ns, name, plan.status_patch)
    await events.post(c, tj, plan.events)
    service_name = parsed.meta.labels.get(labels.INFERENCE_SERVICE)
    if service_name and ctx.notifier is not None:  # a retrain of that service finished: its webhooks
        notes = notifications.retrain_finished(tj, plan.events, now_rfc3339(), service_name)
        ctx.notifier.publish(ns, service_name, None, notes)
    return PODS_RECHECK if in_progress else plan.requeue_after


CHAMPION_RECHECK = 30.0


async def _report_plan(c: KubeApi, tj: dict[str, Any], plan: tjr.TrainingPlan) -> None:
    """Write a plan that builds nothing (its status and Events) for TrainingJob ``tj``."""
    md = tj["metadata"]
    if plan.status_patch:
        await c.patch_status(API, TJ, md.get("namespace", "default"), md["name"], plan.status_patch)
    await events.post(c, tj, plan.events)


async def resolve_champion(
    ctx: Context, ns: str, model: str, ref: ChampionRef
) -> tuple[dict[str, Any] | None, str | None]:
    c = ctx.client
    model_obj = await ctx.model(ns, model) if ref.alias else None
    got = await c.get(API, ISVC, ns, ref.inference_service) if ref.inference_service else None
    isvc = ParsedInferenceService.parse_or_problem(got) if got is not None else None  # parsed once
    of_model = isvc.spec.model if isinstance(isvc, ParsedInferenceService) else model
    mvs = await ctx.model_versions(ns, of_model)
    return champion_rules.resolve(ref, model, model_obj, isvc, mvs)


async def report_champion_error(ctx: Context, tj: dict[str, Any], md: ObjectMeta, message: str) -> None:
    """Stalled with reason InvalidSpec and ``message`` (a champion that cannot be used); ``tj``: the stored
    object (its status is compared, Events name it), ``md`` its parsed metadata."""
    old = tj.get("status") or {}
    gen = md.generation
    conds = cond.summarize(
        TrainingJobStatus.read(old).conditions_as_stored(),
        ready=False,
        reason=Reason.INVALID_SPEC,
        message=message,
        stalled=True,
        stalled_reason=Reason.INVALID_SPEC,
        generation=gen,
    )
    new = {"phase": "Pending", "message": message, "conditions": conds, "observedGeneration": gen}
    patch = status_patch(old, new)
    if patch:
        await ctx.client.patch_status(API, TJ, md.namespace, md.name, patch)
        await events.post(ctx.client, tj, [("Warning", Reason.INVALID_SPEC, message)])


async def served_by(ctx: Context, ns: str, model: str, version: int) -> list[str]:
    isvcs = await ctx.inference_services(ns, model)
    return sorted(
        f"{ns}/{i['metadata']['name']}"
        for i in isvcs
        if i.get("spec", {}).get("model") == model and version in served_versions(i)
    )


async def reconcile_model_version(ctx: Context, ns: str, name: str) -> float | None:
    c = ctx.client
    mv = await c.get(API, MV, ns, name)
    if mv is None:
        return None
    mv.setdefault("apiVersion", API)
    mv.setdefault("kind", MV)
    try:  # parsed once: reconcile/ and builders/ take the typed spec
        parsed = ParsedModelVersion.parse(mv)
    except ValidationError as e:  # no verification: the status names the field and the problem
        bad = mvr.invalid_spec_plan(mv, e, _now())
        if bad.status_patch:
            await c.patch_status(API, MV, ns, name, bad.status_patch)
        await events.post(c, mv, bad.events)
        return None
    spec = parsed.spec
    if not parsed.meta.deletion_timestamp:
        await ensure_model(ctx, ns, spec.model)
    users = await served_by(ctx, ns, spec.model, spec.version)
    phase = parsed.observed.phase  # the stored status, read once (ModelVersionStatus)
    job = None
    pods: list[dict[str, Any]] = []
    in_progress = False
    if phase not in ("Ready", "Failed"):
        job = await c.get("batch/v1", "Job", ns, names.verification_job(name))
        done = job is not None and (tjr.job_condition(job, "Complete") or tjr.job_condition(job, "Failed"))
        in_progress = job is not None and not done
        if job is not None and not tjr.job_condition(job, "Complete"):
            pods = await c.list("v1", "Pod", ns, label_selector={labels.MODEL_VERSION: name})
    plan = mvr.reconcile(parsed, job, pods, served_by=users, settings=ctx.settings, now=_now())
    if plan.job is not None and not parsed.meta.deletion_timestamp:
        await ensure(c, plan.job, job, mutable=())
    if plan.status_patch:
        await c.patch_status(API, MV, ns, name, plan.status_patch)
    await events.post(c, mv, plan.events)
    if plan.status_patch.get("phase") in ("Ready", "Failed"):
        ctx.stats["mv_transitions"] = ctx.stats.get("mv_transitions", 0) + 1
    return PODS_RECHECK if in_progress else None


async def model_version_deletion_blocked(ctx: Context, mv: dict[str, Any]) -> str | None:
    """None when the ModelVersion may go; else the reason (status and an Event say so, once)."""
    md, spec = mv["metadata"], mv["spec"]
    ns = md.get("namespace", "default")
    users = await served_by(ctx, ns, spec["model"], int(spec["version"]))
    patch = mvr.deletion_block(mv, users, _now())
    if not users:
        return None
    if patch:
        await ctx.client.patch_status(API, MV, ns, md["name"], patch)
        await events.post(
            ctx.client,
            {"apiVersion": API, "kind": MV, **mv},
            [("Warning", mvr.BLOCKED, f"deletion waits: served by {', '.join(users)}")],
        )
    return f"served by {', '.join(users)}"
