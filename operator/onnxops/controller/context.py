"""What the handlers share: the API client, settings, metrics provider, per-object wake-ups and locks.

Nothing here is state that must survive a restart: every decision is re-derived from the objects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from onnxops.kube.client import KubeClient
from onnxops.reconcile.analysis import MetricsProvider
from onnxops.settings import Settings

GROUP, VERSION = "onnxops.dev", "v1alpha1"
API = f"{GROUP}/{VERSION}"
TJ, MV, ISVC = "TrainingJob", "ModelVersion", "InferenceService"
Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass
class Context:
    client: KubeClient
    settings: Settings
    provider: MetricsProvider | None = None
    wakers: dict[Key, asyncio.Event] = field(default_factory=dict)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    model_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None

    def waker(self, key: Key) -> asyncio.Event:
        return self.wakers.setdefault(key, asyncio.Event())

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
        self.wakers.pop(key, None)
        self.locks.pop(key, None)
