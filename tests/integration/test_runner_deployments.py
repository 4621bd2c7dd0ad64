"""Deployments, readiness probes, Services/Endpoints and the service proxy of the local runtime."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _runtime_support import running_runtime, wait_for

from onnxops.local.runner.client import DEPLOYMENTS, ENDPOINTS, PODS, SERVICES, ResourceClient
from onnxops.local.runtime import LocalRuntime

IMAGE = "ghcr.io/onnxops/onnxops-serving:0.1.0"
KUBECTL = Path(sys.executable).parent / "kubectl"
# A tiny HTTP server that answers with its pod's name: binds the pod's own loopback address.
SERVER = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = (os.environ['VERSION'] + ' ' + os.environ['HOSTNAME']).encode()\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "server = http.server.ThreadingHTTPServer((os.environ['ONNXOPS_HOST'], 8080), H)\n"
    "print('serving', flush=True)\n"
    "server.serve_forever()\n"
)


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    async with running_runtime(tmp_path) as runtime:
        yield runtime


def deployment(name: str, version: str, replicas: int = 2, probe_path: str = "/") -> dict[str, Any]:
    container = {
        "name": "server",
        "image": IMAGE,
        "command": ["python", "-c", SERVER],
        "env": [{"name": "VERSION", "value": version}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": probe_path, "port": "http"}, "periodSeconds": 1},
    }
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]},
            },
        },
    }


def service(name: str, app: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"selector": {"app": app}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
    }


def conds(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions") or []}


async def ready_deployment(client: ResourceClient, name: str, replicas: int) -> dict[str, Any] | None:
    d = await client.get(DEPLOYMENTS, "default", name)
    st = (d or {}).get("status", {})
    ok = (
        st.get("readyReplicas") == replicas
        and st.get("updatedReplicas") == replicas
        and st.get("replicas") == replicas
        and st.get("availableReplicas") == replicas
    )
    return d if ok else None


async def pods_of(client: ResourceClient, app: str) -> list[dict[str, Any]]:
    pods, _ = await client.list(PODS, "default", label_selector=f"app={app}")
    return pods


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


async def test_pods_become_ready_through_real_probe_and_serve_via_endpoints(rt: LocalRuntime) -> None:
    assert rt.client is not None
    dep = await rt.client.create(DEPLOYMENTS, "default", deployment("web", "v1"))
    await rt.client.create(SERVICES, "default", service("web", "web"))
    if KUBECTL.exists():  # kubectl's own reading of the status agrees
        proc = await asyncio.create_subprocess_exec(
            str(KUBECTL),
            "--kubeconfig",
            str(rt.kubeconfig),
            "rollout",
            "status",
            "deployment/web",
            "--timeout=30s",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0 and b"successfully rolled out" in out, out
    d = await wait_for(lambda: ready_deployment(rt.client, "web", 2), what="2 ready")
    st, c = d["status"], conds(d)
    assert st["observedGeneration"] == d["metadata"]["generation"]
    assert "unavailableReplicas" not in st
    assert (c["Available"]["status"], c["Available"]["reason"]) == ("True", "MinimumReplicasAvailable")
    assert (c["Progressing"]["status"], c["Progressing"]["reason"]) == ("True", "NewReplicaSetAvailable")
    pods = await pods_of(rt.client, "web")
    assert len(pods) == 2
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 2  # each pod has its own address; both listen on 8080
    for p in pods:
        md = p["metadata"]
        h = md["labels"]["pod-template-hash"]
        assert md["name"].startswith(f"web-{h}-")
        assert md["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]
        assert {x["type"]: x["status"] for x in p["status"]["conditions"]}["Ready"] == "True"

    async def endpoints_ready() -> dict[str, Any] | None:
        ep = await rt.client.get(ENDPOINTS, "default", "web")  # type: ignore[union-attr]
        subsets = (ep or {}).get("subsets") or []
        ok = subsets and {a["ip"] for a in subsets[0].get("addresses", [])} == ips
        return ep if ok else None

    ep = await wait_for(endpoints_ready, what="endpoints")
    assert ep["subsets"][0]["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    # the service proxy spreads requests over both pods
    url = await rt.service_proxy("default", "web", 80)
    seen = set()
    async with aiohttp.ClientSession() as s:
        for _ in range(4):
            async with s.get(url + "/") as resp:
                assert resp.status == 200
                seen.add((await resp.text()).split()[1])
    assert seen == {p["metadata"]["name"] for p in pods}
    assert rt.service_url("default", "web", "web").rsplit(":", 1)[1] == "8080"
    # the service gateway (a stand-in for cluster DNS): /<namespace>/<service>/<port>/<path>, answered
    # with a Content-Length, by port number or name; an unknown service is refused like one without endpoints
    gw = await rt.service_gateway()
    seen = set()
    async with aiohttp.ClientSession() as s:
        for port in (80, "web", 80, "web"):
            async with s.get(f"{gw}/default/web/{port}/") as resp:
                assert resp.status == 200 and resp.headers.get("Content-Length")
                seen.add((await resp.text()).split()[1])
        async with s.get(f"{gw}/default/nope/80/") as resp:
            assert resp.status == 503
        async with s.get(f"{gw}/default") as resp:
            assert resp.status == 404
    assert seen == {p["metadata"]["name"] for p in pods}


async def test_endpoints_list_only_ready_pods(rt: LocalRuntime) -> None:
    assert rt.client is not None
    # the probe asks for a path the server answers... with 200; a second deployment probes a closed port
    bad = deployment("never", "v1", replicas=1)
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = 9
    await rt.client.create(DEPLOYMENTS, "default", bad)
    await rt.client.create(SERVICES, "default", service("never", "never"))

    async def not_ready_listed() -> dict[str, Any] | None:
        ep = await rt.client.get(ENDPOINTS, "default", "never")  # type: ignore[union-attr]
        subsets = (ep or {}).get("subsets") or []
        return ep if subsets and subsets[0].get("notReadyAddresses") else None

    ep = await wait_for(not_ready_listed, what="notReadyAddresses")
    await asyncio.sleep(1.5)  # several probe periods
    ep = await rt.client.get(ENDPOINTS, "default", "never")
    assert ep is not None and "addresses" not in ep["subsets"][0]
    assert rt.service_backends("default", "never", 80) == []
    async with aiohttp.ClientSession() as s, s.get(await rt.service_proxy("default", "never", 80)) as resp:
        assert resp.status == 503  # no ready endpoint: the proxy refuses, as a Service without endpoints
    d = await rt.client.get(DEPLOYMENTS, "default", "never")
    assert d is not None and conds(d)["Available"]["status"] == "False"
    assert d["status"]["unavailableReplicas"] == 1


async def test_rolling_update_replaces_pods_without_losing_availability(rt: LocalRuntime) -> None:
    assert rt.client is not None
    await rt.client.create(DEPLOYMENTS, "default", deployment("roll", "v1", replicas=1))
    await wait_for(lambda: ready_deployment(rt.client, "roll", 1), what="v1 ready")
    [old] = await pods_of(rt.client, "roll")
    old_pid = rt.pids()[f"default/{old['metadata']['name']}"][0]
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{**deployment("roll", "v2")["spec"]["template"]["spec"]["containers"][0]}]
                }
            }
        }
    }
    await rt.client.patch(DEPLOYMENTS, "default", "roll", patch)
    min_available = 1

    async def rolled() -> dict[str, Any] | None:
        nonlocal min_available
        d = await rt.client.get(DEPLOYMENTS, "default", "roll")  # type: ignore[union-attr]
        assert d is not None
        min_available = min(min_available, d["status"].get("availableReplicas", 0))
        pods = await pods_of(rt.client, "roll")
        if [p["metadata"]["name"] for p in pods] == [old["metadata"]["name"]]:
            return None
        ok = (
            len(pods) == 1
            and pods[0]["metadata"]["name"] != old["metadata"]["name"]
            and await ready_deployment(rt.client, "roll", 1)
        )
        return d if ok else None

    d = await wait_for(rolled, what="rollout")
    assert min_available == 1  # maxUnavailable 0: the old pod stayed until the new one was Ready
    [new] = await pods_of(rt.client, "roll")
    assert new["metadata"]["labels"]["pod-template-hash"] != old["metadata"]["labels"]["pod-template-hash"]
    assert d["status"]["observedGeneration"] == 2
    await wait_for(lambda: _async(not alive(old_pid)), what="old process stopped")
    async with aiohttp.ClientSession() as s, s.get(f"http://{new['status']['podIP']}:8080/") as resp:
        assert (await resp.text()).startswith("v2 ")


async def test_deleting_the_deployment_collects_pods_and_processes(rt: LocalRuntime) -> None:
    assert rt.client is not None
    await rt.client.create(DEPLOYMENTS, "default", deployment("gone", "v1"))
    await wait_for(lambda: ready_deployment(rt.client, "gone", 2), what="ready")
    pids = [pid for key, ps in rt.pids().items() if key.startswith("default/gone-") for pid in ps]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    await rt.client.delete(DEPLOYMENTS, "default", "gone")
    await wait_for(lambda: _async(not any(alive(p) for p in pids)), what="processes stopped")
    await wait_for(lambda: _none(pods_of(rt.client, "gone")), what="pods removed")


async def test_killed_process_is_seen_and_restarted(rt: LocalRuntime) -> None:
    assert rt.client is not None
    await rt.client.create(DEPLOYMENTS, "default", deployment("crash", "v1", replicas=1))
    await wait_for(lambda: ready_deployment(rt.client, "crash", 1), what="ready")
    [pod] = await pods_of(rt.client, "crash")
    name = pod["metadata"]["name"]
    pid = rt.pids()[f"default/{name}"][0]
    os.kill(pid, signal.SIGKILL)

    async def restarted() -> dict[str, Any] | None:
        p = await rt.client.get(PODS, "default", name)  # type: ignore[union-attr]
        cs = (p or {}).get("status", {}).get("containerStatuses") or [{}]
        return p if cs[0].get("restartCount") == 1 and cs[0].get("ready") else None

    p = await wait_for(restarted, what="restart")
    last = p["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (128 + signal.SIGKILL, "Error")
    assert rt.pids()[f"default/{name}"][0] != pid
    assert (rt.read_log("default", name, "server", None) or "").count("serving") == 1  # this run only
    previous = rt.state_dir / "logs" / f"default_{name}_server.log.previous"
    assert previous.read_text().count("serving") == 1
    await wait_for(lambda: ready_deployment(rt.client, "crash", 1), what="ready again")


async def _async(x: Any) -> Any:
    return x


async def _none(aw: Awaitable[list[Any]]) -> bool:
    return not await aw
