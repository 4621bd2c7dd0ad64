"""Resource-oriented verbs and a list+watch cache on the one client (``client.KubeClient``).

The local runtime's controllers (kubelet, Job, Deployment and Endpoints controllers in ``local/runner/``)
address objects by ``Resource`` (group, version, plural) and keep informer caches; this module gives them
those verbs on top of the shared client, so both sides have one transport, one TLS policy (verified unless
told otherwise) and one ``ApiError``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from .client import ApiError, Gone, KubeClient

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


PODS = Resource("", "v1", "pods", "Pod")
SERVICES = Resource("", "v1", "services", "Service")
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
EVENTS = Resource("", "v1", "events", "Event")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
JOBS = Resource("batch", "v1", "jobs", "Job")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")


class ResourceClient:
    """Verbs by ``Resource`` on a ``KubeClient`` (made from ``base_url``, ``token`` and ``ssl_context``:
    None verifies TLS with the system CAs, False skips verification)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        ssl_context: ssl.SSLContext | bool | None = None,
        *,
        client: KubeClient | None = None,
    ) -> None:
        self.http = client or KubeClient(base_url, token=token, ssl_context=ssl_context)

    @property
    def base_url(self) -> str:
        return self.http.server

    async def close(self) -> None:
        await self.http.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        ok404: bool = False,
    ) -> Any:
        try:
            return await self.http.request(method, path, body=body, content_type=content_type, params=params)
        except ApiError as e:
            if ok404 and e.status == 404:
                return None
            raise

    async def get(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        result: Obj | None = await self._request("GET", res.path(namespace, name), ok404=True)
        return result

    async def list(
        self, res: Resource, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[Obj], str]:
        params = {"labelSelector": label_selector} if label_selector else None
        payload = await self._request("GET", res.path(namespace), params=params)
        items = payload.get("items") or []
        for item in items:  # lists omit kind/apiVersion on items
            item.setdefault("kind", res.kind)
            item.setdefault("apiVersion", res.api_version)
        return items, str(payload.get("metadata", {}).get("resourceVersion", ""))

    async def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        resource_version: str = "",
        timeout_seconds: int = 60,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) events; an ERROR event raises (``Gone`` for 410)."""
        async for event in self.http.watch_path(
            res.path(namespace), resource_version=resource_version or None, timeout_seconds=timeout_seconds
        ):
            etype, obj = event.get("type", ""), event.get("object") or {}
            if etype == "ERROR":
                code = int(obj.get("code", 500))
                raise (Gone if code == 410 else ApiError)(
                    code, str(obj.get("reason", "")), str(obj.get("message", f"WATCH {res.plural}")), obj
                )
            yield etype, obj

    async def create(self, res: Resource, namespace: str | None, body: Obj) -> Obj:
        body = {"apiVersion": res.api_version, "kind": res.kind, **body}
        result: Obj = await self._request("POST", res.path(namespace), body=body)
        return result

    async def patch(
        self, res: Resource, namespace: str | None, name: str, patch: Obj, *, status: bool = False
    ) -> Obj | None:
        result: Obj | None = await self._request(
            "PATCH",
            res.path(namespace, name, "status" if status else None),
            body=patch,
            content_type="application/merge-patch+json",
            ok404=True,
        )
        return result

    async def bind(self, namespace: str, name: str, node: str) -> None:
        """Assign a pod to a node as the scheduler does (pods/binding); falls back to setting
        spec.nodeName when the server has no binding subresource."""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self._request("POST", PODS.path(namespace, name, "binding"), body=body)
        except ApiError as e:
            if e.status not in (400, 404, 405):
                raise
            await self.patch(PODS, namespace, name, {"spec": {"nodeName": node}})

    async def delete(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        uid: str | None = None,
    ) -> Obj | None:
        """DELETE; returns the object (still present: finalizers/graceful) or a Status, None when absent."""
        opts: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        if uid:
            opts["preconditions"] = {"uid": uid}
        try:
            result: Obj | None = await self._request(
                "DELETE", res.path(namespace, name), body=opts, ok404=True
            )
        except ApiError as e:
            if e.status == 409 and uid:  # precondition failed: another object by that name now
                return None
            raise
        return result


def rv_newer(new: Obj, old: Obj) -> bool:
    """True unless `new` carries an older integer resourceVersion than `old` (they are opaque in general)."""
    a = new.get("metadata", {}).get("resourceVersion", "")
    b = old.get("metadata", {}).get("resourceVersion", "")
    if a.isdigit() and b.isdigit():
        return int(a) >= int(b)
    return True


def obj_key(obj: Obj) -> tuple[str, str]:
    md = obj.get("metadata", {})
    return md.get("namespace", "") or "", md.get("name", "")


class ResourceInformer:
    """List+watch one resource into a local cache; calls `on_change(type, obj)` for every change."""

    def __init__(
        self,
        client: ResourceClient,
        res: Resource,
        on_change: Callable[[str, Obj], None],
        namespace: str | None = None,
        watch_timeout: int = 60,
    ) -> None:
        self.client, self.res, self.namespace = client, res, namespace
        self.on_change = on_change
        self.cache: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self.watch_timeout = watch_timeout

    def put(self, obj: Obj) -> None:
        """Record our own write's result so the next pass does not act on a stale cache."""
        key = obj_key(obj)
        old = self.cache.get(key)
        if old is None or rv_newer(obj, old):
            self.cache[key] = obj

    def forget(self, obj: Obj) -> None:
        self.cache.pop(obj_key(obj), None)

    def items(self) -> list[Obj]:
        return list(self.cache.values())

    async def run(self) -> None:
        rv = ""
        while True:
            try:
                if not rv:
                    items, rv = await self.client.list(self.res, self.namespace)
                    fresh = {obj_key(o): o for o in items}
                    for key, old in list(self.cache.items()):
                        if key not in fresh:
                            del self.cache[key]
                            self.on_change("DELETED", old)
                    for key, obj in fresh.items():
                        self.cache[key] = obj
                        self.on_change("ADDED", obj)
                    self.synced.set()
                async for etype, obj in self.client.watch(self.res, self.namespace, rv, self.watch_timeout):
                    new_rv = obj.get("metadata", {}).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if etype == "BOOKMARK":
                        continue
                    if etype == "DELETED":
                        self.cache.pop(obj_key(obj), None)
                    else:
                        self.put(obj)  # never regress past a newer result of our own write
                    self.on_change(etype, obj)
            except asyncio.CancelledError:
                raise
            except Gone:
                rv = ""
            except (TimeoutError, aiohttp.ClientError, ApiError, ValueError) as e:
                log.debug("informer %s: %s; relisting", self.res.plural, e)
                rv = ""
                await asyncio.sleep(0.5)
