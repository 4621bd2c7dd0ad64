"""The informer's store and the operator's model indexes: add, modify, delete, relist (a re-list after a
watch restart must drop what was deleted while the stream was down), and the wake-ups they send."""

from __future__ import annotations

from typing import Any

from onnxops.controller.indexes import BY_ISVC, BY_MODEL, Indexes, isvc_key, isvc_wakes, model_key
from onnxops.kube.client import KubeClient
from onnxops.kube.informer import Store


def obj(
    name: str, model: str, rv: int, ns: str = "default", status: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "resourceVersion": str(rv),
            "managedFields": [{"manager": "x"}],
        },
        "spec": {"model": model, **spec},
        "status": status or {},
    }


def names(objs: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_add_modify_delete_keep_the_index_exact() -> None:
    s = Store({BY_MODEL: model_key})
    assert s.apply("ADDED", obj("a-v1", "a", 1)) == ("ADDED", None)
    s.apply("ADDED", obj("a-v2", "a", 2))
    s.apply("ADDED", obj("b-v1", "b", 3))
    assert names(s.by_index(BY_MODEL, ("default", "a"))) == ["a-v1", "a-v2"]
    # a modification that changes the indexed value moves the object
    etype, old = s.apply("MODIFIED", obj("a-v2", "b", 4)) or ("", None)
    assert etype == "MODIFIED" and old is not None and old["spec"]["model"] == "a"
    assert names(s.by_index(BY_MODEL, ("default", "a"))) == ["a-v1"]
    assert names(s.by_index(BY_MODEL, ("default", "b"))) == ["a-v2", "b-v1"]
    # a replayed event (same resourceVersion) changes nothing
    assert s.apply("MODIFIED", obj("a-v2", "b", 4)) is None
    assert s.apply("DELETED", obj("a-v1", "a", 5)) is not None
    assert s.by_index(BY_MODEL, ("default", "a")) == []
    assert s.apply("DELETED", obj("a-v1", "a", 6)) is None  # unknown: nothing to report
    assert len(s) == 2
    # managedFields are not kept (never read, the largest part of an object)
    assert "managedFields" not in s.get("default", "b-v1")["metadata"]  # type: ignore[index]


def test_namespaces_never_mix() -> None:
    s = Store({BY_MODEL: model_key})
    s.apply("ADDED", obj("m-v1", "m", 1, ns="team-a"))
    s.apply("ADDED", obj("m-v1", "m", 2, ns="team-b"))
    assert [o["metadata"]["namespace"] for o in s.by_index(BY_MODEL, ("team-a", "m"))] == ["team-a"]
    s.apply("DELETED", obj("m-v1", "m", 3, ns="team-a"))
    assert [o["metadata"]["namespace"] for o in s.by_index(BY_MODEL, ("team-b", "m"))] == ["team-b"]


def test_relist_replaces_the_store_and_reports_missed_changes() -> None:
    s = Store({BY_MODEL: model_key})
    for i, name in enumerate(("a-v1", "a-v2", "a-v3")):
        s.apply("ADDED", obj(name, "a", i + 1))
    s.apply("ADDED", obj("x-v1", "x", 9, ns="other"))
    # while the watch was down: a-v2 deleted, a-v3 changed, a-v4 created; a-v1 unchanged
    changes = s.replace(
        [obj("a-v1", "a", 1), obj("a-v3", "a", 12, status={"phase": "Ready"}), obj("a-v4", "a", 13)],
        scope="default",
    )
    got = {(t, (new or old or {})["metadata"]["name"]) for t, old, new in changes}
    assert got == {("DELETED", "a-v2"), ("MODIFIED", "a-v3"), ("ADDED", "a-v4")}
    assert names(s.by_index(BY_MODEL, ("default", "a"))) == ["a-v1", "a-v3", "a-v4"]
    # a namespaced informer's relist leaves other namespaces' objects alone
    assert names(s.by_index(BY_MODEL, ("other", "x"))) == ["x-v1"]
    # a cluster-wide relist (scope None) removes everything it lacks
    s.replace([obj("a-v1", "a", 1)], scope=None)
    assert len(s) == 1 and s.by_index(BY_MODEL, ("other", "x")) == []


def test_isvc_wakes_the_versions_it_served_and_serves() -> None:
    before = obj("svc", "m", 1, status={"stableVersion": 1})
    after = obj("svc", "m", 2, status={"stableVersion": 2, "previousVersion": 1})
    assert isvc_wakes(before, after) == {("default", "m-v1"), ("default", "m-v2")}
    # a status change that does not change the served versions wakes nothing
    same = obj("svc", "m", 3, status={"stableVersion": 1, "conditions": []})
    assert isvc_wakes(before, same) == set()
    assert isvc_wakes(None, before) == {("default", "m-v1")}
    assert isvc_wakes(after, None) == {("default", "m-v1"), ("default", "m-v2")}


def test_listeners_wake_the_dependants() -> None:
    woken: list[tuple[str, str, str]] = []
    idx = Indexes(KubeClient("http://127.0.0.1:1"), ["default"], wake=lambda *k: woken.append(k))
    isvc = obj("svc", "m", 1, status={"stableVersion": 1})
    idx.isvcs.apply("ADDED", isvc)
    idx._isvc_changed("ADDED", None, isvc)
    # the versions it serves, and itself (what it read before it was indexed woke nobody)
    assert woken == [("ModelVersion", "default", "m-v1"), ("InferenceService", "default", "svc")]
    woken.clear()
    mv = obj("m-v2", "m", 2)
    idx.mvs.apply("ADDED", mv)
    idx._mv_changed("ADDED", None, mv)
    # its Model (governance reads the index) and the model's services
    assert woken == [("Model", "default", "m"), ("InferenceService", "default", "svc")]
    woken.clear()
    idx._mv_changed("ADDED", None, obj("n-v1", "n", 3))  # another model's version: only its Model
    assert woken == [("Model", "default", "n")]
    woken.clear()
    # a Model's change (approvals, aliases): the services of that model, which read it from the store
    model = {"metadata": {"name": "m", "namespace": "default", "resourceVersion": "9"}, "spec": {}}
    idx._model_changed("MODIFIED", model, model)
    assert woken == [("InferenceService", "default", "svc")]


def child(kind: str, name: str, isvc: str | None, rv: int, uid: str = "u1") -> dict[str, Any]:
    lbl = {"onnxops.dev/inference-service": isvc} if isvc else {}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "default",
            "resourceVersion": str(rv),
            "uid": uid,
            "labels": lbl,
            "managedFields": [{"manager": "onnxops"}, {"manager": "kubectl-edit"}],
        },
        "spec": {},
    }


