"""What the handlers share: the API client, settings, metrics provider, per-object wake-ups and locks.

Nothing here is state that must survive a restart: every decision is re-derived from the objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from onnxops import API_VERSION
from onnxops import GROUP as GROUP  # the one API group constant, re-exported for the handlers
from onnxops import VERSION as VERSION
from onnxops.kube.protocol import KubeApi
from onnxops.reconcile.analysis import MetricsProvider
from onnxops.settings import Settings

API = API_VERSION
TJ, MV, ISVC, MODEL = "TrainingJob", "ModelVersion", "InferenceService", "Model"
Key = tuple[str, str, str]  # (kind, namespace, name)
CACHE_SIZE = 256
# Reconciles running at once (each makes its requests one after another). Thousands of objects wake together
# at a start or a relist; unbounded, their requests queue in the HTTP client's connection pool until they
# time out, and the retries and error reports that follow make the backlog worse.
MAX_CONCURRENT_RECONCILES = 64


class Waker:
    """An object's wake-up flag (like asyncio.Event) whose wait is one future and one timer: no tasks. A
    sleeping daemon is waited on by thousands of these at once; ``asyncio.wait`` over an Event's and the
    stop flag's ``wait()`` tasks cost about 6 KiB per sleeping object (three tasks and their frames)."""

    __slots__ = ("_flag", "_futs")

    def __init__(self) -> None:
        self._flag = False
        self._futs: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        for fut in self._futs:
            if not fut.done():
                fut.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self, timeout: float) -> bool:
        """Until set or ``timeout`` seconds passed; True when set."""
        if self._flag:
            return True
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._futs.append(fut)
        timer = loop.call_later(timeout, _resolve, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._futs.remove(fut)
        return self._flag


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class StopWatch:
    """Sets the wakers of the daemons whose kopf stop flag is raised (the object was deleted, the operator is
    pausing or exiting), by one sweep every ``interval`` seconds over the sleeping daemons, instead of a
    task per daemon awaiting its flag. The sweep runs only while some daemon is registered; it costs about
    3 ms per 6,000 daemons (0.6 % of a core at 0.5 s), and a stop is noticed within ``interval``."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._watched: dict[Key, tuple[Any, Waker]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, key: Key, stopped: Any, waker: Waker) -> None:
        self._watched[key] = (stopped, waker)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sweep())

    def discard(self, key: Key) -> None:
        self._watched.pop(key, None)

    def __len__(self) -> int:
        return len(self._watched)

    async def _sweep(self) -> None:
        while self._watched:
            await asyncio.sleep(self.interval)
            for stopped, waker in list(self._watched.values()):
                if stopped:
                    waker.set()

    async def close(self) -> None:
        self._watched.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Lru:
    """A small least-recently-used map: at most ``maxsize`` entries, the least recently used go first."""

    def __init__(self, maxsize: int = CACHE_SIZE) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, default: Any = None) -> Any:
        if key not in self._data:
            return default
        self._data.move_to_end(key)
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def put(self, key: Hashable, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def pop(self, key: Hashable, default: Any = None) -> Any:
        return self._data.pop(key, default)


@dataclass
class Context:
    client: KubeApi
    settings: Settings
    provider: MetricsProvider | None = None
    wakers: dict[Key, Waker] = field(default_factory=dict)
    stops: StopWatch = field(default_factory=StopWatch)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    model_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)  # counters (tests, benchmarks)
    scrape_states: Lru = field(default_factory=Lru)  # (namespace, name) -> drift direct-scrape snapshot
    capture_checks: Lru = field(default_factory=Lru)  # (namespace, name) -> monotonic time of the last check
    loop: asyncio.AbstractEventLoop | None = None
    # controller/indexes.Indexes (informer-fed: model -> ModelVersions, InferenceServices); None: LIST
    indexes: Any = None
    notifier: Any = None  # controller/notify.Notifier (webhooks), made at startup; None: no notifications
    drift_batcher: Any = None  # onnxops.drift.batch.PrometheusBatcher, made at the first drift evaluation
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_RECONCILES))
    # the object a reconcile just read, for the checks that follow it in the same loop turn (handlers.py)
    last_read: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # the InferenceService as its reconcile read it, kept while no status write has followed: the checks
    # of the same loop turn (drift, performance, capture) read it instead of a GET each (``read_isvc``)
    unwritten: dict[Key, dict[str, Any]] = field(default_factory=dict)

    async def read_isvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The InferenceService for a periodic check: what its reconcile read in this loop turn while
        nothing has written its status since (a copy: a check adds to what it reads), else a GET. A write by
        anyone else wakes the loop for another reconcile, which reads it anew."""
        snap = self.unwritten.get((ISVC, namespace, name))
        if snap is None:
            return await self.client.get(API, ISVC, namespace, name)
        self.stats["isvc_reads_saved"] = self.stats.get("isvc_reads_saved", 0) + 1
        return copy.deepcopy(snap)

    def isvc_written(self, namespace: str, name: str) -> None:
        """This process wrote the InferenceService's status: the next check reads it anew."""
        self.unwritten.pop((ISVC, namespace, name), None)

    async def model_versions(self, namespace: str, model: str) -> list[dict[str, Any]]:
        """The ModelVersions of ``model`` in ``namespace`` (from the index when there is one)."""
        if self.indexes is not None:
            return list(await self.indexes.model_versions(namespace, model))
        mvs = await self.client.list(API, MV, namespace)
        return [m for m in mvs if (m.get("spec") or {}).get("model") == model]

    async def inference_services(self, namespace: str, model: str) -> list[dict[str, Any]]:
        """The InferenceServices of ``model`` in ``namespace`` (from the index when there is one)."""
        if self.indexes is not None:
            return list(await self.indexes.inference_services(namespace, model))
        isvcs = await self.client.list(API, ISVC, namespace)
        return [i for i in isvcs if (i.get("spec") or {}).get("model") == model]

    async def model(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Model ``name`` (from the informer's store when there is one; None: none). Only for reading
        its spec and status: whoever writes the Model's status reads it with a GET."""
        if self.indexes is not None:
            return await self.indexes.model(namespace, name)  # type: ignore[no-any-return]
        return await self.client.get(API, MODEL, namespace, name)

    def waker(self, key: Key) -> Waker:
        return self.wakers.setdefault(key, Waker())

    def wake(self, kind: str, namespace: str, name: str) -> None:
        ev = self.wakers.get((kind, namespace, name))
        if ev is not None:
            ev.set()

    def wake_threadsafe(self, kind: str, namespace: str, name: str) -> None:
        """wake() from another thread (tests, benchmarks)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.wake, kind, namespace, name)

    def lock(self, key: Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    def model_lock(self, namespace: str, model: str) -> asyncio.Lock:
        """Serialises ModelVersion registration per model inside this process (the API server's
        create-or-409 is the lock across processes)."""
        return self.model_locks.setdefault((namespace, model), asyncio.Lock())

    def forget(self, key: Key) -> None:
        """The object's daemon ended: drop everything kept for it."""
        self.wakers.pop(key, None)
        self.stops.discard(key)
        self.locks.pop(key, None)
        self.last_read.pop(key, None)
        self.unwritten.pop(key, None)
        self.scrape_states.pop((key[1], key[2]))
        self.capture_checks.pop((key[1], key[2]))
