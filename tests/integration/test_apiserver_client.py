"""The API emulator through the official `kubernetes` client: verbs, metadata, concurrency, patches,
status subresource, finalizers, garbage collection and watches."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from onnxops.local.apiserver import ApiServerThread

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "max": {"type": "integer", "default": 10},
                                },
                                "x-kubernetes-validations": [
                                    {"rule": "self.size <= self.max", "message": "size must not exceed max"}
                                ],
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string", "enum": ["Pending", "Ready"]},
                                    "observedGeneration": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServerThread]:
    with ApiServerThread(history_size=200) as srv:
        srv.register_crd(WIDGET_CRD)
        yield srv


@pytest.fixture()
def api(server: ApiServerThread) -> Iterator[client.ApiClient]:
    config = client.Configuration()
    config.host = server.url
    with client.ApiClient(config) as api_client:
        yield api_client


@pytest.fixture()
def ns(api: client.ApiClient, request: pytest.FixtureRequest) -> str:
    name = request.node.name.lower().replace("_", "-")[:50]
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def raw(
    url: str, method: str, path: str, body: Any = None, ctype: str = "application/json"
) -> tuple[int, Any]:
    """A plain HTTP call, for what the generated client cannot express (JSON patch, raw lists)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            text, status = resp.read().decode(), resp.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def widget(name: str, size: int = 1, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "metadata": {"name": name, **meta},
        "spec": {"size": size},
    }


def test_create_get_metadata_and_conflicts(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}, "data": {"k": "v"}})
    assert cm.metadata.uid and cm.metadata.creation_timestamp is not None
    assert cm.metadata.namespace == ns and cm.data == {"k": "v"}
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("missing", ns)
    status = json.loads(exc.value.body)
    assert exc.value.status == 404
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)
    generated = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}})
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == 9
    later = core.create_namespaced_config_map(ns, {"metadata": {"name": "b"}})
    assert int(later.metadata.resource_version) > int(cm.metadata.resource_version)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("no-such-ns", {"metadata": {"name": "a"}})
    assert exc.value.status == 404


