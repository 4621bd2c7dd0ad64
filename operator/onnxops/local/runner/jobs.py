"""batch/v1 Job controller (NonIndexed; parallelism/completions honoured, 1/1 is what we use).

Like the real controller (1.31+): pods from the template with the job-name/controller-uid labels and a
controller owner reference; `backoffLimit` (failed pods with restartPolicy Never, container restarts with
OnFailure), `activeDeadlineSeconds`, `suspend`, `ttlSecondsAfterFinished`, `podFailurePolicy` (podfailure.py:
FailJob fails the Job with reason PodFailurePolicy, Ignore replaces the pod without counting it); status
counts and the conditions SuccessCriteriaMet -> Complete, FailureTarget -> Failed (the terminal one once no
pod is left running), Suspended. `decide_job` is pure; `JobController` is the thin I/O around it.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from onnxops.local.runner.base import (
    Controller,
    condition,
    emit_event,
    fmt_time,
    now,
    owned_by,
    owner_ref,
    parse_time,
    pod_ready,
    rand_suffix,
    terminating,
)
from onnxops.local.runner.client import JOBS, PODS, ResourceClient
from onnxops.local.runner.podfailure import FAIL_JOB, IGNORE, Decision, decide_pod_failure
from onnxops.local.runner.podfailure import REASON as POLICY_REASON

Obj = dict[str, Any]

MSG_BACKOFF = "Job has reached the specified backoff limit"
MSG_DEADLINE = "Job was active longer than specified deadline"
MSG_COMPLETE = "Reached expected number of succeeded pods"


@dataclass
class JobActions:
    create: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    delete_job: bool = False
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def _set_cond(conds: list[Obj], ctype: str, status: str, reason: str, message: str, ts: str) -> bool:
    """Set a condition in place; lastTransitionTime only moves when the status changes. True if changed."""
    c = condition(conds, ctype)
    if c is None:
        conds.append(
            {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastProbeTime": ts,
                "lastTransitionTime": ts,
            }
        )
        return True
    if (c.get("status"), c.get("reason"), c.get("message")) == (status, reason, message):
        return False
    if c.get("status") != status:
        c["lastTransitionTime"] = ts
    c.update(status=status, reason=reason, message=message, lastProbeTime=ts)
    return True


def _true(conds: list[Obj], ctype: str) -> Obj | None:
    c = condition(conds, ctype)
    return c if c is not None and c.get("status") == "True" else None


def job_pod(job: Obj) -> Obj:
    md, tmpl = job["metadata"], copy.deepcopy(job["spec"]["template"])
    tmd = tmpl.get("metadata") or {}
    uid, name = md["uid"], md["name"]
    spec = tmpl.get("spec", {})
    spec.setdefault("nodeName", "local")  # we are the scheduler too: a single node
    labels = {
        **(tmd.get("labels") or {}),
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{rand_suffix()}",
            "namespace": md.get("namespace", "default"),
            "labels": labels,
            "annotations": dict(tmd.get("annotations") or {}),
            "ownerReferences": [owner_ref(job)],
        },
        "spec": spec,
    }


def _finished_at(pod: Obj) -> dt.datetime | None:
    times = [
        parse_time((cs.get("state", {}).get("terminated") or {}).get("finishedAt"))
        for cs in pod.get("status", {}).get("containerStatuses") or []
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _restarts(pod: Obj) -> int:
    st = pod.get("status", {})
    return sum(
        int(c.get("restartCount", 0))
        for c in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]
    )


def decide_job(
    job: Obj, pods: list[Obj], t: dt.datetime, backoff: tuple[float, float] = (10.0, 360.0)
) -> JobActions:
    spec, prev = job.get("spec", {}), job.get("status") or {}
    act = JobActions()
    ts = fmt_time(t)
    conds: list[Obj] = copy.deepcopy(prev.get("conditions") or [])
    status: Obj = {k: v for k, v in prev.items() if k in ("startTime", "completionTime")}
    phase = {id(p): p.get("status", {}).get("phase") for p in pods}
    active = [p for p in pods if phase[id(p)] not in ("Succeeded", "Failed") and not terminating(p)]
    term = [p for p in pods if phase[id(p)] not in ("Succeeded", "Failed") and terminating(p)]
    decisions = [
        (p, decide_pod_failure(spec.get("podFailurePolicy"), p)) for p in pods if phase[id(p)] == "Failed"
    ]
    failed_pods = [p for p, d in decisions if d.action != IGNORE]  # ignored pods never count
    fail_job = next((d for _, d in decisions if d.action == FAIL_JOB), None)
    succeeded = max(int(prev.get("succeeded", 0)), sum(1 for p in pods if phase[id(p)] == "Succeeded"))
    failed = max(int(prev.get("failed", 0)), len(failed_pods))
    finished = _true(conds, "Complete") or _true(conds, "Failed")

    if finished:
        act.delete = active
        ttl = spec.get("ttlSecondsAfterFinished")
        done_at = parse_time(finished.get("lastTransitionTime"))
        if ttl is not None and done_at is not None and t >= done_at + dt.timedelta(seconds=int(ttl)):
            act.delete_job = True
    elif spec.get("suspend"):
        act.delete = active
        if _set_cond(conds, "Suspended", "True", "JobSuspended", "Job suspended", ts):
            act.events.append(("Normal", "Suspended", "Job suspended"))
    else:
        failed = _run(
            job,
            act,
            conds,
            status,
            t,
            active=active,
            term=term,
            failed_pods=failed_pods,
            fail_job=fail_job,
            succeeded=succeeded,
            failed=failed,
            backoff=backoff,
        )
    gone = {id(p) for p in act.delete}
    still = [p for p in active if id(p) not in gone]
    status.update(
        active=len(still) + len(act.create),
        ready=sum(1 for p in still if pod_ready(p)),
        succeeded=succeeded,
        failed=failed,
        terminating=len(term) + len(act.delete),
        uncountedTerminatedPods={},
    )
    for k in ("active", "succeeded", "failed"):  # omitempty, as the API server serialises them
        if not status[k]:
            del status[k]
    if conds:
        status["conditions"] = conds
    act.status = status
    return act


def _completions(spec: Obj) -> int:
    return int(spec["completions"]) if spec.get("completions") is not None else 1


def _run(
    job: Obj,
    act: JobActions,
    conds: list[Obj],
    status: Obj,
    t: dt.datetime,
    *,
    active: list[Obj],
    term: list[Obj],
    failed_pods: list[Obj],
    fail_job: Decision | None,
    succeeded: int,
    failed: int,
    backoff: tuple[float, float],
) -> int:
    """A Job neither finished nor suspended: fail it, complete it, or create the pods it still needs.
    Fills ``act``, ``conds`` and ``status``; returns the failed count (killed pods count as failed)."""
    spec = job.get("spec", {})
    ts = fmt_time(t)
    completions = _completions(spec)
    if _true(conds, "Suspended"):
        _set_cond(conds, "Suspended", "False", "JobResumed", "Job resumed", ts)
        act.events.append(("Normal", "Resumed", "Job resumed"))
        status["startTime"] = ts  # resuming restarts the activeDeadlineSeconds clock
    status.setdefault("startTime", ts)
    started = parse_time(status["startTime"]) or t
    target = condition(conds, "FailureTarget")
    reason, message = _failure_reason(
        spec, target, fail_job, succeeded=succeeded, failed=failed, active=active, started=started, t=t
    )
    if reason:
        if _set_cond(conds, "FailureTarget", "True", reason, message, ts):
            act.events.append(("Warning", reason, message))
        act.delete = active
        if target is None or target.get("status") != "True":
            failed += len(active)  # pods the controller kills count as failed, as in the real one
        if not active and not term:
            _set_cond(conds, "Failed", "True", reason, message, ts)
    elif succeeded >= completions:
        _set_cond(conds, "SuccessCriteriaMet", "True", "CompletionsReached", MSG_COMPLETE, ts)
        act.delete = active
        if not active and not term:
            _set_cond(conds, "Complete", "True", "CompletionsReached", MSG_COMPLETE, ts)
            status["completionTime"] = ts
            act.events.append(("Normal", "Completed", "Job completed"))
    else:
        want = min(int(spec.get("parallelism", 1)), completions - succeeded) - len(active)
        last_fail = max((x for x in map(_finished_at, failed_pods) if x is not None), default=None)
        delay = min(backoff[1], backoff[0] * 2 ** max(0, len(failed_pods) - 1))
        if want > 0 and (last_fail is None or t >= last_fail + dt.timedelta(seconds=delay)):
            act.create = [job_pod(job) for _ in range(want)]
    return failed


def _failure_reason(
    spec: Obj,
    target: Obj | None,
    fail_job: Decision | None,
    *,
    succeeded: int,
    failed: int,
    active: list[Obj],
    started: dt.datetime,
    t: dt.datetime,
) -> tuple[str, str]:
    """(reason, message) the Job fails for ("" when it does not): a failure already targeted, the pod
    failure policy's FailJob, the backoff limit, or activeDeadlineSeconds."""
    if target is not None and target.get("status") == "True":
        return target.get("reason", ""), target.get("message", "")
    if fail_job is not None:
        return POLICY_REASON, fail_job.message
    if succeeded >= _completions(spec):
        return "", ""
    policy = spec.get("template", {}).get("spec", {}).get("restartPolicy", "Never")
    backoff_limit = int(spec.get("backoffLimit", 6))
    on_failure = policy == "OnFailure" and (
        sum(_restarts(p) for p in active) > 0
        if backoff_limit == 0
        else sum(_restarts(p) for p in active) >= backoff_limit
    )
    ads = spec.get("activeDeadlineSeconds")
    if failed > backoff_limit or on_failure:
        return "BackoffLimitExceeded", MSG_BACKOFF
    if ads is not None and t >= started + dt.timedelta(seconds=int(ads)):
        return "DeadlineExceeded", MSG_DEADLINE
    return "", ""


