"""An informer: a local copy of one kind's objects, kept current by LIST + WATCH, with indexes.

The reconcilers read an InferenceService's ModelVersions and a ModelVersion's InferenceServices from here
instead of LISTing the namespace on every reconcile (that made the work grow with the square of the objects
per namespace).

Hand-written rather than kopf's ``@kopf.index`` because an index must survive a watch restart: after a
``410 Gone`` (or any broken stream) kopf re-lists and replays every object as an event, but an object deleted
while the stream was down never gets a DELETED event, so kopf's index would keep it forever. Here a re-list
*replaces* the store (as client-go's ``Reflector.Replace`` does): what the new list lacks is removed and
reported as deleted. kubernetes-asyncio's informer-less watch has the same gap; the official Python client
has no async informer.

:class:`Store` is pure (unit-tested: add, modify, delete, relist); :class:`Informer` is the I/O loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .client import ApiError, KubeClient

log = logging.getLogger(__name__)
ObjKey = tuple[str, str]  # (namespace, name)
IndexFn = Callable[[dict[str, Any]], Iterable[Hashable]]
# (event type ADDED/MODIFIED/DELETED, old object or None, new object or None)
Listener = Callable[[str, dict[str, Any] | None, dict[str, Any] | None], None]
DROPPED_METADATA = ("managedFields",)  # never read by the reconcilers; the largest part of an object


def key_of(obj: dict[str, Any]) -> ObjKey:
    md = obj.get("metadata") or {}
    return (str(md.get("namespace") or ""), str(md.get("name") or ""))


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    md = obj.get("metadata")
    if isinstance(md, dict) and any(k in md for k in DROPPED_METADATA):
        obj = {**obj, "metadata": {k: v for k, v in md.items() if k not in DROPPED_METADATA}}
    return obj


TOMBSTONES = 4096  # uids of recently deleted objects (see Store.add_created)


def without_own_fields(manager: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A trim keeping ``managedFields`` but ``manager``'s own entries (the largest: the whole spec it
    applied), which ``kube/apply.py`` never reads: it looks for fields *other* managers added."""

    def trim(obj: dict[str, Any]) -> dict[str, Any]:
        md = obj.get("metadata")
        mf = md.get("managedFields") if isinstance(md, dict) else None
        if not isinstance(md, dict) or not isinstance(mf, list):
            return obj
        kept = [e for e in mf if not (isinstance(e, dict) and e.get("manager") == manager)]
        return obj if len(kept) == len(mf) else {**obj, "metadata": {**md, "managedFields": kept}}

    return trim


