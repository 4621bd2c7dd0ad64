"""Pure decisions of the local Job, Deployment and Endpoints controllers (semantics of the real ones,
as documented for batch/v1 Job, apps/v1 Deployment and core/v1 Endpoints)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from onnxops.local.runner.deployments import (
    HASH_LABEL,
    decide_deployment,
    resolve_int_or_percent,
    template_hash,
)
from onnxops.local.runner.endpoints import endpoint_subsets, ready_addresses
from onnxops.local.runner.jobs import decide_job

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(**spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "restartPolicy": spec.pop("restart", "Never"),
                    "containers": [{"name": "c", "image": "i"}],
                },
            },
            **spec,
        },
        "status": status,
    }


def pod(
    phase: str,
    *,
    ready: bool = False,
    restarts: int = 0,
    finished: dt.datetime | None = None,
    deleting: bool = False,
    name: str = "p",
    labels: dict[str, str] | None = None,
    ip: str = "127.0.1.1",
    created: str = "",
) -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "c", "restartCount": restarts, "state": {}}
    if finished:
        cs["state"] = {"terminated": {"exitCode": 1, "finishedAt": ts(finished)}}
    md: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": name + "-uid",
        "labels": labels or {},
        "creationTimestamp": created,
    }
    if deleting:
        md["deletionTimestamp"] = ts(T0)
    return {
        "metadata": md,
        "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {
            "phase": phase,
            "podIP": ip,
            "containerStatuses": [cs],
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ts(T0)}
            ],
        },
    }


def conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions", [])}


# ---- Job --------------------------------------------------------------------------------------------------
def test_new_job_creates_one_labelled_owned_pod() -> None:
    act = decide_job(job(), [], T0)
    [p] = act.create
    labels = p["metadata"]["labels"]
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "j"
    assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == "job-uid"
    assert labels["app"] == "x"
    ref = p["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("Job", "job-uid", True)
    assert p["metadata"]["name"].startswith("j-")
    assert act.status["startTime"] == ts(T0) and act.status["active"] == 1 and act.status["ready"] == 0


def test_success_sets_success_criteria_then_complete() -> None:
    act = decide_job(job(status={"startTime": ts(T0)}), [pod("Succeeded")], T0 + dt.timedelta(seconds=5))
    c = conds(act.status)
    assert c["SuccessCriteriaMet"]["reason"] == c["Complete"]["reason"] == "CompletionsReached"
    assert act.status["succeeded"] == 1 and "active" not in act.status and "failed" not in act.status
    assert act.status["completionTime"] == ts(T0 + dt.timedelta(seconds=5))
    assert not act.create


def test_backoff_limit_never_counts_failed_pods() -> None:
    t = T0 + dt.timedelta(seconds=100)
    one = [pod("Failed", finished=T0, name="a")]
    act = decide_job(job(backoffLimit=1, status={"startTime": ts(T0)}), one, t)
    assert len(act.create) == 1 and "Failed" not in conds(act.status)  # one retry allowed
    two = [*one, pod("Failed", finished=T0, name="b")]
    act = decide_job(job(backoffLimit=1, status={"startTime": ts(T0)}), two, t)
    c = conds(act.status)
    assert c["FailureTarget"]["reason"] == c["Failed"]["reason"] == "BackoffLimitExceeded"
    assert act.status["failed"] == 2 and not act.create


def test_retry_waits_for_the_pod_backoff() -> None:
    failed = [pod("Failed", finished=T0, name="a"), pod("Failed", finished=T0, name="b")]
    j = job(backoffLimit=6, status={"startTime": ts(T0)})
    # two failures: the next pod waits base * 2^(2-1) = 20s with the real controller's 10s base
    assert not decide_job(j, failed, T0 + dt.timedelta(seconds=19), backoff=(10, 360)).create
    assert decide_job(j, failed, T0 + dt.timedelta(seconds=20), backoff=(10, 360)).create


def test_on_failure_counts_container_restarts() -> None:
    j = job(backoffLimit=2, restart="OnFailure", status={"startTime": ts(T0)})
    assert "FailureTarget" not in conds(decide_job(j, [pod("Running", restarts=1)], T0).status)
    act = decide_job(j, [pod("Running", restarts=2)], T0)
    assert conds(act.status)["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert len(act.delete) == 1  # the running pod is killed
    assert "Failed" not in conds(act.status)  # terminal only once no pod is left running


def test_active_deadline() -> None:
    j = job(activeDeadlineSeconds=10, status={"startTime": ts(T0)})
    assert not decide_job(j, [pod("Running")], T0 + dt.timedelta(seconds=9)).delete
    act = decide_job(j, [pod("Running")], T0 + dt.timedelta(seconds=10))
    assert conds(act.status)["FailureTarget"]["reason"] == "DeadlineExceeded" and act.delete
    assert act.status["failed"] == 1  # the killed pod counts as failed ...
    again = decide_job({**j, "status": act.status}, [pod("Running")], T0 + dt.timedelta(seconds=10))
    assert again.status["failed"] == 1  # ... once, even if it is seen running again
    t11 = T0 + dt.timedelta(seconds=11)
    after = decide_job({**j, "status": act.status}, [pod("Running", deleting=True)], t11)
    assert "Failed" not in conds(after.status)  # the pod is still terminating
    gone = decide_job({**j, "status": after.status}, [], T0 + dt.timedelta(seconds=12))
    assert conds(gone.status)["Failed"]["message"] == "Job was active longer than specified deadline"


def test_suspend_deletes_active_pods_and_resume_resets_start_time() -> None:
    act = decide_job(job(suspend=True, status={"startTime": ts(T0)}), [pod("Running")], T0)
    assert len(act.delete) == 1 and not act.create
    assert conds(act.status)["Suspended"]["status"] == "True"
    t1 = T0 + dt.timedelta(seconds=30)
    resumed = decide_job(job(suspend=False, status=act.status), [], t1)
    c = conds(resumed.status)
    assert (c["Suspended"]["status"], c["Suspended"]["reason"]) == ("False", "JobResumed")
    assert resumed.status["startTime"] == ts(t1) and len(resumed.create) == 1


def test_ttl_after_finished() -> None:
    done = decide_job(job(status={"startTime": ts(T0)}), [pod("Succeeded")], T0).status
    j = job(ttlSecondsAfterFinished=60, status=done)
    assert not decide_job(j, [pod("Succeeded")], T0 + dt.timedelta(seconds=59)).delete_job
    assert decide_job(j, [pod("Succeeded")], T0 + dt.timedelta(seconds=60)).delete_job


# ---- Deployment -------------------------------------------------------------------------------------------
def deployment(replicas: int = 2, version: str = "v1", **spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ns", "uid": "dep-uid", "generation": 3},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": version}]},
            },
            **spec,
        },
        "status": status,
    }


def dpod(dep: dict[str, Any], name: str, ready: bool, deleting: bool = False) -> dict[str, Any]:
    h = template_hash(dep["spec"]["template"])
    return pod("Running", ready=ready, name=name, labels={"app": "d", HASH_LABEL: h}, deleting=deleting)


def test_template_hash_is_stable_and_label_safe() -> None:
    a, b = deployment()["spec"]["template"], deployment(version="v2")["spec"]["template"]
    assert template_hash(a) == template_hash(dict(reversed(list(a.items()))))
    assert template_hash(a) != template_hash(b)
    assert len(template_hash(a)) == 10 and template_hash(a).isalnum()


@pytest.mark.parametrize(
    "value,total,up,expected",
    [
        ("25%", 1, True, 1),
        ("25%", 1, False, 0),
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        (2, 10, True, 2),
    ],
)
def test_surge_and_unavailable_rounding(value: Any, total: int, up: bool, expected: int) -> None:
    assert resolve_int_or_percent(value, total, up) == expected


def test_scale_up_and_status() -> None:
    d = deployment()
    act = decide_deployment(d, [], T0)
    assert len(act.create) == 2
    p = act.create[0]
    h = template_hash(d["spec"]["template"])
    assert p["metadata"]["labels"][HASH_LABEL] == h and p["metadata"]["name"].startswith(f"d-{h}-")
    assert p["metadata"]["ownerReferences"][0]["uid"] == "dep-uid"
    c = conds(act.status)
    assert (c["Available"]["status"], c["Progressing"]["reason"]) == ("False", "NewReplicaSetCreated")
    assert act.status["observedGeneration"] == 3 and act.status["unavailableReplicas"] == 2
    ready = decide_deployment(d, [dpod(d, "a", True), dpod(d, "b", True)], T0)
    assert not ready.create and not ready.delete
    st = ready.status
    assert (st["readyReplicas"], st["availableReplicas"], st["updatedReplicas"]) == (2, 2, 2)
    assert conds(ready.status)["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conds(ready.status)["Available"]["status"] == "True"


def test_rolling_update_surges_one_and_keeps_availability() -> None:
    old_d = deployment(replicas=1, version="v1")
    new_d = deployment(replicas=1, version="v2")
    old = dpod(old_d, "old", True)
    step1 = decide_deployment(new_d, [old], T0)  # 25%/25% of 1: surge 1, unavailable 0
    assert len(step1.create) == 1 and not step1.delete
    new_unready = dpod(new_d, "new", False)
    step2 = decide_deployment(new_d, [old, new_unready], T0)
    assert not step2.create and not step2.delete  # wait for the new pod to become Ready
    new_ready = dpod(new_d, "new", True)
    step3 = decide_deployment(new_d, [old, new_ready], T0)
    assert [p["metadata"]["name"] for p in step3.delete] == ["old"]


def test_progress_deadline_exceeded() -> None:
    d = deployment(replicas=1, progressDeadlineSeconds=60)
    first = decide_deployment(d, [dpod(d, "a", False)], T0)
    t61 = T0 + dt.timedelta(seconds=61)
    stuck = decide_deployment({**d, "status": first.status}, [dpod(d, "a", False)], t61)
    p = conds(stuck.status)["Progressing"]
    assert (p["status"], p["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_scale_down_prefers_unready_pods() -> None:
    d = deployment(replicas=1)
    act = decide_deployment(d, [dpod(d, "ready", True), dpod(d, "unready", False)], T0)
    assert [p["metadata"]["name"] for p in act.delete] == ["unready"]


# ---- Endpoints --------------------------------------------------------------------------------------------
def test_endpoints_split_ready_and_not_ready_and_resolve_named_ports() -> None:
    svc = {
        "metadata": {"name": "s", "namespace": "ns"},
        "spec": {"selector": {"app": "d"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
    }
    pods = [
        pod("Running", ready=True, name="a", labels={"app": "d"}, ip="127.0.1.2"),
        pod("Running", ready=False, name="b", labels={"app": "d"}, ip="127.0.1.3"),
        pod("Running", ready=True, name="c", labels={"app": "other"}, ip="127.0.1.4"),
        pod("Running", ready=True, name="e", labels={"app": "d"}, ip="127.0.1.5", deleting=True),
    ]
    [subset] = endpoint_subsets(svc, pods)
    assert [a["ip"] for a in subset["addresses"]] == ["127.0.1.2"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["127.0.1.3"]
    assert subset["addresses"][0]["targetRef"]["name"] == "a"
    assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    ep = {"subsets": [subset]}
    assert ready_addresses(ep, svc, 80) == ready_addresses(ep, svc, "web") == ["127.0.1.2:8080"]
    assert ready_addresses(ep, svc, 81) == []
