"""The local Job controller's podFailurePolicy against the documented batch/v1 semantics
(kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy): rules in order, first match
wins; onExitCodes In/NotIn with containerName, exit code 0 never matching; onPodConditions; FailJob fails
the Job with reason PodFailurePolicy, Ignore replaces the pod without counting it, Count counts it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from onnxops.local.runner.jobs import decide_job
from onnxops.local.runner.podfailure import decide_pod_failure

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(seconds=600)  # past any pod backoff


def ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(
    policy: dict[str, Any] | None, backoff_limit: int = 6, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "i"}]}},
    }
    if policy is not None:
        spec["podFailurePolicy"] = policy
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "ns", "uid": "u"},
        "spec": spec,
        "status": status or {"startTime": ts(T0)},
    }


def failed_pod(
    exits: dict[str, int],
    conditions: list[dict[str, Any]] | None = None,
    name: str = "p",
    init_exits: dict[str, int] | None = None,
) -> dict[str, Any]:
    def statuses(codes: dict[str, int]) -> list[dict[str, Any]]:
        return [
            {"name": n, "state": {"terminated": {"exitCode": c, "finishedAt": ts(T0)}}}
            for n, c in codes.items()
        ]

    st: dict[str, Any] = {
        "phase": "Failed",
        "containerStatuses": statuses(exits),
        "conditions": conditions or [],
    }
    if init_exits:
        st["initContainerStatuses"] = statuses(init_exits)
    return {"metadata": {"name": name, "namespace": "ns", "uid": name + "-uid"}, "status": st}


def conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions", [])}


FAIL_ON_2_3 = {
    "rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [2, 3]}}
    ]
}
IGNORE_DISRUPTION = {
    "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
}
DISRUPTED = [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}]


def test_fail_job_on_exit_code_fails_at_once_with_reason_pod_failure_policy() -> None:
    act = decide_job(job(FAIL_ON_2_3), [failed_pod({"main": 3})], T0)
    target = conds(act.status)["FailureTarget"]
    assert target["reason"] == "PodFailurePolicy"
    assert target["message"] == (
        "Container main for pod ns/p failed with exit code 3 matching FailJob rule at index 0"
    )
    assert conds(act.status)["Failed"]["reason"] == "PodFailurePolicy"  # no pod left running
    assert act.status["failed"] == 1 and not act.create  # 5 retries were left, none is used


def test_other_exit_codes_count_and_are_retried() -> None:
    act = decide_job(job(FAIL_ON_2_3, backoff_limit=1), [failed_pod({"main": 1})], LATER)
    assert "FailureTarget" not in conds(act.status) and len(act.create) == 1 and act.status["failed"] == 1
    act = decide_job(
        job(FAIL_ON_2_3, backoff_limit=1), [failed_pod({"main": 1}), failed_pod({"main": 5}, name="q")], LATER
    )
    assert conds(act.status)["Failed"]["reason"] == "BackoffLimitExceeded"


def test_ignore_on_disruption_replaces_the_pod_without_counting_it() -> None:
    pods = [failed_pod({"main": 143}, DISRUPTED, name=f"p{i}") for i in range(3)]
    act = decide_job(job(IGNORE_DISRUPTION, backoff_limit=0), pods, T0)  # no pod backoff either
    assert len(act.create) == 1 and "failed" not in act.status
    assert "FailureTarget" not in conds(act.status) and "Failed" not in conds(act.status)
    # the same pod without the condition counts: backoffLimit 0 is exceeded at once
    act = decide_job(job(IGNORE_DISRUPTION, backoff_limit=0), [failed_pod({"main": 143})], T0)
    assert conds(act.status)["Failed"]["reason"] == "BackoffLimitExceeded"


def test_condition_status_must_match_and_defaults_to_true() -> None:
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    assert decide_pod_failure(policy, failed_pod({"main": 1}, DISRUPTED)).action == "Ignore"
    not_true = [{"type": "DisruptionTarget", "status": "False"}]
    assert decide_pod_failure(policy, failed_pod({"main": 1}, not_true)).action == "Count"


def test_rules_in_order_first_match_wins() -> None:
    policy = {
        "rules": [
            {"action": "Count", "onExitCodes": {"operator": "In", "values": [5]}},
            {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [5]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]
    }
    assert decide_pod_failure(policy, failed_pod({"main": 5}, DISRUPTED)).action == "Count"
    d = decide_pod_failure(policy, failed_pod({"main": 7}, DISRUPTED))
    assert d.action == "FailJob" and d.message.endswith("matching FailJob rule at index 1")
    swapped = {"rules": [policy["rules"][2], *policy["rules"][:2]]}
    assert decide_pod_failure(swapped, failed_pod({"main": 7}, DISRUPTED)).action == "Ignore"


def test_container_name_restricts_the_containers_looked_at() -> None:
    other = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "sidecar", "operator": "In", "values": [2]},
            }
        ]
    }
    assert decide_pod_failure(other, failed_pod({"main": 2})).action == "Count"
    assert decide_pod_failure(other, failed_pod({"main": 1, "sidecar": 2})).action == "FailJob"
    anyone = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}}]}
    assert decide_pod_failure(anyone, failed_pod({"main": 1, "sidecar": 2})).action == "FailJob"
    # init containers are looked at too
    assert decide_pod_failure(anyone, failed_pod({}, init_exits={"setup": 2})).action == "FailJob"


def test_exit_code_zero_never_matches_not_in() -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1]}}]}
    assert decide_pod_failure(policy, failed_pod({"main": 1, "helper": 0})).action == "Count"
    assert decide_pod_failure(policy, failed_pod({"main": 1, "helper": 9})).action == "FailJob"


def test_no_policy_or_no_match_counts() -> None:
    assert decide_pod_failure(None, failed_pod({"main": 2})).action == "Count"
    act = decide_job(job(None, backoff_limit=0), [failed_pod({"main": 2})], T0)
    assert conds(act.status)["Failed"]["reason"] == "BackoffLimitExceeded"
