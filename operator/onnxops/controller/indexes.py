"""In-memory indexes of ModelVersions and InferenceServices by (namespace, model), fed by informers
(``kube/informer.py``: LIST + WATCH, a re-list replaces the store, so a watch restart or a deletion missed
while the stream was down never leaves a stale entry).

The reconcilers read ``model -> ModelVersions`` and ``model -> InferenceServices`` from here instead of
listing the namespace on every reconcile. The wake-ups that depend on those reads are sent from the
informers' listeners, *after* the store changed, so a reconcile a change wakes always reads that change:

- a ModelVersion changed (added, status, deleted) -> the InferenceServices of its model;
- an InferenceService's served versions (or model) changed, or it was added/deleted -> the ModelVersions it
  served before and serves now (their ``status.servedBy``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from onnxops.builders import names
from onnxops.kube.client import KubeClient
from onnxops.kube.informer import Informer, Store
from onnxops.reconcile.inferenceservice import served_versions

from .context import API, ISVC, MV

BY_MODEL = "model"
SYNC_TIMEOUT_S = 60.0
Waker = Callable[[str, str, str], None]  # (kind, namespace, name)


def model_key(obj: dict[str, Any]) -> Iterable[Hashable]:
    ns = str((obj.get("metadata") or {}).get("namespace") or "")
    model = (obj.get("spec") or {}).get("model")
    return [(ns, str(model))] if model is not None else []


def _ns_model(obj: dict[str, Any] | None) -> tuple[str, str] | None:
    if obj is None:
        return None
    keys = list(model_key(obj))
    return keys[0] if keys else None  # type: ignore[return-value]


def isvc_wakes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> set[tuple[str, str]]:
    """The ModelVersions (namespace, name) whose servedBy an InferenceService change may alter (pure)."""
    out: set[tuple[str, str]] = set()
    before = (_ns_model(old), served_versions(old) if old is not None else set())
    after = (_ns_model(new), served_versions(new) if new is not None else set())
    if before == after:
        return out
    for key, versions in (before, after):
        if key is not None:
            out |= {(key[0], names.model_version(key[1], v)) for v in versions}
    return out


class Indexes:
    """The two stores, their informers (one per watched namespace, or one cluster-wide), the wake-ups."""

    def __init__(self, client: KubeClient, namespaces: Iterable[str] = (), wake: Waker | None = None) -> None:
        self.mvs = Store({BY_MODEL: model_key})
        self.isvcs = Store({BY_MODEL: model_key})
        self.wake = wake
        scopes: list[str | None] = list(namespaces) or [None]
        self.informers = [
            inf
            for ns in scopes
            for inf in (
                Informer(client, API, MV, ns, self.mvs, [self._mv_changed]),
                Informer(client, API, ISVC, ns, self.isvcs, [self._isvc_changed]),
            )
        ]

    def start(self) -> None:
        for inf in self.informers:
            inf.start()

    async def stop(self) -> None:
        for inf in self.informers:
            await inf.stop()

    async def synced(self, timeout: float = SYNC_TIMEOUT_S) -> None:
        """Wait until every informer has listed once (reconciles before that would read an empty index)."""
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self.informers)), timeout)

    @property
    def relists(self) -> int:
        return sum(i.relists for i in self.informers)

    def _mv_changed(self, etype: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self.wake is None:
            return
        keys = {k for k in (_ns_model(old), _ns_model(new)) if k is not None}
        for key in keys:
            for isvc in self.isvcs.by_index(BY_MODEL, key):
                self.wake(ISVC, key[0], isvc["metadata"]["name"])

    def _isvc_changed(self, etype: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self.wake is None:
            return
        for ns, name in isvc_wakes(old, new):
            self.wake(MV, ns, name)

    # ---- reads ----------------------------------------------------------------------------------------
    async def model_versions(self, ns: str, model: str) -> list[dict[str, Any]]:
        await self.synced()
        return self.mvs.by_index(BY_MODEL, (ns, model))

    async def inference_services(self, ns: str, model: str) -> list[dict[str, Any]]:
        await self.synced()
        return self.isvcs.by_index(BY_MODEL, (ns, model))