def test_list_with_label_and_field_selectors(api: client.ApiClient, ns: str, server: ApiServerThread) -> None:
    core = client.CoreV1Api(api)
    for name, labels in [("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {"tier": "db"})]:
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(**kw: Any) -> list[str]:
        result = core.list_namespaced_config_map(ns, **kw)
        assert result.metadata.resource_version
        return sorted(i.metadata.name for i in result.items)

    assert names() == ["a", "b", "c"]
    assert names(label_selector="app=x") == ["a"]
    assert names(label_selector="app!=x") == ["b", "c"]
    assert names(label_selector="app in (x, y)") == ["a", "b"]
    assert names(label_selector="app notin (x)") == ["b", "c"]
    assert names(label_selector="tier") == ["a", "c"]
    assert names(label_selector="!tier") == ["b"]
    assert names(label_selector="app=x,tier=web") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    status, body = raw(server.url, "GET", f"/api/v1/namespaces/{ns}/configmaps")
    assert status == 200 and body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"


def test_replace_needs_the_current_resource_version(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}, "data": {"k": "1"}})
    cm.data = {"k": "2"}
    updated = core.replace_namespaced_config_map("a", ns, cm)
    assert updated.data == {"k": "2"}
    cm.data = {"k": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("a", ns, cm)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "Conflict"
    same = core.replace_namespaced_config_map("a", ns, updated)  # a no-op update
    assert same.metadata.resource_version == updated.metadata.resource_version


def test_generation_and_status_subresource(api: client.ApiClient, ns: str) -> None:
    crs = client.CustomObjectsApi(api)
    args = ("example.dev", "v1", ns, "widgets")
    created = crs.create_namespaced_custom_object(*args, {**widget("w"), "status": {"phase": "Ready"}})
    assert created["metadata"]["generation"] == 1 and "status" not in created
    assert created["spec"]["max"] == 10  # defaulted from the schema
    patched = crs.patch_namespaced_custom_object(
        *args, "w", {"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Ready"}}
    )
    assert patched["metadata"]["generation"] == 1 and "status" not in patched
    patched = crs.patch_namespaced_custom_object(*args, "w", {"spec": {"size": 2}})
    assert patched["metadata"]["generation"] == 2
    status = crs.patch_namespaced_custom_object_status(
        *args, "w", {"status": {"phase": "Ready"}, "spec": {"size": 9}}
    )
    assert status["status"] == {"phase": "Ready"} and status["spec"]["size"] == 2
    assert status["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as exc:
        crs.patch_namespaced_custom_object_status(*args, "w", {"status": {"phase": "Bogus"}})
    body = json.loads(exc.value.body)
    assert exc.value.status == 422 and "status.phase" in [c["field"] for c in body["details"]["causes"]]


def test_invalid_custom_resource_names_each_field(api: client.ApiClient, ns: str) -> None:
    crs = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as exc:
        crs.create_namespaced_custom_object("example.dev", "v1", ns, "widgets", widget("w", size=11))
    body = json.loads(exc.value.body)
    assert exc.value.status == 422 and body["reason"] == "Invalid"
    assert [c["field"] for c in body["details"]["causes"]] == ["spec"]
    assert (
        "size must not exceed max" in body["message"]
        and 'Widget.example.dev "w" is invalid' in body["message"]
    )
    with pytest.raises(ApiException) as exc:
        crs.create_namespaced_custom_object(
            "example.dev", "v1", ns, "widgets", {**widget("w"), "spec": {"size": 0}}
        )
    assert json.loads(exc.value.body)["details"]["causes"][0]["field"] == "spec.size"


def test_patch_formats(api: client.ApiClient, ns: str, server: ApiServerThread) -> None:
    apps = client.AppsV1Api(api)
    container = {"name": "main", "image": "img:1", "env": [{"name": "A", "value": "1"}]}
    dep = {
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [container]}},
        },
    }
    created = apps.create_namespaced_deployment(ns, dep)
    assert created.spec.replicas == 1  # server-side default
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "main", "env": [{"name": "B", "value": "2"}]},
                        {"name": "side", "image": "img:2"},
                    ]
                }
            }
        }
    }
    merged = apps.patch_namespaced_deployment("d", ns, patch)  # the client sends strategic merge for dicts
    main, side = merged.spec.template.spec.containers
    assert (main.image, [e.name for e in main.env], side.name) == ("img:1", ["A", "B"], "side")
    assert merged.metadata.generation == 2
    rv = merged.metadata.resource_version
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
    ]
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/d"
    status, jp = raw(server.url, "PATCH", path, ops, "application/json-patch+json")
    assert status == 200 and jp["spec"]["replicas"] == 3
    status, body = raw(server.url, "PATCH", path, ops, "application/json-patch+json")
    assert status == 422 and body["kind"] == "Status"  # a failed `test` op: 422, as kopf expects
    status, mp = raw(
        server.url,
        "PATCH",
        path,
        {"metadata": {"labels": {"x": "y"}}, "spec": {"replicas": None}},
        "application/merge-patch+json",
    )
    assert mp["metadata"]["labels"] == {"x": "y"} and "replicas" not in mp["spec"]
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "example.dev", "v1", ns, "widgets", widget("x")
    )
    status, body = raw(
        server.url,
        "PATCH",
        f"/apis/example.dev/v1/namespaces/{ns}/widgets/x",
        {},
        "application/strategic-merge-patch+json",
    )
    assert status == 415  # custom resources refuse strategic merge, like the real server


def test_finalizers_and_deletion_timestamp(api: client.ApiClient, ns: str) -> None:
    crs = client.CustomObjectsApi(api)
    args = ("example.dev", "v1", ns, "widgets")
    crs.create_namespaced_custom_object(*args, widget("w", finalizers=["example.dev/guard"]))
    deleting = crs.delete_namespaced_custom_object(*args, "w")
    assert deleting["metadata"]["deletionTimestamp"]
    still = crs.get_namespaced_custom_object(*args, "w")
    assert still["metadata"]["finalizers"] == ["example.dev/guard"]
    with pytest.raises(ApiException) as exc:
        crs.patch_namespaced_custom_object(
            *args, "w", {"metadata": {"finalizers": ["a", "example.dev/guard"]}}
        )
    assert exc.value.status == 422
    crs.patch_namespaced_custom_object(*args, "w", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        crs.get_namespaced_custom_object(*args, "w")
    assert exc.value.status == 404


def _owned_pod(name: str, owner: Any, kind: str, api_version: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": api_version,
                    "kind": kind,
                    "name": owner.metadata.name,
                    "uid": owner.metadata.uid,
                    "controller": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }


def test_garbage_collection_of_dependents(api: client.ApiClient, ns: str) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}
    job = batch.create_namespaced_job(ns, {"metadata": {"name": "j"}, "spec": {"template": template}})
    assert job.spec.template.metadata.labels["batch.kubernetes.io/job-name"] == "j"
    core.create_namespaced_pod(ns, _owned_pod("p1", job, "Job", "batch/v1"))
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    core.create_namespaced_pod(ns, _owned_pod("p2", cm, "ConfigMap", "v1"))
    batch.delete_namespaced_job("j", ns, propagation_policy="Background")
    core.delete_namespaced_config_map("owner", ns)
    assert core.list_namespaced_pod(ns).items == []
    # Without a policy, batch/v1 Jobs orphan their pods (the API default kubectl overrides).
    job = batch.create_namespaced_job(ns, {"metadata": {"name": "j2"}, "spec": {"template": template}})
    core.create_namespaced_pod(ns, _owned_pod("p3", job, "Job", "batch/v1"))
    batch.delete_namespaced_job("j2", ns)
    orphan = core.read_namespaced_pod("p3", ns)
    assert not orphan.metadata.owner_references