class JobController(Controller):
    name = "job-controller"

    def __init__(self, client: ResourceClient, backoff: tuple[float, float] = (1.0, 10.0)) -> None:
        super().__init__(client)
        self.backoff = backoff
        self.jobs = self.informer(JOBS)
        self.pods = self.informer(PODS)

    async def sync(self) -> None:
        pods = self.pods.items()
        for job in self.jobs.items():
            md = job["metadata"]
            if terminating(job):
                continue
            owned = [p for p in pods if owned_by(p, md["uid"])]
            act = decide_job(job, owned, now(), self.backoff)
            await self._apply(job, act)

    async def _apply(self, job: Obj, act: JobActions) -> None:
        md = job["metadata"]
        ns, name = md.get("namespace", "default"), md["name"]
        for reason_type, reason, message in act.events:
            await emit_event(self.client, job, reason, message, type_=reason_type, component="job-controller")
        for pod in act.create:
            created = await self.client.create(PODS, ns, pod)
            self.pods.put(created)
            msg = f"Created pod: {created['metadata']['name']}"
            await emit_event(self.client, job, "SuccessfulCreate", msg, component="job-controller")
        for pod in act.delete:
            res = await self.client.delete(PODS, ns, pod["metadata"]["name"], uid=pod["metadata"].get("uid"))
            if res is not None and res.get("kind") == "Pod":
                self.pods.put(res)
            else:
                self.pods.forget(pod)
        if act.status != (job.get("status") or {}):
            updated = await self.client.patch(
                JOBS, ns, name, {"status": _with_nulls(job, act.status)}, status=True
            )
            if updated is not None:
                self.jobs.put(updated)
        if act.delete_job:
            await self.client.delete(JOBS, ns, name, propagation_policy="Background", uid=md.get("uid"))


def _with_nulls(obj: Obj, status: Obj) -> Obj:
    """A merge patch that also removes status fields that are gone (omitempty zeros)."""
    return {**{k: None for k in (obj.get("status") or {}) if k not in status}, **status}
