"""One pod's life on the local "node": plan, start containers as processes, probe, restart, report status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from onnxops.local.runner import process
from onnxops.local.runner.base import emit_event, fmt_time, now
from onnxops.local.runner.client import CONFIGMAPS, PODS, SECRETS, ApiError
from onnxops.local.runner.podspec import PlanError, ProcessPlan, log_path, plan_container
from onnxops.local.runner.podstatus import (
    FALLBACK_LOG_BYTES,
    MAX_TERMINATION_MESSAGE,
    ContainerState,
    backoff_delay,
    exit_reason,
    pod_status,
    qos_class,
    should_restart,
    signal_exit_code,
    termination_message,
)
from onnxops.local.runner.probes import ProbeError, ProbeTracker, parse_probe, probe_once

if TYPE_CHECKING:
    from onnxops.local.runner.pods import PodRunner

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 15.0  # how long a cancelled pod worker may take to wind down
Obj = dict[str, Any]


class PodWorker:
    def __init__(self, runner: PodRunner, pod: Obj, pod_ip: str) -> None:
        self.runner, self.pod, self.pod_ip = runner, pod, pod_ip
        md, spec = pod["metadata"], pod.get("spec", {})
        self.ns, self.name, self.uid = md.get("namespace", "default"), md["name"], md["uid"]
        self.policy = spec.get("restartPolicy", "Always")
        self.containers = [ContainerState(c["name"], c.get("image", "")) for c in spec.get("containers", [])]
        self.inits = [ContainerState(c["name"], c.get("image", "")) for c in spec.get("initContainers") or []]
        self.initialized = not self.inits
        self.init_failed = False
        self.failed_reason = self.failed_message = ""
        self.disruption: Obj | None = None  # the DisruptionTarget condition once disrupted
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.start_time = fmt_time(now())
        self.started_mono = time.monotonic()
        self.stopping = False  # deletion: stop everything, write no more status
        self.killing = False  # deadline: stop everything, no restarts
        self.finished = False  # every process is gone and will not be restarted
        self.changed = asyncio.Event()
        self._last_status: Obj | None = None
        self._prev_conditions: list[Obj] = []
        self.task: asyncio.Task[None] | None = None
        self._runs: list[asyncio.Task[bool]] = []
        self._bg: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self._main(), name=f"pod {self.ns}/{self.name}")

    def _event(self, reason: str, message: str, type_: str = "Normal") -> None:
        task = asyncio.create_task(
            emit_event(self.runner.client, self.pod, reason, message, type_=type_, component="kubelet")
        )
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def stop(self, grace: float, announce: bool = False) -> None:
        """Terminate every container (SIGTERM, SIGKILL after `grace`) and end the worker."""
        self.stopping = True
        for name, p in self.procs.items():
            if announce and p.returncode is None:
                self._event("Killing", f"Stopping container {name}")
        await asyncio.gather(*(process.stop_process(p, grace) for p in list(self.procs.values())))
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self.task, STOP_TIMEOUT_S)  # bounded: shutdown never hangs
        self.finished = True

    async def disrupt(self, reason: str, message: str) -> None:
        """What a node drain, preemption or node-pressure eviction does: the pod gets the DisruptionTarget
        condition, then its containers are stopped (SIGTERM, SIGKILL after the grace period) and it ends
        Failed (restartPolicy Never) without restarts."""
        self.disruption = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": reason,
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": fmt_time(now()),
        }
        self.killing = True
        self.changed.set()
        await self._flush_status()
        for name, p in self.procs.items():
            if p.returncode is None:
                self._event("Killing", f"Stopping container {name}")
        await asyncio.gather(*(process.stop_process(p, self.grace) for p in list(self.procs.values())))

    @property
    def grace(self) -> float:
        md = self.pod.get("metadata", {})
        g = md.get("deletionGracePeriodSeconds")
        if g is None:
            g = self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        return float(g)

    async def _main(self) -> None:
        status_task = asyncio.create_task(self._status_loop())
        try:
            spec = self.pod.get("spec", {})
            if not spec.get("nodeName"):
                with contextlib.suppress(ApiError, aiohttp.ClientError):
                    await self.runner.client.bind(self.ns, self.name, "local")
            self.changed.set()
            plans = await self._plan_all(spec.get("initContainers") or [], spec.get("containers", []))
            if plans is None:
                return
            init_plans, main_plans = plans
            for st, c, plan in zip(self.inits, spec.get("initContainers") or [], init_plans, strict=True):
                ok = await self._run_container(st, c, plan, init=True)
                if not ok:
                    self.init_failed = True
                    return
            self.initialized = True
            self.changed.set()
            deadline = spec.get("activeDeadlineSeconds")
            runs = self._runs = [
                asyncio.create_task(self._run_container(st, c, plan))
                for st, c, plan in zip(self.containers, spec.get("containers", []), main_plans, strict=True)
            ]
            if deadline is not None:
                remaining = float(deadline) - (time.monotonic() - self.started_mono)
                _, pending = await asyncio.wait(runs, timeout=max(0.0, remaining))
                if pending:
                    self.failed_reason = "DeadlineExceeded"
                    self.failed_message = "Pod was active on the node longer than the specified deadline"
                    self.killing = True
                    await asyncio.gather(*(process.stop_process(p, self.grace) for p in self.procs.values()))
                    await asyncio.gather(*runs, return_exceptions=True)
            else:
                await asyncio.gather(*runs)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s/%s: worker failed", self.ns, self.name)
        finally:
            for t in self._runs:  # cancelled worker: no container loop may outlive it
                t.cancel()
            self.finished = True
            self.changed.set()
            if not self.stopping:
                await asyncio.sleep(0)  # let the status loop write the final status
                await self._flush_status()
            status_task.cancel()

    # ---- planning --------------------------------------------------------------------------------------
    async def _plan_all(self, inits: list[Obj], mains: list[Obj]) -> tuple[list[ProcessPlan], ...] | None:
        announced = ""
        pulls = 0
        while True:
            try:
                cms, secs = await self._referenced_objects()
                out = tuple([self._plan(c, cms, secs) for c in group] for group in (inits, mains))
                return out
            except PlanError as e:
                if e.reason == "ImageNotLocal":
                    await self._image_pull_failed(e, pulls, announce=pulls == 0)
                    pulls += 1
                    continue
                self._waiting(e.reason, e.message)
                if e.message != announced:
                    announced = e.message
                    await emit_event(
                        self.runner.client,
                        self.pod,
                        "Failed",
                        e.message,
                        type_="Warning",
                        component="kubelet",
                    )
                await asyncio.sleep(1.0)  # a missing ConfigMap/Secret may appear

    def _waiting(self, reason: str, message: str) -> None:
        for st in (*self.inits, *self.containers):
            st.state, st.reason, st.message = "waiting", reason, message
        self.changed.set()

    async def _image_pull_failed(self, e: PlanError, pulls: int, announce: bool) -> None:
        """What the kubelet shows for an image it cannot pull: ErrImagePull, then ImagePullBackOff for the
        back-off before the next try (an image that is not local never becomes pullable here)."""
        image = e.image or "?"
        self._waiting("ErrImagePull", f'failed to pull image "{image}": {e.message}')
        if announce:
            client = self.runner.client
            await emit_event(
                client,
                self.pod,
                "Failed",
                f'Failed to pull image "{image}": {e.message}',
                type_="Warning",
                component="kubelet",
            )
            await emit_event(
                client, self.pod, "Failed", "Error: ErrImagePull", type_="Warning", component="kubelet"
            )
        await asyncio.sleep(self.runner.backoff[0])
        self._waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
        if announce:
            await emit_event(
                self.runner.client,
                self.pod,
                "BackOff",
                f'Back-off pulling image "{image}"',
                component="kubelet",
            )
        await asyncio.sleep(backoff_delay(pulls, *self.runner.backoff))

    def _plan(self, c: Obj, cms: Mapping[str, Obj], secs: Mapping[str, Obj]) -> ProcessPlan:
        r = self.runner
        sa = None
        if r.service_accounts is not None:
            sa = r.service_accounts(self.ns, self.pod.get("spec", {}).get("serviceAccountName") or "default")
        if r.containers is not None:
            return r.containers.plan(
                self.pod,
                c,
                state_dir=r.state_dir,
                pod_ip=self.pod_ip,
                configmaps=cms,
                secrets=secs,
                service_account=sa,
            )
        return plan_container(
            self.pod,
            c,
            state_dir=r.state_dir,
            pod_ip=self.pod_ip,
            python=r.python,
            configmaps=cms,
            secrets=secs,
            base_env=r.base_env,
            extra_images=r.extra_images,
            service_account=sa,
        )

    async def _referenced_objects(self) -> tuple[dict[str, Obj], dict[str, Obj]]:
        spec = self.pod.get("spec", {})
        cm_names: set[str] = set()
        sec_names: set[str] = set()
        for c in [*(spec.get("initContainers") or []), *spec.get("containers", [])]:
            for e in c.get("env") or []:
                vf = e.get("valueFrom") or {}
                if "configMapKeyRef" in vf:
                    cm_names.add(vf["configMapKeyRef"].get("name", ""))
                if "secretKeyRef" in vf:
                    sec_names.add(vf["secretKeyRef"].get("name", ""))
            for ef in c.get("envFrom") or []:
                if "configMapRef" in ef:
                    cm_names.add(ef["configMapRef"].get("name", ""))
                if "secretRef" in ef:
                    sec_names.add(ef["secretRef"].get("name", ""))
        for v in spec.get("volumes") or []:
            if "configMap" in v:
                cm_names.add(v["configMap"].get("name", ""))
            if "secret" in v:
                sec_names.add(v["secret"].get("secretName", ""))
        client = self.runner.client
        cms = {n: o for n in cm_names if (o := await client.get(CONFIGMAPS, self.ns, n)) is not None}
        secs = {n: o for n in sec_names if (o := await client.get(SECRETS, self.ns, n)) is not None}
        return cms, secs

    # ---- one container ---------------------------------------------------------------------------------
    async def _run_container(self, st: ContainerState, c: Obj, plan: ProcessPlan, init: bool = False) -> bool:
        """Run (and restart per policy) one container; True when it ended successfully."""
        logf = log_path(self.runner.state_dir, self.ns, self.name, c["name"])
        while True:
            process.prepare_fs(plan)
            if st.restart_count:  # like the kubelet: `logs` shows the current run, the last one is kept
                with contextlib.suppress(OSError):
                    os.replace(logf, logf + ".previous")
            proc = await process.spawn(plan, logf)
            self.procs[c["name"]] = proc
            self._event("Started", f"Started container {c['name']}")
            st.pid, st.state, st.reason, st.message = proc.pid, "running", "", ""
            st.started_at, st.exit_code, st.ready = fmt_time(now()), None, False
            st.ready = init or not c.get("readinessProbe")
            self.changed.set()
            probes = [] if init else self._start_probes(st, c, proc)
            try:
                rc = await proc.wait()
            finally:
                for t in probes:
                    t.cancel()
                process.signal_group(proc.pid, signal.SIGKILL)  # also when cancelled: no strays
            await process.stop_process(proc, 0)
            code = signal_exit_code(rc)
            st.state, st.ready, st.exit_code, st.finished_at = "terminated", False, code, fmt_time(now())
            st.reason = exit_reason(code)
            if self.stopping and code != 0:
                st.reason = "Error"
            tail = process.read_tail(logf, FALLBACK_LOG_BYTES * 4)
            head = process.read_head(plan.termination_path, MAX_TERMINATION_MESSAGE)
            st.message = termination_message(head, c.get("terminationMessagePolicy", "File"), code, tail)
            self.changed.set()
            policy = "OnFailure" if init and self.policy == "Always" else self.policy
            if self.stopping or self.killing or not should_restart(policy, code):
                return code == 0
            delay = backoff_delay(st.restart_count, *self.runner.backoff)
            st.last_state = {"terminated": st.terminated_dict()}
            st.state, st.reason, st.message = (
                "waiting",
                "CrashLoopBackOff",
                (
                    f"back-off {delay:g}s restarting failed container={c['name']} pod={self.name}_{self.ns}"
                    f"({self.uid})"
                ),
            )
            self.changed.set()
            await asyncio.sleep(delay)
            st.restart_count += 1

    def _start_probes(
        self, st: ContainerState, c: Obj, proc: asyncio.subprocess.Process
    ) -> list[asyncio.Task[None]]:
        tasks = []
        for kind in ("readinessProbe", "livenessProbe"):
            try:
                spec = parse_probe(c.get(kind), c, self.pod_ip)
            except ProbeError as e:
                tasks.append(
                    asyncio.create_task(
                        emit_event(
                            self.runner.client,
                            self.pod,
                            "Unhealthy",
                            f"{kind}: {e}",
                            type_="Warning",
                            component="kubelet",
                        )
                    )
                )
                continue
            if spec is not None:
                tasks.append(asyncio.create_task(self._probe_loop(kind, spec, st, c, proc)))
        return tasks

    async def _probe_loop(
        self, kind: str, spec: Any, st: ContainerState, c: Obj, proc: asyncio.subprocess.Process
    ) -> None:
        readiness = kind == "readinessProbe"
        tracker = ProbeTracker(spec.success_threshold, spec.failure_threshold, ok=not readiness)
        await asyncio.sleep(spec.initial_delay)
        async with aiohttp.ClientSession() as session:
            while proc.returncode is None:
                result = await probe_once(spec, session)
                if tracker.feed(result) or (not result and tracker.failures == spec.failure_threshold):
                    if readiness:
                        st.ready = tracker.ok
                        self.changed.set()
                    elif not tracker.ok:
                        await emit_event(
                            self.runner.client,
                            self.pod,
                            "Killing",
                            f"Container {c['name']} failed liveness probe, will be restarted",
                            component="kubelet",
                        )
                        await process.stop_process(proc, self.grace)
                        return
                if not result and tracker.failures == spec.failure_threshold:
                    await emit_event(
                        self.runner.client,
                        self.pod,
                        "Unhealthy",
                        f"{kind.replace('Probe', '').capitalize()} probe failed",
                        type_="Warning",
                        component="kubelet",
                    )
                await asyncio.sleep(spec.period)

    # ---- status ----------------------------------------------------------------------------------------
    def status(self) -> Obj:
        st = pod_status(
            prev={"conditions": self._prev_conditions},
            pod_ip=self.pod_ip,
            start_time=self.start_time,
            policy=self.policy,
            containers=self.containers,
            init_containers=self.inits,
            initialized=self.initialized,
            ts=fmt_time(now()),
            init_failed=self.init_failed,
            failed_reason=self.failed_reason,
            failed_message=self.failed_message,
            extra_conditions=[self.disruption] if self.disruption else None,
            qos=qos_class(self.pod.get("spec") or {}),
        )
        self._prev_conditions = st["conditions"]
        return st

    @property
    def phase(self) -> str:
        return str(self.status()["phase"])

    async def _status_loop(self) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            await self._flush_status()
            await asyncio.sleep(0.05)

    async def _flush_status(self) -> None:
        status = self.status()
        if status == self._last_status:
            return
        try:
            result = await self.runner.client.patch(PODS, self.ns, self.name, {"status": status}, status=True)
        except (ApiError, aiohttp.ClientError, OSError) as e:
            log.debug("pod %s/%s: status not written: %s", self.ns, self.name, e)
            self.changed.set()
            return
        self._last_status = status
        if result is not None and result.get("metadata", {}).get("uid") == self.uid:
            self.runner.pods.put(result)
