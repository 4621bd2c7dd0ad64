"""In-memory indexes of ModelVersions and InferenceServices by (namespace, model), fed by informers
(``kube/informer.py``: LIST + WATCH, a re-list replaces the store, so a watch restart or a deletion missed
while the stream was down never leaves a stale entry).

The reconcilers read ``model -> ModelVersions`` and ``model -> InferenceServices`` from here instead of
listing the namespace on every reconcile. The wake-ups that depend on those reads are sent from the
informers' listeners, *after* the store changed, so a reconcile a change wakes always reads that change:

- a ModelVersion changed (added, status, deleted) -> the InferenceServices of its model;
- an InferenceService's served versions (or model) changed, or it was added/deleted -> the ModelVersions it
  served before and serves now (their ``status.servedBy``); one new in the store -> itself (a change of its
  versions or Model seen before it was indexed woke nobody);
- a ModelVersion changed -> also its Model (release governance reads the model's versions from here);
- a Model changed (approvals, aliases, policy) -> the InferenceServices of that model (they read the Model
  from here);
- a serving child (Deployment, Service, HorizontalPodAutoscaler labelled with an InferenceService) was
  added, changed or deleted -> that InferenceService.

The serving children are kept whole (with the other managers' ``managedFields``: ``kube/apply.py`` reads
who else set what) by
InferenceService name, so reconciling a service reads its children here instead of two or three label
LISTs per reconcile (each a scan of the namespace in the API server). A child the operator just created or
patched is put into the store from the write's answer (:meth:`Store.add_created`, :meth:`Store.update_if`),
so the reconcile right after it does not write it again before the watch event arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from onnxops.builders import labels, names
from onnxops.kube.client import FIELD_MANAGER, KubeClient
from onnxops.kube.informer import Informer, Store, key_of, without_own_fields
from onnxops.reconcile.inferenceservice import served_versions

from .context import API, ISVC, MODEL, MV

BY_MODEL = "model"
BY_ISVC = "inference-service"
# The kinds an InferenceService owns (controller/serving.py CHILD_KINDS), watched by the label they carry.
CHILD_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"))
CHILD_SELECTOR = labels.INFERENCE_SERVICE  # "has the label": exactly what the former label LISTs matched
SYNC_TIMEOUT_S = 60.0
Waker = Callable[[str, str, str], None]  # (kind, namespace, name)


def model_key(obj: dict[str, Any]) -> Iterable[Hashable]:
    ns = str((obj.get("metadata") or {}).get("namespace") or "")
    model = (obj.get("spec") or {}).get("model")
    return [(ns, str(model))] if model is not None else []


def isvc_key(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(namespace, InferenceService name) of a serving child, from its label."""
    md = obj.get("metadata") or {}
    isvc = (md.get("labels") or {}).get(labels.INFERENCE_SERVICE)
    return [(str(md.get("namespace") or ""), str(isvc))] if isvc else []


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
        self.models = Store()
        # one store per child kind: a Deployment and a Service of a service share their name
        self.children = {
            kind: Store({BY_ISVC: isvc_key}, trim=without_own_fields(FIELD_MANAGER))
            for _, kind in CHILD_KINDS
        }
        self.wake = wake
        scopes: list[str | None] = list(namespaces) or [None]
        self.informers = [
            inf
            for ns in scopes
            for inf in (
                Informer(client, API, MV, ns, self.mvs, [self._mv_changed]),
                Informer(client, API, ISVC, ns, self.isvcs, [self._isvc_changed]),
                Informer(client, API, MODEL, ns, self.models, [self._model_changed]),
                *(
                    Informer(
                        client,
                        api,
                        kind,
                        ns,
                        self.children[kind],
                        [self._child_changed],
                        label_selector=CHILD_SELECTOR,
                    )
                    for api, kind in CHILD_KINDS
                ),
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
            self.wake(MODEL, key[0], key[1])
            for isvc in self.isvcs.by_index(BY_MODEL, key):
                self.wake(ISVC, key[0], isvc["metadata"]["name"])

    def _model_changed(self, etype: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self.wake is None:
            return
        ns, name = key_of(new or old or {})
        for isvc in self.isvcs.by_index(BY_MODEL, (ns, name)):
            self.wake(ISVC, ns, isvc["metadata"]["name"])

    def _child_changed(self, etype: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self.wake is None:
            return
        keys = {k for obj in (old, new) if obj is not None for k in isvc_key(obj)}
        for ns, isvc in keys:
            self.wake(ISVC, ns, isvc)

    def _isvc_changed(self, etype: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self.wake is None:
            return
        for ns, name in isvc_wakes(old, new):
            self.wake(MV, ns, name)
        if old is None and new is not None:
            # new in the store: a ModelVersion or Model change the other stores saw before this one could
            # not wake it (it was not indexed yet), and its reconcile may have read them before that change
            ns, name = key_of(new)
            self.wake(ISVC, ns, name)

    # ---- reads ----------------------------------------------------------------------------------------
    async def model_versions(self, ns: str, model: str) -> list[dict[str, Any]]:
        await self.synced()
        return self.mvs.by_index(BY_MODEL, (ns, model))

    async def inference_services(self, ns: str, model: str) -> list[dict[str, Any]]:
        await self.synced()
        return self.isvcs.by_index(BY_MODEL, (ns, model))

    async def model(self, ns: str, name: str) -> dict[str, Any] | None:
        await self.synced()
        return self.models.get(ns, name)

    async def serving_children(self, ns: str, isvc: str, kinds: Iterable[str]) -> list[dict[str, Any]]:
        """The objects of ``kinds`` labelled with InferenceService ``isvc`` (callers check the owner)."""
        await self.synced()
        return [o for kind in kinds for o in self.children[kind].by_index(BY_ISVC, (ns, isvc))]

    def written(self, obj: dict[str, Any], read: dict[str, Any] | None) -> None:
        """The operator created ``obj`` (``read`` None) or patched the ``read`` version into ``obj``: a
        serving child's store takes the answer right away (see Store.add_created / update_if)."""
        store = self.children.get(str(obj.get("kind")))
        if store is None or not isvc_key(obj):
            return
        if read is None:
            store.add_created(obj)
        else:
            store.update_if(obj, (read.get("metadata") or {}).get("resourceVersion"))
