"""Pure kubelet status logic, probe thresholds and pod decisions of the local runtime."""

from __future__ import annotations

import signal

import pytest

from onnxops.local.runner.pods import IpAllocator, decide_pod
from onnxops.local.runner.podstatus import (
    ContainerState,
    backoff_delay,
    pod_phase,
    pod_status,
    should_restart,
    signal_exit_code,
    termination_message,
)
from onnxops.local.runner.probes import ProbeError, ProbeTracker, parse_probe, resolve_port


def cs(state: str, code: int | None = None, restarts: int = 0, started: str | None = "t") -> ContainerState:
    return ContainerState("c", "img", state=state, exit_code=code, restart_count=restarts, started_at=started)


@pytest.mark.parametrize(
    "policy,codes,phase",
    [
        ("Never", [0], "Succeeded"),
        ("Never", [1], "Failed"),
        ("Never", [0, 1], "Failed"),
        ("OnFailure", [0], "Succeeded"),
        ("OnFailure", [1], "Running"),  # about to be restarted
        ("Always", [0], "Running"),
    ],
)
def test_phase_of_terminated_containers(policy: str, codes: list[int], phase: str) -> None:
    assert pod_phase(policy, [cs("terminated", c) for c in codes]) == phase


def test_phase_pending_until_every_container_started() -> None:
    assert pod_phase("Always", [cs("running"), ContainerState("b", "img")]) == "Pending"
    assert pod_phase("Always", [cs("running"), cs("running")]) == "Running"
    assert pod_phase("Never", [], init_failed=True) == "Failed"


def test_restart_policy() -> None:
    assert should_restart("Always", 0) and should_restart("Always", 1)
    assert should_restart("OnFailure", 2) and not should_restart("OnFailure", 0)
    assert not should_restart("Never", 1)


def test_exit_codes_of_signals_and_backoff() -> None:
    assert signal_exit_code(-signal.SIGKILL) == 137 and signal_exit_code(-signal.SIGTERM) == 143
    assert signal_exit_code(3) == 3
    assert [backoff_delay(n, 10, 300) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]


def test_termination_message_limits_and_fallback() -> None:
    assert termination_message(b"x" * 5000, "File", 1, b"") == "x" * 4096
    logs = b"".join(f"line {i}\n".encode() for i in range(200))
    fallback = termination_message(b"", "FallbackToLogsOnError", 1, logs)
    assert fallback.endswith("line 199\n") and len(fallback.encode()) <= 2048
    assert fallback.count("\n") <= 80
    assert termination_message(b"", "FallbackToLogsOnError", 0, logs) == ""  # only on failure
    assert termination_message(b"", "File", 1, logs) == ""
    assert termination_message(b"result", "FallbackToLogsOnError", 1, logs) == "result"


def test_pod_status_conditions_keep_transition_times() -> None:
    running = ContainerState("c", "img", state="running", started_at="t0", ready=False)
    s1 = pod_status(
        prev={},
        pod_ip="127.0.1.1",
        start_time="t0",
        policy="Always",
        containers=[running],
        init_containers=[],
        initialized=True,
        ts="t1",
    )
    ready1 = next(c for c in s1["conditions"] if c["type"] == "Ready")
    assert (ready1["status"], ready1["reason"]) == ("False", "ContainersNotReady")
    running.ready = True
    s2 = pod_status(
        prev=s1,
        pod_ip="127.0.1.1",
        start_time="t0",
        policy="Always",
        containers=[running],
        init_containers=[],
        initialized=True,
        ts="t2",
    )
    s3 = pod_status(
        prev=s2,
        pod_ip="127.0.1.1",
        start_time="t0",
        policy="Always",
        containers=[running],
        init_containers=[],
        initialized=True,
        ts="t3",
    )
    ready3 = next(c for c in s3["conditions"] if c["type"] == "Ready")
    assert ready3["status"] == "True" and ready3["lastTransitionTime"] == "t2"
    sched = next(c for c in s3["conditions"] if c["type"] == "PodScheduled")
    assert sched["lastTransitionTime"] == "t1"
    assert s3["phase"] == "Running" and s3["podIP"] == "127.0.1.1" and s3["hostIP"] == "127.0.0.1"
    assert s3["containerStatuses"][0]["state"] == {"running": {"startedAt": "t0"}}


def test_probe_thresholds() -> None:
    readiness = ProbeTracker(success_threshold=2, failure_threshold=3, ok=False)
    assert not readiness.feed(True) and readiness.feed(True) and readiness.ok
    assert not readiness.feed(False) and not readiness.feed(False) and readiness.feed(False)
    assert not readiness.ok
    liveness = ProbeTracker(1, 2, ok=True)
    assert not liveness.feed(False) and not liveness.feed(True)  # a success resets the failure count
    assert not liveness.feed(False) and liveness.feed(False) and not liveness.ok


def test_probe_parsing_resolves_named_ports() -> None:
    c = {"name": "s", "ports": [{"name": "http", "containerPort": 8080}]}
    probe = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 2}
    p = parse_probe(probe, c, "127.0.1.9")
    assert p is not None and (p.host, p.port, p.path, p.period, p.failure_threshold) == (
        "127.0.1.9",
        8080,
        "/v2/health/ready",
        2.0,
        3,
    )
    assert resolve_port(9000, c) == 9000
    with pytest.raises(ProbeError, match="metrics"):
        resolve_port("metrics", c)
    assert parse_probe(None, c, "x") is None


def test_ip_allocation_is_unique_and_skips_network_addresses() -> None:
    alloc = IpAllocator(first="127.0.1.253", last="127.0.2.2")
    ips = [alloc.allocate() for _ in range(4)]
    assert ips == ["127.0.1.253", "127.0.1.254", "127.0.2.1", "127.0.2.2"]
    with pytest.raises(RuntimeError):
        alloc.allocate()
    alloc.release("127.0.2.1")
    assert alloc.allocate() == "127.0.2.1"


def test_decide_pod() -> None:
    live = {"metadata": {}, "status": {"phase": "Pending"}}
    gone = {"metadata": {"deletionTimestamp": "t"}, "status": {"phase": "Running"}}
    done = {"metadata": {}, "status": {"phase": "Succeeded"}}
    assert decide_pod(live, has_worker=False, worker_finished=False) == "start"
    assert decide_pod(live, has_worker=True, worker_finished=False) == "none"
    assert decide_pod(gone, has_worker=True, worker_finished=False) == "stop"
    assert decide_pod(gone, has_worker=True, worker_finished=True) == "delete"
    assert decide_pod(gone, has_worker=False, worker_finished=False) == "delete"
    assert decide_pod(done, has_worker=False, worker_finished=False) == "none"


def test_loopback_check() -> None:
    from onnxops.local.runner.pods import loopback_usable

    assert loopback_usable("127.0.0.1")
    assert not loopback_usable("192.0.2.1")  # TEST-NET-1: never a local address


def test_qos_class_follows_the_kubernetes_rules() -> None:
    from onnxops.local.runner.podstatus import qos_class

    def spec(*resources: dict) -> dict:
        return {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}

    assert qos_class(spec({}, {})) == "BestEffort"
    trainer = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
    assert qos_class(spec(trainer)) == "Burstable"
    both = {"cpu": "1", "memory": "1Gi"}
    assert qos_class(spec({"limits": both})) == "Guaranteed"  # requests default to the limits
    assert qos_class(spec({"requests": both, "limits": both}, {"limits": both})) == "Guaranteed"
    assert qos_class(spec({"requests": both, "limits": both}, {})) == "Burstable"
