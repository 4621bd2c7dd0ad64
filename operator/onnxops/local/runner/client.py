"""A small async Kubernetes REST client (aiohttp) for the local controllers.

It speaks the plain Kubernetes API (get/list/watch/create/merge-patch/patch status/delete), so the same
controllers work against the local emulator and, in principle, a real API server (bearer token + TLS
context). Kept deliberately small: the controllers need nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

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


class ApiError(Exception):
    def __init__(self, status: int, body: Any, what: str) -> None:
        self.status = status
        self.body = body
        msg = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"{what}: HTTP {status}: {msg}")


class Gone(ApiError):
    """410: the watch's resourceVersion is too old; relist."""


class KubeClient:
    def __init__(self, base_url: str, token: str | None = None, ssl_context: ssl.SSLContext | None = None):
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers, connector=aiohttp.TCPConnector(ssl=self._ssl, limit=32)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self, method: str, path: str, *, params: dict[str, str] | None = None,
        body: Any = None, content_type: str = "application/json", ok404: bool = False,
    ) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self.session.request(
            method, self.base_url + path, params=params, data=data, headers=headers,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as resp:
            text = await resp.text()
            try:
                payload: Any = json.loads(text) if text else None
            except ValueError:
                payload = text
            if resp.status == 404 and ok404:
                return None
            if resp.status >= 400:
                cls = Gone if resp.status == 410 else ApiError
                raise cls(resp.status, payload, f"{method} {path}")
            return payload

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
        self, res: Resource, namespace: str | None = None, resource_version: str = "",
        timeout_seconds: int = 60,
    ) -> AsyncIterator[tuple[str, Obj]]:
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds), "allowWatchBookmarks": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        async with self.session.get(
            self.base_url + res.path(namespace), params=params,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30),
        ) as resp:
            if resp.status >= 400:
                text = await resp.text()
                cls = Gone if resp.status == 410 else ApiError
                raise cls(resp.status, _json_or_text(text), f"WATCH {res.plural}")
            buf = b""
            async for chunk in resp.content.iter_any():  # no line-length limit (large objects)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.strip()
                    if not line:
                        continue
                    event = json.loads(line)
                    etype, obj = event.get("type", ""), event.get("object") or {}
                    if etype == "ERROR":
                        code = int(obj.get("code", 500))
                        raise (Gone if code == 410 else ApiError)(code, obj, f"WATCH {res.plural}")
                    yield etype, obj

    async def create(self, res: Resource, namespace: str | None, body: Obj) -> Obj:
        body = {"apiVersion": res.api_version, "kind": res.kind, **body}
        result: Obj = await self._request("POST", res.path(namespace), body=body)
        return result

    async def patch(
        self, res: Resource, namespace: str | None, name: str, patch: Obj, *, status: bool = False
    ) -> Obj | None:
        result: Obj | None = await self._request(
            "PATCH", res.path(namespace, name, "status" if status else None), body=patch,
            content_type="application/merge-patch+json", ok404=True,
        )
        return result

    async def bind(self, namespace: str, name: str, node: str) -> None:
        """Assign a pod to a node as the scheduler does (pods/binding); falls back to setting
        spec.nodeName when the server has no binding subresource."""
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await self._request("POST", PODS.path(namespace, name, "binding"), body=body)
        except ApiError as e:
            if e.status not in (400, 404, 405):
                raise
            await self.patch(PODS, namespace, name, {"spec": {"nodeName": node}})

    async def delete(
        self, res: Resource, namespace: str | None, name: str, *, grace_period_seconds: int | None = None,
        propagation_policy: str | None = None, uid: str | None = None,
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


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


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


class Informer:
    """List+watch one resource into a local cache; calls `on_change(type, obj)` for every change."""

    def __init__(
        self, client: KubeClient, res: Resource, on_change: Callable[[str, Obj], None],
        namespace: str | None = None, watch_timeout: int = 60,
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