@dataclass
class Store:
    """Objects by (namespace, name), plus named indexes: index name -> key -> set of object keys.

    ``trim``: what is kept of each object; by default all but ``metadata.managedFields`` (the reconcilers
    of these objects never read them; a child store keeps other managers' entries: ``kube/apply.py``
    reads who else set which field, see :func:`without_own_fields`)."""

    indexers: dict[str, IndexFn] = field(default_factory=dict)
    trim: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda o: _slim(o))
    # Each object is kept as its JSON (orjson bytes) and decoded on read: 5-10x less memory than the dicts
    # (a served Deployment is ~40 KiB of Python objects, ~4 KiB of JSON), and every reader gets its own copy.
    _data: dict[ObjKey, bytes] = field(default_factory=dict)
    _rvs: dict[ObjKey, str | None] = field(default_factory=dict)
    _index: dict[str, dict[Hashable, set[ObjKey]]] = field(default_factory=dict)
    _keys: dict[str, dict[ObjKey, tuple[Hashable, ...]]] = field(default_factory=dict)
    _deleted: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        for name in self.indexers:
            self._index.setdefault(name, {})
            self._keys.setdefault(name, {})

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def keys(self) -> list[ObjKey]:
        return list(self._data)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of the object (None: not in the store)."""
        raw = self._data.get((namespace, name))
        return None if raw is None else orjson.loads(raw)

    def by_index(self, index: str, value: Hashable) -> list[dict[str, Any]]:
        """Copies of the objects whose ``index`` function gave ``value``, by name."""
        keys = self._index[index].get(value, ())
        return [orjson.loads(self._data[k]) for k in sorted(keys)]

    def _unindex(self, k: ObjKey) -> None:
        for name, keys in self._keys.items():
            for v in keys.pop(k, ()):
                bucket = self._index[name].get(v)
                if bucket is not None:
                    bucket.discard(k)
                    if not bucket:
                        del self._index[name][v]

    def _put(self, obj: dict[str, Any]) -> None:
        k = key_of(obj)
        if k in self._data:
            self._unindex(k)
        self._data[k] = orjson.dumps(obj)
        self._rvs[k] = _rv(obj)
        for name, fn in self.indexers.items():
            values = tuple(dict.fromkeys(fn(obj)))
            self._keys[name][k] = values
            for v in values:
                self._index[name].setdefault(v, set()).add(k)

    def _remove(self, k: ObjKey) -> dict[str, Any] | None:
        raw = self._data.pop(k, None)
        if raw is None:
            return None
        self._rvs.pop(k, None)
        self._unindex(k)
        old: dict[str, Any] = orjson.loads(raw)
        uid = (old.get("metadata") or {}).get("uid")
        if uid:
            self._deleted[str(uid)] = None
            while len(self._deleted) > TOMBSTONES:
                self._deleted.popitem(last=False)
        return old

    def _same(self, k: ObjKey, obj: dict[str, Any]) -> bool:
        """The store holds this very version of the object already (same resourceVersion)."""
        rv = _rv(obj)
        return rv is not None and k in self._data and self._rvs.get(k) == rv

    def _old(self, k: ObjKey) -> dict[str, Any] | None:
        raw = self._data.get(k)
        return None if raw is None else orjson.loads(raw)

    def add_created(self, obj: dict[str, Any]) -> bool:
        """Our own create's answer, before its watch event arrives (so the next reconcile does not create it
        again). Only when the store has no object of that name and that uid was not deleted meanwhile: an
        object already there is as new or newer (its watch event came first) and a deleted one stays
        deleted. No listener is told: the watch event of this create will find it unchanged."""
        k = key_of(obj)
        uid = (obj.get("metadata") or {}).get("uid")
        if k in self._data or (uid and str(uid) in self._deleted):
            return False
        self._put(self.trim(obj))
        return True

    def update_if(self, obj: dict[str, Any], read_rv: str | None) -> bool:
        """Our own write's answer (a patch of an object we read at ``read_rv``), before its watch event
        arrives: taken only while the store still holds the version we read, so a newer change the watch
        delivered meanwhile is never replaced by our older answer. No listener is told (as add_created)."""
        k = key_of(obj)
        if k not in self._data or read_rv is None or self._rvs.get(k) != str(read_rv):
            return False
        self._put(self.trim(obj))
        return True

    def apply(self, event_type: str, obj: dict[str, Any]) -> tuple[str, dict[str, Any] | None] | None:
        """One watch event. Returns (effective type, old object), or None when nothing changed (a replayed
        or older resourceVersion, a DELETED of an unknown object)."""
        obj = self.trim(obj)
        k = key_of(obj)
        if event_type == "DELETED":
            old = self._remove(k)
            return None if old is None else ("DELETED", old)
        if self._same(k, obj):
            return None
        old = self._old(k)
        self._put(obj)
        return ("ADDED" if old is None else "MODIFIED", old)

    def replace(
        self, objs: Iterable[dict[str, Any]], scope: str | None = None
    ) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
        """A (re)list: the store becomes exactly ``objs`` (in namespace ``scope``; None: all). Returns the
        changes as (type, old, new): objects the list lacks are DELETED, new ones ADDED, changed MODIFIED."""
        changes: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = []
        seen: set[ObjKey] = set()
        for raw in objs:
            obj = self.trim(raw)
            k = key_of(obj)
            seen.add(k)
            if self._same(k, obj):
                continue
            old = self._old(k)
            self._put(obj)
            changes.append(("ADDED" if old is None else "MODIFIED", old, obj))
        gone = [k for k in self._data if k not in seen and (scope is None or k[0] == scope)]
        for k in gone:
            changes.append(("DELETED", self._remove(k), None))
        return changes


def _rv(obj: dict[str, Any]) -> str | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return None if rv is None else str(rv)


class Informer:
    """LIST + WATCH of one kind in one namespace (None: cluster-wide) into a :class:`Store`.

    A broken or timed-out stream resumes from the last resourceVersion; a ``410 Gone`` (the version is too
    old) or any other error re-lists and replaces the store. ``listeners`` are called after the store
    changed, for every change (also those a re-list found)."""

    WATCH_TIMEOUT_S = 240
    RETRY_S = (0.5, 10.0)

    def __init__(
        self,
        client: KubeClient,
        api_version: str,
        kind: str,
        namespace: str | None,
        store: Store,
        listeners: Iterable[Listener] = (),
        label_selector: str | None = None,
    ) -> None:
        self.client, self.api_version, self.kind, self.namespace = client, api_version, kind, namespace
        self.label_selector = label_selector
        self.store = store
        self.listeners = list(listeners)
        self.synced = asyncio.Event()
        self.relists = 0  # how many times the store was (re)built from a LIST (tests, metrics)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def _notify(self, etype: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for fn in self.listeners:
            try:
                fn(etype, old, new)
            except Exception:  # a listener never breaks the stream
                log.exception("%s informer listener failed", self.kind)

    async def _list(self) -> str | None:
        params = {"labelSelector": self.label_selector} if self.label_selector else None
        data = await self.client.request(
            "GET", _path(self.api_version, self.kind, self.namespace), params=params
        )
        items = data.get("items") or []
        for it in items:
            it.setdefault("apiVersion", self.api_version)
            it.setdefault("kind", self.kind)
        for etype, old, new in self.store.replace(items, self.namespace):
            self._notify(etype, old, new)
        self.relists += 1
        self.synced.set()
        rv = (data.get("metadata") or {}).get("resourceVersion")
        return None if rv is None else str(rv)

    async def _run(self) -> None:
        delay = self.RETRY_S[0]
        rv: str | None = None
        while True:
            try:
                if rv is None:
                    rv = await self._list()
                rv = await self._watch(rv)
                delay = self.RETRY_S[0]
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("%s informer: %s; listing again in %.1fs", self.kind, e, delay)
                rv = None
                await asyncio.sleep(delay)
                delay = min(self.RETRY_S[1], delay * 2)

    async def _watch(self, rv: str | None) -> str | None:
        """Stream events from ``rv``; returns the resourceVersion to resume from (None: re-list)."""
        try:
            async for ev in self.client.watch(
                self.api_version,
                self.kind,
                self.namespace,
                resource_version=rv,
                timeout_seconds=self.WATCH_TIMEOUT_S,
                label_selector=self.label_selector,
            ):
                etype, obj = ev.get("type"), ev.get("object") or {}
                if etype == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('reason')}")
                new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                if etype == "BOOKMARK":
                    rv = str(new_rv) if new_rv is not None else rv
                    continue
                if etype not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                obj.setdefault("apiVersion", self.api_version)
                obj.setdefault("kind", self.kind)
                changed = self.store.apply(etype, obj)
                if new_rv is not None:
                    rv = str(new_rv)
                if changed is not None:
                    ctype, old = changed
                    self._notify(ctype, old, None if ctype == "DELETED" else self.store.get(*key_of(obj)))
        except ApiError as e:
            if e.status == 410:
                return None
            raise
        return rv


def _path(api_version: str, kind: str, namespace: str | None) -> str:
    from .client import resource_path

    return resource_path(api_version, kind, namespace)
