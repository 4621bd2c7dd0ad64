"""apps/v1 Deployment controller. Deliberate simplification: no ReplicaSets — the Deployment owns its
pods directly (controller owner reference, so deleting it garbage-collects them). Pods are named
`<deployment>-<pod-template-hash>-<random>` and labelled `pod-template-hash`, a stable hash of the template,
so the names and labels look as on a cluster.

RollingUpdate honours maxSurge/maxUnavailable (ints or percentages, as the real controller rounds them;
the API default 25%/25% with one replica means surge 1, unavailable 0): start new pods, wait until they
are available (Ready for minReadySeconds), then delete old ones. Recreate deletes the old pods first.
Status: replicas, updated/ready/available/unavailableReplicas, observedGeneration and the conditions
Available (MinimumReplicasAvailable) and Progressing (NewReplicaSetCreated, ReplicaSetUpdated,
NewReplicaSetAvailable, ProgressDeadlineExceeded).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
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
from onnxops.local.runner.client import DEPLOYMENTS, PODS, ResourceClient

Obj = dict[str, Any]
HASH_LABEL = "pod-template-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj) -> str:
    """A stable, label-safe hash of the pod template (10 chars of the apiserver's vowel-free alphabet)."""
    digest = int.from_bytes(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:8], "big")
    out = []
    for _ in range(10):
        digest, r = divmod(digest, len(_ALPHABET))
        out.append(_ALPHABET[r])
    return "".join(out)


def resolve_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        x = int(value[:-1]) * total / 100
        return math.ceil(x) if round_up else math.floor(x)
    return int(value)


def surge_and_unavailable(spec: Obj, replicas: int) -> tuple[int, int]:
    ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve_int_or_percent(ru.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = resolve_int_or_percent(ru.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        surge = 1  # the API forbids both zero; be lenient
    return surge, unavailable


def is_available(pod: Obj, min_ready: int, t: dt.datetime) -> bool:
    if not pod_ready(pod):
        return False
    c = condition(pod.get("status", {}).get("conditions"), "Ready") or {}
    since = parse_time(c.get("lastTransitionTime"))
    return min_ready <= 0 or since is None or t >= since + dt.timedelta(seconds=min_ready)


def deployment_pod(dep: Obj, h: str) -> Obj:
    md, tmpl = dep["metadata"], copy.deepcopy(dep["spec"]["template"])
    tmd = tmpl.get("metadata") or {}
    spec = tmpl.get("spec", {})
    spec.setdefault("nodeName", "local")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{md['name']}-{h}-{rand_suffix()}",
            "namespace": md.get("namespace", "default"),
            "labels": {**(tmd.get("labels") or {}), HASH_LABEL: h},
            "annotations": dict(tmd.get("annotations") or {}),
            "ownerReferences": [owner_ref(dep)],
        },
        "spec": spec,
    }


@dataclass
class DeploymentActions:
    create: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def _delete_order(p: Obj) -> tuple[int, str]:
    """Scale down not-ready pods first, then the newest."""
    return (1 if pod_ready(p) else 0, p["metadata"].get("creationTimestamp") or "")


def decide_deployment(dep: Obj, pods: list[Obj], t: dt.datetime) -> DeploymentActions:
    spec, prev, md = dep.get("spec", {}), dep.get("status") or {}, dep["metadata"]
    act = DeploymentActions()
    replicas = int(spec.get("replicas", 1))
    min_ready = int(spec.get("minReadySeconds", 0))
    h = template_hash(spec.get("template", {}))
    rs_name = f"{md['name']}-{h}"
    live = [p for p in pods if not terminating(p)]
    dead = [p for p in live if p.get("status", {}).get("phase") in ("Succeeded", "Failed")]
    live = [p for p in live if p not in dead]
    new = [p for p in live if p["metadata"].get("labels", {}).get(HASH_LABEL) == h]
    old = [p for p in live if p not in new]
    avail = [p for p in live if is_available(p, min_ready, t)]
    surge, max_unavailable = surge_and_unavailable(spec, replicas)
    act.delete = list(dead)
    if not spec.get("paused"):
        _scale(
            dep,
            h,
            act,
            pods=pods,
            live=live,
            new=new,
            old=old,
            avail=avail,
            surge=surge,
            max_unavailable=max_unavailable,
        )
    if act.create and not new and not old:
        act.events.append(("Normal", "ScalingReplicaSet", f"Scaled up replica set {rs_name} to {replicas}"))

    ready = sum(1 for p in live if pod_ready(p))
    status: Obj = {
        "observedGeneration": md.get("generation", 1),
        "replicas": len(live),
        "updatedReplicas": len(new),
        "readyReplicas": ready,
        "availableReplicas": len(avail),
        "unavailableReplicas": max(0, max(replicas, len(live)) - len(avail)),
    }
    conds: list[Obj] = copy.deepcopy(prev.get("conditions") or [])
    ts = fmt_time(t)
    ok = len(avail) >= replicas - max_unavailable
    _set(
        conds,
        "Available",
        ok,
        "MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable",
        "Deployment has minimum availability." if ok else "Deployment does not have minimum availability.",
        ts,
        touch=False,
    )
    complete = len(new) == replicas and not old and len(avail) >= replicas and len(live) == replicas
    counts = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    moved = bool(act.create or act.delete) or any(prev.get(k, 0) != status[k] for k in counts)
    progressing = condition(conds, "Progressing")
    if spec.get("paused"):
        _set(conds, "Progressing", None, "DeploymentPaused", "Deployment is paused", ts, touch=True)
    elif complete:
        _set(
            conds,
            "Progressing",
            True,
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
            ts,
            touch=moved,
        )
    elif progressing is None or (not new and act.create):
        _set(
            conds,
            "Progressing",
            True,
            "NewReplicaSetCreated",
            f'Created new replica set "{rs_name}"',
            ts,
            touch=True,
        )
    elif moved:
        _set(
            conds,
            "Progressing",
            True,
            "ReplicaSetUpdated",
            f'ReplicaSet "{rs_name}" is progressing.',
            ts,
            touch=True,
        )
    else:
        last = parse_time(progressing.get("lastUpdateTime"))
        deadline = int(spec.get("progressDeadlineSeconds", 600))
        if last is not None and t >= last + dt.timedelta(seconds=deadline):
            if progressing.get("reason") != "ProgressDeadlineExceeded":
                act.events.append(
                    (
                        "Warning",
                        "ProgressDeadlineExceeded",
                        f'ReplicaSet "{rs_name}" has timed out progressing.',
                    )
                )
            _set(
                conds,
                "Progressing",
                False,
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                ts,
                touch=False,
            )
    status["conditions"] = conds
    for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"):
        if not status[k]:  # omitempty, as the API server serialises them
            del status[k]
    act.status = status
    return act