def test_serving_children_by_service_keep_managed_fields_and_wake_their_service() -> None:
    woken: list[tuple[str, str, str]] = []
    idx = Indexes(KubeClient("http://127.0.0.1:1"), ["default"], wake=lambda *k: woken.append(k))
    dep = idx.children["Deployment"]
    dep.apply("ADDED", child("Deployment", "svc-v1", "svc", 1))
    assert names(dep.by_index(BY_ISVC, ("default", "svc"))) == ["svc-v1"]
    # kube/apply.py reads who else set which field: a child store keeps the other managers' entries
    kept = dep.get("default", "svc-v1")["metadata"]["managedFields"]  # type: ignore[index]
    assert kept == [{"manager": "kubectl-edit"}]
    # relabelled to another service: both are woken (the old one recreates its child)
    old, new = child("Deployment", "svc-v1", "svc", 1), child("Deployment", "svc-v1", "other", 2)
    idx._child_changed("MODIFIED", old, new)
    assert sorted(woken) == [("InferenceService", "default", "other"), ("InferenceService", "default", "svc")]
    woken.clear()
    idx._child_changed("DELETED", child("Service", "x", None, 3), None)  # not a serving child: nobody
    assert woken == [] and isvc_key(child("Service", "x", None, 3)) == []


def test_own_create_is_read_before_its_watch_event_and_never_resurrects_a_deletion() -> None:
    s = Store({BY_ISVC: isvc_key})
    created = child("Deployment", "svc-v1", "svc", 5, uid="a")
    assert s.add_created(created)
    assert names(s.by_index(BY_ISVC, ("default", "svc"))) == ["svc-v1"]
    # its watch event: unchanged (same resourceVersion), so no listener is told
    assert s.apply("ADDED", child("Deployment", "svc-v1", "svc", 5, uid="a")) is None
    # a newer version already in the store is never replaced by the older create answer
    s.apply("MODIFIED", child("Deployment", "svc-v1", "svc", 7, uid="a"))
    assert not s.add_created(created)
    assert s.get("default", "svc-v1")["metadata"]["resourceVersion"] == "7"  # type: ignore[index]
    # deleted before the create's answer was handled: it stays deleted
    s.apply("DELETED", child("Deployment", "svc-v1", "svc", 8, uid="a"))
    assert not s.add_created(created)
    assert s.get("default", "svc-v1") is None
    # a new object of the same name (another uid) is taken
    assert s.add_created(child("Deployment", "svc-v1", "svc", 9, uid="b"))


def test_own_patch_is_read_back_only_over_the_version_it_patched() -> None:
    s = Store({BY_ISVC: isvc_key})
    s.apply("ADDED", child("Deployment", "svc-v1", "svc", 5))
    assert s.update_if(child("Deployment", "svc-v1", "svc", 6), "5")
    assert s.get("default", "svc-v1")["metadata"]["resourceVersion"] == "6"  # type: ignore[index]
    assert s.apply("MODIFIED", child("Deployment", "svc-v1", "svc", 6)) is None  # its own event: no news
    # someone else's change arrived first: our older answer is not taken
    s.apply("MODIFIED", child("Deployment", "svc-v1", "svc", 8))
    assert not s.update_if(child("Deployment", "svc-v1", "svc", 7), "6")
    assert s.get("default", "svc-v1")["metadata"]["resourceVersion"] == "8"  # type: ignore[index]
    assert not s.update_if(child("Deployment", "gone", "svc", 9), "1")  # not in the store: nothing
