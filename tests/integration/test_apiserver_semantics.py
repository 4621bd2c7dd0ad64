"""API emulator semantics over plain HTTP, with the server in-process on the test's event loop:
discovery, CRD lifecycle and versions, tables, built-in status subresources and generation, server-side
apply, events and field selectors, cluster-wide watches, deletecollection and pod logs."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from onnxops.local.apiserver import ApiServer, ApiServerThread

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "dials.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Cluster",
        "names": {
            "plural": "dials",
            "singular": "dial",
            "kind": "Dial",
            "shortNames": ["dl"],
            "categories": ["knobs"],
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": False,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            },
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Level", "type": "integer", "jsonPath": ".spec.level"}],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"level": {"type": "integer"}}},
                            "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
                        },
                    }
                },
            },
        ],
    },
}


def logs(namespace: str, pod: str, container: str | None, tail: int | None) -> str | None:
    return f"hello from {namespace}/{pod}/{container}\n" if pod == "ran" else None


class Client:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        ctype: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = body if isinstance(body, str) else json.dumps(body) if body is not None else None
        async with self.session.request(
            method, self.url + path, data=data, headers={"Content-Type": ctype, **(headers or {})}
        ) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


@pytest.fixture()
async def api() -> AsyncIterator[Client]:
    server = ApiServer(log_provider=logs, bookmark_interval=0.2)
    url = await server.start()
    assert url.startswith("http://127.0.0.1:") and server.url == url
    async with aiohttp.ClientSession() as session:
        yield Client(url, session)
    await server.stop()


async def test_discovery_documents(api: Client) -> None:
    status, version = await api.call("GET", "/version")
    assert status == 200 and version["major"] == "1"
    _, core = await api.call("GET", "/api/v1")
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert (
        pods["namespaced"]
        and pods["kind"] == "Pod"
        and "watch" in pods["verbs"]
        and "po" in pods["shortNames"]
    )
    names = {r["name"] for r in core["resources"]}
    assert {"pods/status", "pods/log", "namespaces", "events", "endpoints", "secrets"} <= names
    _, groups = await api.call("GET", "/apis")
    assert {"apps", "batch", "autoscaling", "coordination.k8s.io", "events.k8s.io", "policy"} <= {
        g["name"] for g in groups["groups"]
    }
    assert (await api.call("GET", "/apis/example.dev/v1"))[0] == 404
    assert (await api.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD))[0] == 201
    _, group = await api.call("GET", "/apis/example.dev")
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1alpha1"]
    _, v1 = await api.call("GET", "/apis/example.dev/v1")
    dial = next(r for r in v1["resources"] if r["name"] == "dials")
    assert (dial["namespaced"], dial["shortNames"], dial["categories"]) == (False, ["dl"], ["knobs"])
    assert "dials/status" in {r["name"] for r in v1["resources"]}
    _, alpha = await api.call("GET", "/apis/example.dev/v1alpha1")
    assert "dials/status" not in {r["name"] for r in alpha["resources"]}


async def test_crd_versions_tables_and_removal(api: Client) -> None:
    await api.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    status, dial = await api.call(
        "POST",
        "/apis/example.dev/v1/dials",
        {"apiVersion": "example.dev/v1", "kind": "Dial", "metadata": {"name": "d1"}, "spec": {"level": 3}},
    )
    assert status == 201 and "namespace" not in dial["metadata"]
    _, old = await api.call("GET", "/apis/example.dev/v1alpha1/dials/d1")
    assert old["apiVersion"] == "example.dev/v1alpha1" and old["spec"] == {"level": 3}
    table_accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    _, table = await api.call("GET", "/apis/example.dev/v1/dials", headers=table_accept)
    assert table["kind"] == "Table" and [c["name"] for c in table["columnDefinitions"]] == ["Name", "Level"]
    assert table["rows"][0]["cells"] == ["d1", 3]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    _, table = await api.call("GET", "/api/v1/namespaces", headers=table_accept)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Status", "Age"]
    assert table["rows"][0]["cells"][:2] == ["default", "Active"]
    status, _ = await api.call(
        "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/dials.example.dev"
    )
    assert status == 200
    assert (await api.call("GET", "/apis/example.dev/v1/dials"))[0] == 404
    assert "example.dev" not in {g["name"] for g in (await api.call("GET", "/apis"))[1]["groups"]}


async def test_builtin_status_subresource_and_generation(api: Client) -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"},
    }
    _, created = await api.call("POST", "/api/v1/namespaces/default/pods", pod)
    assert created["status"]["phase"] == "Pending" and created["metadata"]["generation"] == 1
    merge = "application/merge-patch+json"
    _, same = await api.call(
        "PATCH", "/api/v1/namespaces/default/pods/p", {"status": {"phase": "Failed"}}, merge
    )
    assert (
        same["status"]["phase"] == "Pending"
        and same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    )  # ignored status: a no-op
    _, st = await api.call(
        "PATCH",
        "/api/v1/namespaces/default/pods/p/status",
        {"status": {"phase": "Running", "podIP": "127.0.1.1"}, "metadata": {"labels": {"x": "y"}}},
        merge,
    )
    assert st["status"]["phase"] == "Running" and "labels" not in st["metadata"]
    assert st["metadata"]["generation"] == 1
    _, labelled = await api.call(
        "PATCH", "/api/v1/namespaces/default/pods/p", {"metadata": {"labels": {"a": "b"}}}, merge
    )
    assert labelled["metadata"]["generation"] == 1
    _, changed = await api.call(
        "PATCH", "/api/v1/namespaces/default/pods/p", {"spec": {"activeDeadlineSeconds": 5}}, merge
    )
    assert changed["metadata"]["generation"] == 2 and changed["status"]["podIP"] == "127.0.1.1"
    status, text = await api.call("GET", "/api/v1/namespaces/default/pods/p/log")
    assert status == 400 and "waiting to start" in text["message"]
    await api.call("POST", "/api/v1/namespaces/default/pods", {**pod, "metadata": {"name": "ran"}})
    status, text = await api.call("GET", "/api/v1/namespaces/default/pods/ran/log?container=c")
    assert (status, text) == (200, "hello from default/ran/c\n")


async def test_server_side_apply_creates_then_merges(api: Client) -> None:
    apply = "application/apply-patch+yaml"
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases/l?fieldManager=test"
    doc = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: l}\nspec: {holderIdentity: a}\n"
    status, lease = await api.call("PATCH", path, doc, apply)
    assert status == 201 and lease["spec"] == {"holderIdentity": "a"}  # created, as on a real server
    _, lease = await api.call(
        "PATCH", path, doc.replace("holderIdentity: a", "leaseDurationSeconds: 15"), apply
    )
    # as on a real server: a field this manager applied before and no longer applies is removed
    assert lease["spec"] == {"leaseDurationSeconds": 15}
    (entry,) = lease["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("test", "Apply")
    assert entry["fieldsV1"] == {"f:spec": {"f:leaseDurationSeconds": {}}}


async def test_events_and_field_selectors(api: Client) -> None:
    for n, kind in enumerate(["Pod", "Job", "Pod"]):
        event = {
            "metadata": {"name": f"e{n}"},
            "involvedObject": {"kind": kind, "name": f"o{n}", "namespace": "default"},
            "reason": "Test",
            "message": "m",
            "type": "Normal",
        }
        assert (await api.call("POST", "/api/v1/namespaces/default/events", event))[0] == 201
    _, listed = await api.call(
        "GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.kind%3DPod"
    )
    assert [e["metadata"]["name"] for e in listed["items"]] == ["e0", "e2"]
    new_event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "n1"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reason": "R",
        "action": "A",
        "note": "x",
        "reportingController": "c",
        "reportingInstance": "i",
        "type": "Normal",
        "regarding": {"kind": "Pod"},
    }
    assert (await api.call("POST", "/apis/events.k8s.io/v1/namespaces/default/events", new_event))[0] == 201


async def test_cluster_wide_watch_and_deletecollection(api: Client) -> None:
    await api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "other"}})
    _, listed = await api.call("GET", "/api/v1/configmaps")
    rv = listed["metadata"]["resourceVersion"]
    events: list[tuple[str, str, str]] = []

    async def watch() -> None:
        async with api.session.get(
            f"{api.url}/api/v1/configmaps",
            params={
                "watch": "1",
                "resourceVersion": rv,
                "timeoutSeconds": "5",
                "labelSelector": "keep",
                "allowWatchBookmarks": "true",
            },
        ) as resp:
            async for line in resp.content:
                event = json.loads(line)
                if event["type"] == "BOOKMARK":
                    continue
                meta = event["object"]["metadata"]
                events.append((event["type"], meta["namespace"], meta["name"]))
                if len(events) == 4:
                    return

    task = asyncio.create_task(watch())
    for ns in ("default", "other"):
        for name, labels in (("a", {"keep": "1"}), ("b", {})):
            await api.call(
                "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": name, "labels": labels}}
            )
    status, deleted = await api.call("DELETE", "/api/v1/namespaces/other/configmaps?labelSelector=keep")
    assert status == 200 and [i["metadata"]["name"] for i in deleted["items"]] == ["a"]
    await api.call(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/b",
        {"metadata": {"labels": {"keep": "y"}}},
        "application/merge-patch+json",
    )
    await asyncio.wait_for(task, 5)
    assert events == [
        ("ADDED", "default", "a"),
        ("ADDED", "other", "a"),
        ("DELETED", "other", "a"),
        ("ADDED", "default", "b"),
    ]
    _, remaining = await api.call("GET", "/api/v1/configmaps")
    assert sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in remaining["items"]) == [
        ("default", "a"),
        ("default", "b"),
        ("other", "b"),
    ]


async def test_bad_requests_are_statuses(api: Client) -> None:
    status, body = await api.call(
        "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "Bad_Name"}}
    )
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
    status, body = await api.call("GET", "/apis/nothing.dev/v1/things")
    assert status == 404 and body["kind"] == "Status"
    status, body = await api.call(
        "GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=abc"
    )
    assert status == 400


async def test_malformed_query_values_are_bad_requests(api: Client) -> None:
    await api.call("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}})
    status, body = await api.call("DELETE", "/api/v1/namespaces/default/configmaps/c?gracePeriodSeconds=soon")
    assert status == 400 and body["kind"] == "Status"
    status, body = await api.call("GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(b")
    assert status == 400


def test_thread_server_reports_a_busy_port_and_cleans_up() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        srv = ApiServerThread(port=busy.getsockname()[1])
        with pytest.raises(OSError):
            srv.start()
        assert not srv._thread.is_alive()


async def test_auto_created_namespaces_and_namespace_cascade() -> None:
    server = ApiServer(auto_create_namespaces=True)
    url = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Client(url, session)
            status, _ = await api.call(
                "POST", "/api/v1/namespaces/fresh/secrets", {"metadata": {"name": "s"}}
            )
            assert status == 201
            assert (await api.call("GET", "/api/v1/namespaces/fresh"))[0] == 200
            assert (await api.call("DELETE", "/api/v1/namespaces/fresh"))[0] == 200
            status, listed = await api.call("GET", "/api/v1/secrets")
            assert status == 200 and listed["items"] == []
    finally:
        await server.stop()