def test_foreground_deletion_waits_for_dependents(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    pod = _owned_pod("p", owner, "ConfigMap", "v1")
    pod["metadata"]["finalizers"] = ["example.dev/hold"]
    core.create_namespaced_pod(ns, pod)
    core.delete_namespaced_config_map("owner", ns, propagation_policy="Foreground")
    waiting = core.read_namespaced_config_map("owner", ns)
    assert waiting.metadata.deletion_timestamp and "foregroundDeletion" in waiting.metadata.finalizers
    core.patch_namespaced_pod(
        "p", ns, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.dev/hold"]}}
    )
    assert core.list_namespaced_config_map(ns).items == []


def test_graceful_pod_deletion_on_a_node(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    pod = {
        "metadata": {"name": "p"},
        "spec": {"nodeName": "local", "containers": [{"name": "c", "image": "i"}]},
    }
    core.create_namespaced_pod(ns, pod)
    core.delete_namespaced_pod("p", ns)
    terminating = core.read_namespaced_pod("p", ns)
    assert terminating.metadata.deletion_grace_period_seconds == 30
    core.patch_namespaced_pod_status("p", ns, {"status": {"phase": "Running"}})  # the kubelet still writes
    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
    assert core.list_namespaced_pod(ns).items == []


def test_watch_stream_resource_version_and_selectors(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "before", "labels": {"w": "1"}}})
    rv = core.list_namespaced_config_map(ns).metadata.resource_version

    def writer() -> None:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "x", "labels": {"w": "1"}}})
        core.create_namespaced_config_map(ns, {"metadata": {"name": "other"}})
        core.patch_namespaced_config_map("x", ns, {"data": {"a": "b"}})
        core.patch_namespaced_config_map("x", ns, {"metadata": {"labels": {"w": "2"}}})
        core.delete_namespaced_config_map("before", ns)

    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    thread = threading.Thread(target=writer)
    thread.start()
    for event in w.stream(
        core.list_namespaced_config_map, ns, resource_version=rv, label_selector="w=1", timeout_seconds=2
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 4:
            w.stop()
    thread.join()
    # leaving the selection reads as DELETED, as on the real server
    assert seen == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x"), ("DELETED", "before")]
    initial = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=1)
    ]
    assert sorted(initial) == [("ADDED", "other"), ("ADDED", "x")]


def test_watch_too_old_resource_version_is_gone(
    api: client.ApiClient, ns: str, server: ApiServerThread
) -> None:
    core = client.CoreV1Api(api)
    first = core.create_namespaced_config_map(ns, {"metadata": {"name": "c0"}}).metadata.resource_version
    for n in range(1, 220):  # more than the fixture's history_size of 200
        core.patch_namespaced_config_map("c0", ns, {"data": {"n": str(n)}})
    with pytest.raises(ApiException) as exc:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, ns, resource_version=first, timeout_seconds=2
        ):
            pass
    assert exc.value.status == 410


def test_bookmarks_and_timeout(api: client.ApiClient, ns: str, server: ApiServerThread) -> None:
    rv = client.CoreV1Api(api).list_namespaced_config_map(ns).metadata.resource_version
    query = (
        f"?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1"
        "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
    )
    _, text = raw(server.url, "GET", f"/api/v1/namespaces/{ns}/configmaps{query}")  # ends after ~1 s
    lines = [json.loads(line) for line in text.splitlines()] if isinstance(text, str) else [text]
    assert lines[0]["type"] == "BOOKMARK"
    assert lines[0]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
