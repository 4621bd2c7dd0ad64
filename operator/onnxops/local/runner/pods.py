"""The local "kubelet": runs every Pod of the API server as local processes on the node `local`.

Pods get no finalizers from us. A Pod with a `deletionTimestamp` (graceful deletion) has its processes
stopped (SIGTERM, SIGKILL after the grace period) and is then deleted with `gracePeriodSeconds=0`, as the
kubelet does; a Pod that vanished outright has its processes stopped the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from onnxops.local.runner.base import Controller, terminating
from onnxops.local.runner.client import PODS, ApiError, ResourceClient
from onnxops.local.runner.containers import ContainerBackend
from onnxops.local.runner.images import LocalImage
from onnxops.local.runner.podspec import BASE_ENV_KEYS, ServiceAccountToken
from onnxops.local.runner.worker import PodWorker

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class IpAllocator:
    """Loopback addresses for pods: 127.0.1.1 upwards (skipping .0/.255), round-robin, never two alike."""

    def __init__(self, first: str = "127.0.1.1", last: str = "127.0.255.254", start: int = 0) -> None:
        self._first, self._last = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
        self._next = self._first + start % (self._last - self._first + 1)
        self.in_use: set[str] = set()

    def allocate(self) -> str:
        for _ in range(self._last - self._first + 1):
            n = self._next
            self._next = self._first if n >= self._last else n + 1
            ip = str(ipaddress.IPv4Address(n))
            if n & 0xFF in (0, 255) or ip in self.in_use:
                continue
            self.in_use.add(ip)
            return ip
        raise RuntimeError("no free loopback address for a pod")

    def release(self, ip: str) -> None:
        self.in_use.discard(ip)


def loopback_usable(ip: str = "127.0.1.1") -> bool:
    """Whether processes can bind pod addresses beyond 127.0.0.1 (Linux: the whole 127/8 is loopback;
    macOS needs `sudo ifconfig lo0 alias <ip> up` for each address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((ip, 0))
        except OSError:
            return False
    return True


def decide_pod(pod: Obj, has_worker: bool, worker_finished: bool) -> str:
    """What the kubelet does with an observed pod: start | stop | delete | none."""
    if terminating(pod):
        return "stop" if has_worker and not worker_finished else "delete"
    if not has_worker and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
        return "start"
    return "none"


class PodRunner(Controller):
    name = "kubelet"

    def __init__(
        self,
        client: ResourceClient,
        state_dir: str,
        *,
        python: str = sys.executable,
        extra_images: Mapping[str, LocalImage] | None = None,
        backoff: tuple[float, float] = (1.0, 10.0),
        base_env: Mapping[str, str] | None = None,
        service_accounts: Callable[[str, str], ServiceAccountToken] | None = None,
        containers: ContainerBackend | None = None,
    ) -> None:
        super().__init__(client)
        # (namespace, serviceAccountName) -> the token to project into the pod (None: no tokens)
        self.service_accounts = service_accounts
        # None: containers run as local processes (the default); else as containers of their images
        self.containers = containers
        self.state_dir = str(Path(state_dir).resolve())
        self.python = python
        self.extra_images = dict(extra_images or {})
        self.backoff = backoff
        env = os.environ if base_env is None else base_env
        self.base_env = {k: env[k] for k in BASE_ENV_KEYS if k in env}
        self.pods = self.informer(PODS)
        self.workers: dict[str, PodWorker] = {}
        # a random first address: two runtimes on one machine (parallel test runs) must not hand out the same
        # 127.0.x.y, where a pod's server would fail to bind and its probes reach the other runtime's pod
        self.ips = IpAllocator(start=secrets.randbelow(0xFE00))
        self._stops: dict[str, asyncio.Task[None]] = {}
        if not loopback_usable():
            log.warning(
                "this machine cannot bind 127.0.1.1: pods get their own 127.0.x.y address and their "
                "servers will fail to listen (on macOS add loopback aliases: "
                "`sudo ifconfig lo0 alias 127.0.1.1 up`, and so on)"
            )

    def pids(self) -> dict[str, list[int]]:
        """`namespace/name` -> the live OS process ids of its containers (for tests and debugging)."""
        return {
            f"{w.ns}/{w.name}": [p.pid for p in w.procs.values() if p.returncode is None]
            for w in self.workers.values()
        }

    async def disrupt(
        self,
        namespace: str,
        name: str,
        reason: str = "TerminationByKubelet",
        message: str = "Pod was terminated in response to imminent node shutdown.",
    ) -> bool:
        """Simulate a disruption of a running pod (drain, preemption, eviction): DisruptionTarget condition,
        containers stopped, pod Failed. False when no running pod of that name is on this node."""
        for w in list(self.workers.values()):
            if (w.ns, w.name) == (namespace, name) and not w.finished:
                await w.disrupt(reason, message)
                return True
        return False

    async def sync(self) -> None:
        seen: set[str] = set()
        for pod in self.pods.items():
            uid = pod["metadata"].get("uid", "")
            seen.add(uid)
            worker = self.workers.get(uid)
            if worker is not None:
                worker.pod = pod
            action = decide_pod(pod, worker is not None, worker is not None and worker.finished)
            if action == "start":
                worker = PodWorker(self, pod, self.ips.allocate())
                self.workers[uid] = worker
                worker.start()
            elif action == "stop" and worker is not None and uid not in self._stops:
                self._stops[uid] = asyncio.create_task(self._stop(worker, delete=True))
            elif action == "delete" and uid not in self._stops:
                self._stops[uid] = asyncio.create_task(self._delete(pod))
        for uid, worker in list(self.workers.items()):
            if uid not in seen and uid not in self._stops:
                self._stops[uid] = asyncio.create_task(self._stop(worker, delete=False))

    async def _stop(self, worker: PodWorker, delete: bool) -> None:
        try:
            await worker.stop(worker.grace, announce=True)
            if delete:
                await self._delete(worker.pod)
        finally:
            self.ips.release(worker.pod_ip)
            self.workers.pop(worker.uid, None)
            self._stops.pop(worker.uid, None)
            self.wake()

    async def _delete(self, pod: Obj) -> None:
        md = pod["metadata"]
        try:
            result = await self.client.delete(
                PODS, md.get("namespace"), md["name"], grace_period_seconds=0, uid=md.get("uid")
            )
            if result is None or result.get("kind") == "Status":
                self.pods.forget(pod)
        except (ApiError, aiohttp.ClientError, OSError) as e:
            log.debug("pod %s: delete failed: %s", md["name"], e)
        finally:
            self._stops.pop(md.get("uid", ""), None)

    async def close(self, grace: float = 5.0) -> None:
        """Stop every container process (runtime shutdown); pods stay as they are in the API."""
        workers = list(self.workers.values())
        await asyncio.gather(*(w.stop(min(grace, w.grace)) for w in workers), return_exceptions=True)
        for t in list(self._stops.values()):
            t.cancel()
        await asyncio.gather(*self._stops.values(), return_exceptions=True)