def _scale(
    dep: Obj,
    h: str,
    act: DeploymentActions,
    *,
    pods: list[Obj],
    live: list[Obj],
    new: list[Obj],
    old: list[Obj],
    avail: list[Obj],
    surge: int,
    max_unavailable: int,
) -> None:
    """The pods to create and delete (into ``act``) of a Deployment that is not paused: Recreate, or a
    rolling update within maxSurge / maxUnavailable, or a plain scale."""
    spec = dep.get("spec", {})
    replicas = int(spec.get("replicas", 1))
    recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
    if recreate and old:
        act.delete += old
    elif recreate and any(terminating(p) for p in pods):
        pass  # Recreate: wait until the old pods are gone
    elif not old:
        if len(new) < replicas:
            act.create = [deployment_pod(dep, h) for _ in range(replicas - len(new))]
        elif len(new) > replicas:
            act.delete += sorted(new, key=_delete_order)[: len(new) - replicas]
    else:
        room = min(replicas - len(new), replicas + surge - len(live))
        act.create = [deployment_pod(dep, h) for _ in range(max(0, room))]
        unhealthy_old = [p for p in old if p not in avail]
        act.delete += unhealthy_old
        budget = len(avail) - (replicas - max_unavailable)
        healthy_old = sorted((p for p in old if p in avail), key=_delete_order)
        act.delete += healthy_old[: max(0, budget)]


def _set(
    conds: list[Obj], ctype: str, ok: bool | None, reason: str, message: str, ts: str, touch: bool
) -> None:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    c = condition(conds, ctype)
    if c is None:
        conds.append(
            {
                "type": ctype,
                "status": status,
                "lastUpdateTime": ts,
                "lastTransitionTime": ts,
                "reason": reason,
                "message": message,
            }
        )
        return
    if c.get("status") != status:
        c["lastTransitionTime"] = ts
        touch = True
    if touch or c.get("reason") != reason:
        c["lastUpdateTime"] = ts
    c.update(status=status, reason=reason, message=message)


class DeploymentController(Controller):
    name = "deployment-controller"

    def __init__(self, client: ResourceClient) -> None:
        super().__init__(client)
        self.deployments = self.informer(DEPLOYMENTS)
        self.pods = self.informer(PODS)

    async def sync(self) -> None:
        pods = self.pods.items()
        for dep in self.deployments.items():
            if terminating(dep):
                continue
            owned = [p for p in pods if owned_by(p, dep["metadata"]["uid"])]
            await self._apply(dep, decide_deployment(dep, owned, now()))

    async def _apply(self, dep: Obj, act: DeploymentActions) -> None:
        md = dep["metadata"]
        ns, name = md.get("namespace", "default"), md["name"]
        for etype, reason, message in act.events:
            await emit_event(
                self.client, dep, reason, message, type_=etype, component="deployment-controller"
            )
        for pod in act.create:
            self.pods.put(await self.client.create(PODS, ns, pod))
        for pod in act.delete:
            res = await self.client.delete(PODS, ns, pod["metadata"]["name"], uid=pod["metadata"].get("uid"))
            if res is not None and res.get("kind") == "Pod":
                self.pods.put(res)
            else:
                self.pods.forget(pod)
        prev = dep.get("status") or {}
        if act.status != prev:
            patch = {**{k: None for k in prev if k not in act.status}, **act.status}
            updated = await self.client.patch(DEPLOYMENTS, ns, name, {"status": patch}, status=True)
            if updated is not None:
                self.deployments.put(updated)
