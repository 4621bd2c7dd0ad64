"""The local runtime's Job controller and pod runner against the real API emulator, with real processes."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _runtime_support import running_runtime, wait_for

from onnxops.local.runner.client import EVENTS, JOBS, PODS, ResourceClient
from onnxops.local.runtime import LocalRuntime

IMAGE = "ghcr.io/onnxops/onnxops-trainer:0.1.0"  # one of our images: runs in the local Python


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    async with running_runtime(tmp_path) as runtime:
        yield runtime


def job(name: str, code: str, *, restart: str = "Never", **spec: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": IMAGE,
        "command": ["python", "-c", code],
        "env": [
            {"name": "ONNXOPS_TERMINATION_LOG", "value": "/dev/termination-log"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
    }
    return {
        "metadata": {"name": name},
        "spec": {**spec, "template": {"spec": {"restartPolicy": restart, "containers": [container]}}},
    }


def conds(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions") or []}


async def finished(client: ResourceClient, name: str) -> dict[str, Any] | None:
    j = await client.get(JOBS, "default", name)
    c = conds(j or {})
    done = any(c.get(t, {}).get("status") == "True" for t in ("Complete", "Failed"))
    return j if done else None


async def job_pods(client: ResourceClient, name: str) -> list[dict[str, Any]]:
    pods, _ = await client.list(PODS, "default", label_selector=f"batch.kubernetes.io/job-name={name}")
    return pods


WRITE_RESULT = (
    "import json, os; "
    "open(os.environ['ONNXOPS_TERMINATION_LOG'], 'w').write(json.dumps("
    "{'ok': True, 'pod': os.environ['POD_NAME'], 'ip': os.environ['POD_IP'],"
    " 'host': os.environ['ONNXOPS_HOST'],"
    " 'unbuffered': os.environ.get('PYTHONUNBUFFERED')})); print('trained')"
)


async def test_job_completes_and_reports_termination_message(rt: LocalRuntime) -> None:
    assert rt.client is not None
    created = await rt.client.create(JOBS, "default", job("train", WRITE_RESULT))
    j = await wait_for(lambda: finished(rt.client, "train"), what="job finished")
    c = conds(j)
    assert c["Complete"]["status"] == "True" and c["Complete"]["reason"] == "CompletionsReached"
    assert c["SuccessCriteriaMet"]["status"] == "True"
    assert "Failed" not in c
    st = j["status"]
    assert st["succeeded"] == 1 and "active" not in st and "failed" not in st
    assert st["startTime"] <= st["completionTime"]
    [pod] = await job_pods(rt.client, "train")
    assert pod["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert pod["metadata"]["ownerReferences"][0]["controller"] is True
    assert pod["metadata"]["labels"]["job-name"] == "train"
    assert pod["status"]["phase"] == "Succeeded"
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    result = json.loads(term["message"])
    assert result["pod"] == pod["metadata"]["name"]
    assert result["ip"] == result["host"] == pod["status"]["podIP"]
    assert result["ip"].startswith("127.0.") and result["unbuffered"] == "1"
    # the log is captured and served by the API server (what `kubectl logs` reads)
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{rt.url}/api/v1/namespaces/default/pods/{pod['metadata']['name']}/log") as resp,
    ):
        assert resp.status == 200
        assert (await resp.text()).strip() == "trained"


async def test_backoff_limit_with_new_pod_per_failure(rt: LocalRuntime) -> None:
    assert rt.client is not None
    await rt.client.create(JOBS, "default", job("fails", "import sys; sys.exit(3)", backoffLimit=1))
    j = await wait_for(lambda: finished(rt.client, "fails"), what="job failed")
    c = conds(j)
    assert c["Failed"]["status"] == "True" and c["Failed"]["reason"] == "BackoffLimitExceeded"
    assert c["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert "Complete" not in c
    assert j["status"]["failed"] == 2 and "active" not in j["status"]
    pods = await job_pods(rt.client, "fails")
    assert len(pods) == 2  # restartPolicy Never: a new pod per failure, backoffLimit 1 = one retry
    for p in pods:
        assert p["status"]["phase"] == "Failed"
        t = p["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (t["exitCode"], t["reason"]) == (3, "Error")


async def test_on_failure_restarts_in_place_until_backoff_limit(rt: LocalRuntime) -> None:
    assert rt.client is not None
    await rt.client.create(
        JOBS, "default", job("flaky", "import sys; sys.exit(1)", restart="OnFailure", backoffLimit=2)
    )
    j = await wait_for(lambda: finished(rt.client, "flaky"), what="job failed")
    assert conds(j)["Failed"]["reason"] == "BackoffLimitExceeded"
    pods = await job_pods(rt.client, "flaky")
    # one pod, restarted in place; the controller deletes it when the Job fails
    assert len(pods) <= 1
    events, _ = await rt.client.list(EVENTS, "default")
    created = [
        e for e in events if e["reason"] == "SuccessfulCreate" and e["involvedObject"]["name"] == "flaky"
    ]
    assert len(created) == 1


async def test_active_deadline_kills_the_pod(rt: LocalRuntime) -> None:
    assert rt.client is not None
    # 5 s: long enough for the test to see the pod and its process on a loaded machine (with 1 s the
    # deadline sometimes removed the pod before the first poll)
    await rt.client.create(
        JOBS, "default", job("slow", "import time; time.sleep(60)", activeDeadlineSeconds=5)
    )
    pod = (await wait_for(lambda: job_pods(rt.client, "slow"), what="pod"))[0]
    name = pod["metadata"]["name"]
    pid = await wait_for(lambda: _pid(rt, name), what="process")
    j = await wait_for(lambda: finished(rt.client, "slow"), what="deadline")
    assert conds(j)["Failed"]["reason"] == "DeadlineExceeded"
    assert conds(j)["Failed"]["message"] == "Job was active longer than specified deadline"
    await wait_for(lambda: _gone(pid), what="process killed")


async def test_suspend_and_resume(rt: LocalRuntime) -> None:
    assert rt.client is not None
    await rt.client.create(JOBS, "default", job("later", WRITE_RESULT, suspend=True))
    j = await wait_for(lambda: _cond(rt.client, "later", "Suspended", "True"), what="suspended")
    assert conds(j)["Suspended"]["reason"] == "JobSuspended"
    await asyncio.sleep(0.5)
    assert await job_pods(rt.client, "later") == []
    await rt.client.patch(JOBS, "default", "later", {"spec": {"suspend": False}})
    j = await wait_for(lambda: finished(rt.client, "later"), what="job finished")
    c = conds(j)
    assert c["Complete"]["status"] == "True"
    assert (c["Suspended"]["status"], c["Suspended"]["reason"]) == ("False", "JobResumed")


async def test_suspending_a_running_job_deletes_its_pod(rt: LocalRuntime) -> None:
    assert rt.client is not None
    await rt.client.create(JOBS, "default", job("pause", "import time; time.sleep(60)"))
    pod = (await wait_for(lambda: job_pods(rt.client, "pause"), what="pod"))[0]
    pid = await wait_for(lambda: _pid(rt, pod["metadata"]["name"]), what="process")
    await rt.client.patch(JOBS, "default", "pause", {"spec": {"suspend": True}})
    await wait_for(lambda: _gone(pid), what="process stopped")
    await wait_for(lambda: _no_pods(rt.client, "pause"), what="pod deleted")
    j = await rt.client.get(JOBS, "default", "pause")
    assert j is not None and conds(j)["Suspended"]["status"] == "True"
    assert not j["status"].get("active")


async def test_ttl_after_finished_deletes_job_and_pods(rt: LocalRuntime) -> None:
    assert rt.client is not None
    await rt.client.create(JOBS, "default", job("brief", WRITE_RESULT, ttlSecondsAfterFinished=0))
    await wait_for(lambda: _job_absent(rt.client, "brief"), what="job deleted")
    await wait_for(lambda: _no_pods(rt.client, "brief"), what="pods collected")


async def test_pod_failure_policy_fails_the_job_at_once(rt: LocalRuntime) -> None:
    assert rt.client is not None
    policy = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [3]}}
        ]
    }
    await rt.client.create(
        JOBS, "default", job("final", "import sys; sys.exit(3)", backoffLimit=3, podFailurePolicy=policy)
    )
    j = await wait_for(lambda: finished(rt.client, "final"), what="job failed")
    c = conds(j)
    assert (c["Failed"]["reason"], c["FailureTarget"]["reason"]) == ("PodFailurePolicy", "PodFailurePolicy")
    [pod] = await job_pods(rt.client, "final")  # no retry although backoffLimit allowed 3
    assert c["Failed"]["message"] == (
        f"Container main for pod default/{pod['metadata']['name']} failed with "
        "exit code 3 matching FailJob rule at index 0"
    )
    assert j["status"]["failed"] == 1


async def test_disrupted_pod_is_replaced_without_counting(rt: LocalRuntime, tmp_path: Path) -> None:
    """A pod killed by a simulated node drain (DisruptionTarget) is retried although backoffLimit is 0."""
    assert rt.client is not None
    marker = tmp_path / "second-run"
    code = (
        f"import os, time, sys; p = {str(marker)!r}\n"
        "if os.path.exists(p): sys.exit(0)\n"
        "open(p, 'w').close(); time.sleep(60)"
    )
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    await rt.client.create(JOBS, "default", job("drained", code, backoffLimit=0, podFailurePolicy=policy))
    first = (await wait_for(lambda: job_pods(rt.client, "drained"), what="pod"))[0]
    name = first["metadata"]["name"]
    await wait_for(lambda: _pid(rt, name), what="process")
    await wait_for(lambda: _exists(marker), what="first run started")
    assert await rt.disrupt_pod("default", name)
    j = await wait_for(lambda: finished(rt.client, "drained"), what="job done")
    assert conds(j)["Complete"]["status"] == "True" and "failed" not in j["status"], j["status"]
    pods = {p["metadata"]["name"]: p for p in await job_pods(rt.client, "drained")}
    assert len(pods) == 2 and pods[name]["status"]["phase"] == "Failed"
    disruption = conds(pods[name])["DisruptionTarget"]
    assert (disruption["status"], disruption["reason"]) == ("True", "TerminationByKubelet")


async def _exists(path: Path) -> bool:
    return path.exists()


async def _cond(client: ResourceClient, name: str, ctype: str, status: str) -> dict[str, Any] | None:
    j = await client.get(JOBS, "default", name)
    return j if j and conds(j).get(ctype, {}).get("status") == status else None


async def _job_absent(client: ResourceClient, name: str) -> bool:
    return await client.get(JOBS, "default", name) is None


async def _no_pods(client: ResourceClient, name: str) -> bool:
    return not await job_pods(client, name)


async def _pid(rt: LocalRuntime, pod: str) -> int | None:
    pids = rt.pids().get(f"default/{pod}")
    return pids[0] if pids else None


async def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie not yet reaped by its parent counts as gone only once reaped; check /proc state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
