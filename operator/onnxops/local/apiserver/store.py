"""In-memory object storage: a cluster-wide resourceVersion counter, a bounded event history and the
watchers' queues. Objects are never mutated in place once stored (updates store a new dict), so events
and readers can share them safely."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError

GroupResource = tuple[str, str]
ObjKey = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    group_resource: GroupResource
    namespace: str
    obj: dict[str, Any]


@dataclass(eq=False)
class Watcher:
    group_resource: GroupResource
    namespace: str | None
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def wants(self, event: Event) -> bool:
        return event.group_resource == self.group_resource and (
            self.namespace is None or self.namespace == event.namespace
        )


def gone(requested: int, oldest: int) -> ApiError:
    return ApiError(410, f"too old resource version: {requested} ({oldest})", reason="Expired")


class Store:
    def __init__(self, history_size: int = 10_000) -> None:
        self._objects: dict[GroupResource, dict[ObjKey, dict[str, Any]]] = {}
        self._rv = 0
        self._history: deque[Event] = deque(maxlen=history_size)
        self._compacted = 0  # events with rv <= this are no longer in the history
        self._watchers: set[Watcher] = set()
        # indexes for garbage collection: uid -> where the object lives; owner uid -> dependents' places
        self._by_uid: dict[str, tuple[GroupResource, ObjKey]] = {}
        self._dependents: dict[str, set[tuple[GroupResource, ObjKey]]] = {}

    # --- resource versions -----------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def next_rv(self) -> int:
        self._rv += 1
        return self._rv

    # --- objects ------------------------------------------------------------------------------------
    def get(self, gr: GroupResource, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get(gr, {}).get((namespace, name))

    def items(self, gr: GroupResource, namespace: str | None = None) -> list[dict[str, Any]]:
        objs = self._objects.get(gr, {})
        if namespace is None:
            return [objs[k] for k in sorted(objs)]
        return [objs[k] for k in sorted(objs) if k[0] == namespace]

    def by_uid(self, uid: str | None) -> tuple[GroupResource, dict[str, Any]] | None:
        place = self._by_uid.get(uid or "")
        if place is None:
            return None
        obj = self._objects.get(place[0], {}).get(place[1])
        return (place[0], obj) if obj is not None else None

    def dependents(self, owner_uid: str) -> list[tuple[GroupResource, dict[str, Any]]]:
        """Objects whose ownerReferences name `owner_uid`."""
        found = []
        for gr, key in sorted(self._dependents.get(owner_uid, ())):
            obj = self._objects.get(gr, {}).get(key)
            if obj is not None:
                found.append((gr, obj))
        return found

    def _unindex(self, gr: GroupResource, key: ObjKey, obj: dict[str, Any] | None) -> None:
        if obj is None:
            return
        meta = obj["metadata"]
        self._by_uid.pop(meta.get("uid", ""), None)
        for ref in meta.get("ownerReferences") or []:
            places = self._dependents.get(ref.get("uid", ""))
            if places is not None:
                places.discard((gr, key))
                if not places:
                    del self._dependents[ref.get("uid", "")]

    def _index(self, gr: GroupResource, key: ObjKey, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self._by_uid[meta["uid"]] = (gr, key)
        for ref in meta.get("ownerReferences") or []:
            self._dependents.setdefault(ref.get("uid", ""), set()).add((gr, key))

    def put(self, gr: GroupResource, obj: dict[str, Any], event_type: str) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        objs = self._objects.setdefault(gr, {})
        self._unindex(gr, key, objs.get(key))
        objs[key] = obj
        self._index(gr, key, obj)
        self._emit(Event(int(meta["resourceVersion"]), event_type, gr, meta.get("namespace", ""), obj))

    def remove(self, gr: GroupResource, obj: dict[str, Any]) -> None:
        """Remove an object; `obj` is its final state, carrying the deletion's new resourceVersion."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        self._unindex(gr, key, self._objects.get(gr, {}).pop(key, None))
        self._emit(Event(int(meta["resourceVersion"]), "DELETED", gr, meta.get("namespace", ""), obj))

    def drop_group_resource(self, gr: GroupResource) -> None:
        for key, obj in self._objects.pop(gr, {}).items():
            self._unindex(gr, key, obj)

    # --- events and watchers ------------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(event)
        for watcher in self._watchers:
            if watcher.wants(event):
                watcher.queue.put_nowait(event)

    def subscribe(
        self, gr: GroupResource, namespace: str | None, since: int | None
    ) -> tuple[Watcher, list[Event]]:
        """Register a watcher and return the retained events after `since` (None: no replay).
        Raises 410 Gone when `since` is older than the retained history window."""
        replay: list[Event] = []
        watcher = Watcher(gr, namespace)
        if since is not None:
            if since < self._compacted:
                raise gone(since, self._compacted + 1)
            replay = [e for e in self._history if e.rv > since and watcher.wants(e)]
        self._watchers.add(watcher)
        return watcher, replay

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def expire_watches(self) -> None:
        """As a real API server after an etcd compaction or a restart: every open watch ends and the event
        history is forgotten, so a client resuming from its last resourceVersion gets 410 Gone and must
        list again (tests of re-list handling)."""
        self._history.clear()
        self._compacted = self._rv
        self.close_watchers()

    def close_watchers(self) -> None:
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)
        self._watchers.clear()
