"""Endpoints controller: for every Service with a selector, an Endpoints object (same name) listing the
matching pods' IPs — Ready pods under `addresses`, the others under `notReadyAddresses` — with the service
ports resolved against each pod's container ports (targetPort by name or number), grouped into subsets
by resolved ports as the real controller does. Endpoints of a deleted Service are removed.
"""

from __future__ import annotations

import copy
from typing import Any

from onnxops.local.runner.base import Controller, fmt_time, now, pod_ready, terminating
from onnxops.local.runner.client import ENDPOINTS, PODS, SERVICES, ResourceClient, obj_key

Obj = dict[str, Any]
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


def selects(selector: dict[str, str], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def target_port(svc_port: Obj, pod: Obj) -> int | None:
    """The container port a service port targets on this pod (None: a named port the pod lacks)."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for c in pod.get("spec", {}).get("containers", []):
        for p in c.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == svc_port.get("protocol", "TCP"):
                return int(p["containerPort"])
    return None


def endpoint_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    spec = svc.get("spec", {})
    selector = spec.get("selector")
    ns = svc["metadata"].get("namespace", "default")
    publish = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[str, int, str], ...], Obj] = {}
    for pod in sorted(pods, key=lambda p: p.get("status", {}).get("podIP") or ""):
        md, st = pod["metadata"], pod.get("status", {})
        if (
            md.get("namespace", "default") != ns
            or not selector
            or not selects(selector, md.get("labels"))
            or not st.get("podIP")
            or terminating(pod)
            or st.get("phase") in ("Succeeded", "Failed")
        ):
            continue
        ports = []
        for sp in spec.get("ports") or []:
            tp = target_port(sp, pod)
            if tp is not None:
                ports.append((sp.get("name", ""), tp, sp.get("protocol", "TCP")))
        if not ports:
            continue
        key = tuple(ports)
        subset = groups.setdefault(
            key,
            {
                "ports": [
                    {**({"name": n} if n else {}), "port": p, "protocol": proto} for n, p, proto in ports
                ]
            },
        )
        addr = {
            "ip": st["podIP"],
            "nodeName": pod.get("spec", {}).get("nodeName") or "local",
            "targetRef": {"kind": "Pod", "namespace": ns, "name": md["name"], "uid": md.get("uid")},
        }
        field = "addresses" if publish or pod_ready(pod) else "notReadyAddresses"
        subset.setdefault(field, []).append(addr)
    return [{k: s[k] for k in ("addresses", "notReadyAddresses", "ports") if k in s} for s in groups.values()]


def desired_endpoints(svc: Obj, pods: list[Obj]) -> Obj:
    md = svc["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": md["name"],
            "namespace": md.get("namespace", "default"),
            "labels": dict(md.get("labels") or {}),
        },
        "subsets": endpoint_subsets(svc, pods),
    }


def ready_addresses(endpoints: Obj | None, svc: Obj | None, port: int | str) -> list[str]:
    """`ip:port` of the ready endpoints behind the Service port `port` (its number or name)."""
    if not endpoints or not svc:
        return []
    sp = next(
        (
            p
            for p in svc.get("spec", {}).get("ports") or []
            if p.get("port") == port or (p.get("name") and p.get("name") == port)
        ),
        None,
    )
    if sp is None:
        return []
    out = []
    for subset in endpoints.get("subsets") or []:
        ep = next((p for p in subset.get("ports") or [] if p.get("name", "") == sp.get("name", "")), None)
        if ep is None:
            continue
        out += [f"{a['ip']}:{ep['port']}" for a in subset.get("addresses") or []]
    return out


class EndpointsController(Controller):
    name = "endpoints-controller"

    def __init__(self, client: ResourceClient) -> None:
        super().__init__(client)
        self.services = self.informer(SERVICES)
        self.endpoints = self.informer(ENDPOINTS)
        self.pods = self.informer(PODS)

    async def sync(self) -> None:
        pods = self.pods.items()
        services = {obj_key(s): s for s in self.services.items()}
        for key, svc in services.items():
            if not svc.get("spec", {}).get("selector") or terminating(svc):
                continue
            want = desired_endpoints(svc, pods)
            have = self.endpoints.cache.get(key)
            if have is None:
                body = copy.deepcopy(want)
                body["metadata"]["annotations"] = {TRIGGER: fmt_time(now())}
                self.endpoints.put(await self.client.create(ENDPOINTS, key[0], body))
            elif (have.get("subsets") or []) != want["subsets"] or (
                (have["metadata"].get("labels") or {}) != want["metadata"]["labels"]
            ):
                patch = {
                    "metadata": {
                        "labels": want["metadata"]["labels"] or None,
                        "annotations": {TRIGGER: fmt_time(now())},
                    },
                    "subsets": want["subsets"] or None,
                }
                updated = await self.client.patch(ENDPOINTS, key[0], key[1], patch)
                if updated is not None:
                    self.endpoints.put(updated)
        for key, ep in list(self.endpoints.cache.items()):
            if key not in services and TRIGGER in (ep["metadata"].get("annotations") or {}):
                await self.client.delete(ENDPOINTS, key[0], key[1])
                self.endpoints.forget(ep)
