"""Level-based controller loop shared by the local controllers.

Each controller owns informers (list+watch caches). Any change wakes the loop; every pass looks at the
whole observed state (small, local scale) and acts on the difference, so a missed event only delays work
until the next periodic resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from typing import Any

import aiohttp

from onnxops.local.runner.client import EVENTS, ApiError, Obj, Resource, ResourceClient, ResourceInformer

log = logging.getLogger(__name__)

_ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's generateName alphabet (no vowels)


def rand_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fmt_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str | None) -> dt.datetime | None:
    if not s:
        return None
    s = s.replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(s)
    except ValueError:
        return None


def owner_ref(obj: Obj, controller: bool = True) -> Obj:
    md = obj["metadata"]
    return {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "name": md["name"],
        "uid": md["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: Obj, owner_uid: str) -> bool:
    return any(
        r.get("uid") == owner_uid and r.get("controller")
        for r in obj.get("metadata", {}).get("ownerReferences") or []
    )


def condition(conds: list[Obj] | None, ctype: str) -> Obj | None:
    return next((c for c in conds or [] if c.get("type") == ctype), None)


def pod_ready(pod: Obj) -> bool:
    c = condition(pod.get("status", {}).get("conditions"), "Ready")
    return bool(c and c.get("status") == "True")


def terminating(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


class Controller:
    """Informers + a wake-on-change, resync-periodically reconcile loop; subclasses implement `sync()`."""

    name = "controller"
    resync_seconds = 1.0

    def __init__(self, client: ResourceClient) -> None:
        self.client = client
        self.informers: list[ResourceInformer] = []
        self._wake = asyncio.Event()

    def informer(self, res: Resource) -> ResourceInformer:
        inf = ResourceInformer(self.client, res, self._on_change)
        self.informers.append(inf)
        return inf

    def _on_change(self, etype: str, obj: Obj) -> None:
        self.on_change(etype, obj)
        self._wake.set()

    def on_change(self, etype: str, obj: Obj) -> None:  # hook
        return None

    def wake(self) -> None:
        self._wake.set()

    async def sync(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for inf in self.informers:
                tg.create_task(inf.run())
            for inf in self.informers:
                await inf.synced.wait()
            tg.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: sync failed", self.name)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.resync_seconds)
            await asyncio.sleep(0.02)  # coalesce bursts of events


async def emit_event(
    client: ResourceClient,
    obj: Obj,
    reason: str,
    message: str,
    *,
    type_: str = "Normal",
    component: str = "local",
) -> None:
    """Record a core/v1 Event about `obj` (best effort, like the real components)."""
    md = obj.get("metadata", {})
    ns = md.get("namespace") or "default"
    ts = fmt_time(now())
    body: dict[str, Any] = {
        "metadata": {"name": f"{md.get('name', 'obj')}.{secrets.token_hex(8)}", "namespace": ns},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": md.get("name"),
            "namespace": ns,
            "uid": md.get("uid"),
            "resourceVersion": md.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "count": 1,
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "eventTime": None,
        "source": {"component": component, "host": "local"},
        "reportingComponent": component,
        "reportingInstance": "local",
    }
    try:
        await client.create(EVENTS, ns, body)
    except (ApiError, OSError, RuntimeError, aiohttp.ClientError) as e:  # RuntimeError: client closed
        log.debug("event %s/%s not recorded: %s", ns, reason, e)
