"""Pure pod-status logic of the local kubelet: container states -> phase, conditions, containerStatuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES = 80, 2048


@dataclass
class ContainerState:
    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    pid: int | None = None
    last_state: Obj = field(default_factory=dict)

    def terminated_dict(self) -> Obj:
        d: Obj = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        }
        if self.message:
            d["message"] = self.message
        return d

    @property
    def container_id(self) -> str:
        return f"local://{self.pid}" if self.pid else ""

    def to_status(self) -> Obj:
        if self.state == "running":
            st: Obj = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            st = {"terminated": self.terminated_dict()}
        else:
            st = {"waiting": {"reason": self.reason, **({"message": self.message} if self.message else {})}}
        d: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.state == "running",
            "state": st,
            "lastState": self.last_state,
        }
        if self.pid:
            d["containerID"] = self.container_id
        return d


def qos_class(spec: Obj) -> str:
    """status.qosClass as Kubernetes derives it: Guaranteed when every container has cpu and memory limits
    and its requests (defaulted to the limits) equal them; BestEffort when no container sets any request or
    limit; Burstable otherwise."""
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    res = [c.get("resources") or {} for c in containers]
    if not any((r.get("requests") or r.get("limits")) for r in res):
        return "BestEffort"
    for r in res:
        limits, requests = r.get("limits") or {}, {**(r.get("limits") or {}), **(r.get("requests") or {})}
        if any(k not in limits or str(requests.get(k)) != str(limits[k]) for k in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


def exit_reason(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


def signal_exit_code(returncode: int) -> int:
    """asyncio reports death by signal N as -N; a container runtime reports 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def backoff_delay(restarts: int, base: float, cap: float) -> float:
    """Kubelet CrashLoopBackOff: base * 2^n, capped."""
    return float(min(cap, base * (2 ** max(0, restarts))))


def termination_message(file_text: bytes, policy: str, exit_code: int, log_tail: bytes) -> str:
    """What the kubelet puts in `terminated.message`: the file (<= 4096 bytes); with
    FallbackToLogsOnError and a failure and an empty file, the log's tail (80 lines, 2048 bytes)."""
    msg = file_text[:MAX_TERMINATION_MESSAGE]
    if not msg.strip() and policy == "FallbackToLogsOnError" and exit_code != 0:
        lines = log_tail.splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
        msg = b"".join(lines)[-FALLBACK_LOG_BYTES:]
    return msg.decode(errors="replace")


def pod_phase(policy: str, containers: list[ContainerState], init_failed: bool = False) -> str:
    if init_failed:
        return "Failed"
    if not containers or any(
        c.state == "waiting" and not c.started_at and c.restart_count == 0 and not c.last_state
        for c in containers
    ):
        return "Pending"
    if any(c.state == "running" for c in containers):
        return "Running"
    if all(c.state == "terminated" for c in containers):
        if all(c.exit_code == 0 for c in containers):
            return "Succeeded" if policy != "Always" else "Running"
        return "Failed" if policy == "Never" else "Running"
    return "Running"  # waiting to restart


def _cond(prev: list[Obj], ctype: str, ok: bool, ts: str, reason: str = "") -> Obj:
    status = "True" if ok else "False"
    old = next((c for c in prev if c.get("type") == ctype), None)
    changed = old is None or old.get("status") != status
    c: Obj = {
        "type": ctype,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": ts if changed else old.get("lastTransitionTime", ts),  # type: ignore[union-attr]
    }
    if not ok and reason:
        c["reason"] = reason
    return c


def pod_conditions(
    prev: list[Obj], containers: list[ContainerState], initialized: bool, ts: str, phase: str
) -> list[Obj]:
    ready = initialized and bool(containers) and all(c.ready for c in containers) and phase == "Running"
    unready = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
    return [
        _cond(prev, "PodReadyToStartContainers", True, ts),
        _cond(prev, "Initialized", initialized, ts, "ContainersNotInitialized"),
        _cond(prev, "Ready", ready, ts, unready),
        _cond(prev, "ContainersReady", ready, ts, unready),
        _cond(prev, "PodScheduled", True, ts),
    ]


def pod_status(
    *,
    prev: Obj,
    pod_ip: str,
    start_time: str,
    policy: str,
    containers: list[ContainerState],
    init_containers: list[ContainerState],
    initialized: bool,
    ts: str,
    init_failed: bool = False,
    failed_reason: str = "",
    failed_message: str = "",
    extra_conditions: list[Obj] | None = None,
    qos: str = "BestEffort",
) -> Obj:
    """``extra_conditions``: conditions set by others than the kubelet's own logic (DisruptionTarget)."""
    phase = "Failed" if failed_reason else pod_phase(policy, containers if initialized else [], init_failed)
    status: Obj = {
        "phase": phase,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "conditions": [
            *(extra_conditions or []),
            *pod_conditions(prev.get("conditions") or [], containers, initialized, ts, phase),
        ],
        "containerStatuses": [c.to_status() for c in containers],
        "qosClass": qos,
    }
    if init_containers:
        status["initContainerStatuses"] = [c.to_status() for c in init_containers]
    if failed_reason:
        status["reason"], status["message"] = failed_reason, failed_message
    return status
