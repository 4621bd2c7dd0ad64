"""Watch streams: newline-delimited JSON `{type, object}` events over a chunked HTTP response."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .errors import ApiError, bad_request
from .objects import Cluster
from .registry import ResourceInfo
from .selectors import both
from .store import Event
from .tables import table

Obj = dict[str, Any]
_TICK = 1.0  # how often an idle stream checks for a closed client


def _flag(value: str | None) -> bool:
    return value in ("1", "true", "True")


def _since(query: Any) -> int | None:
    raw = query.get("resourceVersion")
    if raw in (None, "", "0") or _flag(query.get("sendInitialEvents")):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"invalid resourceVersion {raw!r}") from exc


class WatchStream:
    def __init__(
        self,
        cluster: Cluster,
        info: ResourceInfo,
        namespace: str | None,
        query: Any,
        as_table: bool,
        bookmark_interval: float,
    ) -> None:
        self.cluster, self.info, self.query = cluster, info, query
        self.namespace = namespace if info.namespaced else None
        self.match = both(query.get("labelSelector"), query.get("fieldSelector"))
        self.selective = bool(query.get("labelSelector") or query.get("fieldSelector"))
        self.as_table = as_table
        self.bookmarks = _flag(query.get("allowWatchBookmarks"))
        self.bookmark_interval = bookmark_interval
        timeout = query.get("timeoutSeconds")
        self.timeout = float(timeout) if timeout not in (None, "") else None
        self.seen: set[tuple[str, str]] = set()

    def _out(self, obj: Obj) -> Obj:
        if self.as_table:
            return table(self.info, [obj], obj["metadata"].get("resourceVersion", ""))
        if obj.get("apiVersion") != self.info.api_version:
            return {**obj, "apiVersion": self.info.api_version}
        return obj

    def _bookmark(self, initial_end: bool = False) -> Obj:
        meta: Obj = {"resourceVersion": str(self.cluster.store.resource_version)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {
            "type": "BOOKMARK",
            "object": {"kind": self.info.kind, "apiVersion": self.info.api_version, "metadata": meta},
        }

    def translate(self, event: Event) -> Obj | None:
        """The event this watcher sees: selectors turn moves in/out of the selection into ADDED/DELETED."""
        meta = event.obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        matches = self.match(event.obj)
        kind = event.type
        if self.selective:
            was = key in self.seen
            if event.type == "DELETED":
                if not (was or matches):
                    return None
                self.seen.discard(key)
            elif matches:
                kind = "MODIFIED" if was and kind == "MODIFIED" else "ADDED" if not was else kind
                self.seen.add(key)
            elif was:
                kind = "DELETED"
                self.seen.discard(key)
            else:
                return None
        return {"type": kind, "object": self._out(event.obj)}

    async def serve(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        store = self.cluster.store
        since = _since(self.query)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            watcher, replay = store.subscribe(self.info.group_resource, self.namespace, since)
        except ApiError as exc:  # 410 Gone is reported in-stream, as the real server does
            await response.prepare(request)
            await response.write(_line({"type": "ERROR", "object": exc.status()}))
            await response.write_eof()
            return response
        try:
            response.enable_chunked_encoding()
            await response.prepare(request)
            lines: list[bytes] = []
            if since is None:
                items, _ = self.cluster.list(self.info, self.namespace)
                for obj in items:
                    if self.match(obj):
                        self.seen.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
                        lines.append(_line({"type": "ADDED", "object": self._out(obj)}))
                if _flag(self.query.get("sendInitialEvents")):
                    lines.append(_line(self._bookmark(initial_end=True)))
            elif self.selective:
                items, _ = self.cluster.list(self.info, self.namespace)
                self.seen = {
                    (o["metadata"].get("namespace", ""), o["metadata"]["name"])
                    for o in items
                    if self.match(o)
                }
            for event in replay:
                out = self.translate(event)
                if out is not None:
                    lines.append(_line(out))
            if lines:
                await response.write(b"".join(lines))
            await self._pump(request, response, watcher.queue, stopping)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            store.unsubscribe(watcher)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    async def _pump(
        self,
        request: web.Request,
        response: web.StreamResponse,
        queue: asyncio.Queue[Event | None],
        stopping: asyncio.Event,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout if self.timeout is not None else None
        next_bookmark = loop.time() + self.bookmark_interval
        while not stopping.is_set():
            now = loop.time()
            if deadline is not None and now >= deadline:
                return
            if request.transport is None or request.transport.is_closing():
                return
            if self.bookmarks and now >= next_bookmark:
                await response.write(_line(self._bookmark()))
                next_bookmark = now + self.bookmark_interval
            wait = min(_TICK, *(x - now for x in (deadline, next_bookmark) if x is not None))
            if not queue.empty():
                event = queue.get_nowait()
            else:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=max(wait, 0.001))
                except TimeoutError:
                    continue
            if event is None:
                return
            chunk, closed = [event], False
            while not queue.empty():  # batch whatever else is already queued
                item = queue.get_nowait()
                if item is None:
                    closed = True
                    break
                chunk.append(item)
            outs = (self.translate(e) for e in chunk)
            await response.write(b"".join(_line(o) for o in outs if o is not None))
            if closed:
                return


_dumps: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":")).encode


def _line(obj: Obj) -> bytes:
    return (_dumps(obj) + "\n").encode()
