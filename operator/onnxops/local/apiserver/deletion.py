"""Deletion: preconditions, finalizers (deletionTimestamp first, removal when the last one goes),
graceful pod deletion, propagation policies and owner-reference garbage collection.

Garbage collection runs synchronously right after an owner is removed (the real collector is
asynchronous; clients only rely on dependents disappearing soon after their owner). Objects whose
ownerReferences name owners that never existed are left alone.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import TYPE_CHECKING, Any

from .defaults import now
from .errors import bad_request, conflict
from .registry import CRD_GROUP_RESOURCE, ResourceInfo

if TYPE_CHECKING:
    from .objects import Cluster

Obj = dict[str, Any]
FOREGROUND = "foregroundDeletion"
POLICIES = ("Orphan", "Background", "Foreground")


def default_policy(info: ResourceInfo) -> str:
    """batch/v1 Jobs orphan their pods by default when deleted through the API (kubectl asks for
    Background explicitly); every other kind deletes dependents in the background."""
    return "Orphan" if (info.group, info.plural) == ("batch", "jobs") else "Background"


def _policy(info: ResourceInfo, options: Obj) -> str:
    policy = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is not None:
        policy = "Orphan" if options["orphanDependents"] else "Background"
    policy = policy or default_policy(info)
    if policy not in POLICIES:
        raise bad_request(f"Unsupported value: {policy!r}: supported values: {', '.join(POLICIES)}")
    return str(policy)


def _pod_grace(info: ResourceInfo, obj: Obj, options: Obj) -> int:
    """Seconds of graceful deletion for a pod a node runs (0: delete now), as the real server decides."""
    if (info.group, info.plural) != ("", "pods"):
        return 0
    if not (obj.get("spec") or {}).get("nodeName"):
        return 0  # never scheduled: nothing to stop
    if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
    return max(int(grace), 0)


def delete(cluster: Cluster, info: ResourceInfo, obj: Obj, options: Obj) -> Obj:
    meta = obj["metadata"]
    pre = options.get("preconditions") or {}
    for key in ("uid", "resourceVersion"):
        if pre.get(key) and pre[key] != meta.get(key):
            raise conflict(
                info.plural,
                info.group,
                meta["name"],
                f"Precondition failed: {key} in precondition: {pre[key]}, {key} in object meta: "
                f"{meta.get(key)}",
            )
    policy = _policy(info, options)
    if policy == "Orphan":
        orphan_dependents(cluster, meta["uid"])
    new = copy.deepcopy(obj)
    nm = new["metadata"]
    finalizers = list(nm.get("finalizers") or [])
    if policy == "Foreground" and FOREGROUND not in finalizers and dependents(cluster, meta["uid"]):
        finalizers.append(FOREGROUND)
    grace = _pod_grace(info, obj, options)
    if not finalizers and grace == 0:
        return remove(cluster, info, cluster._stamp(new))
    current = nm.get("deletionGracePeriodSeconds")
    if (
        nm.get("deletionTimestamp")
        and (current is None or grace >= current)
        and finalizers == list(meta.get("finalizers") or [])
    ):
        return obj  # already being deleted; nothing changes
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)
    nm["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ") if grace else now()
    nm["deletionGracePeriodSeconds"] = grace
    if finalizers:
        nm["finalizers"] = finalizers
    cluster.store.put(info.group_resource, cluster._stamp(new), "MODIFIED")
    if FOREGROUND in finalizers:
        collect(cluster, meta["uid"], policy="Foreground")
        _finish_foreground(cluster, new)
    return new


def remove(cluster: Cluster, info: ResourceInfo, obj: Obj, gc: bool = True) -> Obj:
    """Remove a stamped object for good: contents of a namespace first, then the object, then its
    dependents (garbage collection), then owners waiting in foreground deletion."""
    meta = obj["metadata"]
    if info.group_resource == ("", "namespaces"):
        for res in {i.group_resource: i for i in cluster.registry.all() if i.namespaced}.values():
            for child in cluster.store.items(res.group_resource, meta["name"]):
                if cluster.store.get(res.group_resource, meta["name"], child["metadata"]["name"]) is child:
                    delete(cluster, res, child, {"propagationPolicy": "Background", "gracePeriodSeconds": 0})
    cluster.store.remove(info.group_resource, obj)
    if info.group_resource == CRD_GROUP_RESOURCE:
        cluster.unregister_crd(obj)
    if gc:
        collect(cluster, meta["uid"], policy="Background")
        for ref in meta.get("ownerReferences") or []:
            owner = _by_uid(cluster, ref.get("uid"))
            if owner is not None:
                _finish_foreground(cluster, owner[1])
    return obj


def _info_for(cluster: Cluster, gr: tuple[str, str]) -> ResourceInfo | None:
    versions = cluster.registry.versions(*gr)
    return versions[0] if versions else None


def _by_uid(cluster: Cluster, uid: str | None) -> tuple[tuple[str, str], Obj] | None:
    return cluster.store.by_uid(uid)


def dependents(cluster: Cluster, owner_uid: str) -> list[tuple[tuple[str, str], Obj]]:
    return cluster.store.dependents(owner_uid)


def collect(cluster: Cluster, owner_uid: str, policy: str) -> None:
    """Delete the dependents of a removed (or foreground-deleting) owner that have no other live owner."""
    for gr, obj in dependents(cluster, owner_uid):
        others = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
        info = _info_for(cluster, gr)
        if info is None or any(cluster.store.by_uid(r.get("uid")) is not None for r in others):
            continue
        current = cluster.store.get(gr, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is not None:
            delete(cluster, info, current, {"propagationPolicy": policy})


def orphan_dependents(cluster: Cluster, owner_uid: str) -> None:
    for gr, obj in dependents(cluster, owner_uid):
        info = _info_for(cluster, gr)
        if info is None:
            continue
        new = copy.deepcopy(obj)
        refs = [r for r in new["metadata"]["ownerReferences"] if r.get("uid") != owner_uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            del new["metadata"]["ownerReferences"]
        cluster.store.put(gr, cluster._stamp(new), "MODIFIED")


def _finish_foreground(cluster: Cluster, owner: Obj) -> None:
    """Drop the foregroundDeletion finalizer once an owner has no dependents left."""
    meta = owner["metadata"]
    if FOREGROUND not in (meta.get("finalizers") or []) or dependents(cluster, meta["uid"]):
        return
    found = _by_uid(cluster, meta["uid"])
    info = _info_for(cluster, found[0]) if found else None
    if found is None or info is None:
        return
    new = copy.deepcopy(found[1])
    new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"] if f != FOREGROUND]
    if new["metadata"]["finalizers"]:
        cluster.store.put(info.group_resource, cluster._stamp(new), "MODIFIED")
    else:
        del new["metadata"]["finalizers"]
        remove(cluster, info, cluster._stamp(new))
