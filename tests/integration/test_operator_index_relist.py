"""The operator's model indexes (controller/indexes.py) stay right across watch restarts on the local runtime:
the API server ends every watch and forgets its event history (as after an etcd compaction), so the
operator's streams get 410 Gone and must list again — and an InferenceService deleted while no watch was
open (its DELETED event is never delivered) must still leave the ModelVersion's ``servedBy``; a version
created around a restart is still what ``latest`` resolves to."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _operator_env import Cluster, local_cluster, operator, operator_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
API = "onnxops.dev/v1alpha1"
SHA = "a" * 64


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with local_cluster(tmp_path_factory.mktemp("rt")) as c:
        yield c


def mv(version: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelVersion",
        "metadata": {"name": f"rl-v{version}"},
        "spec": {
            "model": "rl",
            "version": version,
            "artifact": {"uri": f"file:///nowhere/rl/{version}/model.onnx", "sha256": SHA},
        },
    }


def isvc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"model": "rl", "version": "latest", "replicas": 1},
    }


def served_by(cluster: Cluster, name: str) -> list[str] | None:
    obj = cluster.get("ModelVersion", name)
    return ((obj or {}).get("status") or {}).get("servedBy")


def test_indexes_survive_a_watch_restart_and_a_missed_deletion(cluster: Cluster) -> None:
    with operator(cluster):
        cluster.call(lambda: _add_ready(cluster.runtime.api.cluster.store, mv(1)))  # verified (see v2)
        for name in ("rl-a", "rl-b"):
            cluster.create(isvc(name))
        cluster.wait("servedBy both", lambda: served_by(cluster, "rl-v1") == ["default/rl-a", "default/rl-b"])
        relists = operator_context().indexes.relists

        store = cluster.runtime.api.cluster.store
        gr = ("onnxops.dev", "inferenceservices")

        async def drop_watches_and_delete_unseen() -> None:
            # no watch open while rl-b goes, then the history is gone: only a re-list can tell
            store.close_watchers()
            old = store.get(gr, "default", "rl-b")
            assert old is not None
            store.remove(
                gr, {**old, "metadata": {**old["metadata"], "resourceVersion": str(store.next_rv())}}
            )
            store.expire_watches()

        cluster.call(drop_watches_and_delete_unseen)
        cluster.wait(
            "servedBy without the deleted service",
            lambda: served_by(cluster, "rl-v1") == ["default/rl-a"],
            timeout=60,
        )
        assert operator_context().indexes.relists > relists  # the informers listed again

        # a new version around a second restart: `latest` finds it through the re-built index
        cluster.call(lambda: _expire(store))
        # v2 appears already verified (Ready), in one step: created and then patched Ready over HTTP, the
        # operator's reconcile could see it unverified first, run its verification Job (the artifact does
        # not exist here) and mark it Failed
        cluster.call(lambda: _add_ready(store, mv(2)))

        def indexed_ready() -> bool:  # the re-built index has v2 Ready
            got = operator_context().indexes.mvs.get("default", "rl-v2")
            return bool(got and (got.get("status") or {}).get("phase") == "Ready")

        cluster.wait("the re-built index has rl-v2 Ready", indexed_ready, timeout=60)
        cluster.create(isvc("rl-c"))  # a new service: `latest` is v2, found through the re-built index

        def deployed() -> bool:
            st = (cluster.get("InferenceService", "rl-c") or {}).get("status") or {}
            return bool(st.get("stableVersion") == 2)

        cluster.wait("rl-c deploys v2", deployed, timeout=60)
        cluster.wait(
            "v2 servedBy rl-c", lambda: "default/rl-c" in (served_by(cluster, "rl-v2") or []), timeout=60
        )


async def _add_ready(store: Any, body: dict[str, Any]) -> None:
    md = {
        **body["metadata"],
        "namespace": "default",
        "uid": str(uuid.uuid4()),
        "generation": 1,
        "resourceVersion": str(store.next_rv()),
        "creationTimestamp": "2026-01-01T00:00:00Z",
    }
    store.put(
        ("onnxops.dev", "modelversions"),
        {**body, "metadata": md, "status": {"phase": "Ready", "observedGeneration": 1}},
        "ADDED",
    )


async def _expire(store: Any) -> None:
    store.expire_watches()
