"""Bare pods on the local runtime: image refusal, env/volumes, graceful deletion, probes, shutdown."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _runtime_support import running_runtime, wait_for

from onnxops.local.runner.client import CONFIGMAPS, EVENTS, PODS, SECRETS, ResourceClient
from onnxops.local.runtime import LocalRuntime, LocalRuntimeThread

IMAGE = "ghcr.io/onnxops/onnxops-trainer:0.1.0"


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    async with running_runtime(tmp_path, extra_images={"test/python:1": ["python"]}) as runtime:
        yield runtime


def pod(name: str, code: str, image: str = IMAGE, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": "Never",
            **spec,
            "containers": [{"name": "main", "image": image, "command": ["python", "-c", code]}],
        },
    }


async def phase(client: ResourceClient, name: str, want: str) -> dict[str, Any] | None:
    p = await client.get(PODS, "default", name)
    return p if p and p.get("status", {}).get("phase") == want else None


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


async def test_unknown_image_goes_err_image_pull_then_image_pull_back_off(rt: LocalRuntime) -> None:
    """As the kubelet does with an image it cannot pull: waiting reason ErrImagePull, then ImagePullBackOff,
    with Events `Failed` (Warning) and `BackOff`; the container never runs."""
    assert rt.client is not None
    await rt.client.create(PODS, "default", pod("nginx", "pass", image="docker.io/library/nginx:1.27"))

    async def waiting(reason: str) -> dict[str, Any] | None:
        p = await rt.client.get(PODS, "default", "nginx")  # type: ignore[union-attr]
        cs = ((p or {}).get("status") or {}).get("containerStatuses") or [{}]
        w = cs[0].get("state", {}).get("waiting") or {}
        return w if w.get("reason") == reason else None

    pull = await wait_for(lambda: waiting("ErrImagePull"), what="ErrImagePull")
    assert 'failed to pull image "docker.io/library/nginx:1.27"' in pull["message"]
    back_off = await wait_for(lambda: waiting("ImagePullBackOff"), what="ImagePullBackOff")
    assert back_off["message"] == 'Back-off pulling image "docker.io/library/nginx:1.27"'

    async def events() -> list[dict[str, Any]] | None:
        evs, _ = await rt.client.list(EVENTS, "default")  # type: ignore[union-attr]
        mine = [e for e in evs if e["involvedObject"]["name"] == "nginx"]
        return mine if any(e["reason"] == "BackOff" for e in mine) else None

    evs = await wait_for(events, what="events")
    failed = [e for e in evs if e["reason"] == "Failed"]
    assert failed and all(e["type"] == "Warning" for e in failed)
    assert any('Failed to pull image "docker.io/library/nginx:1.27"' in e["message"] for e in failed)
    p = await rt.client.get(PODS, "default", "nginx")
    assert p is not None and p["status"]["phase"] == "Pending"
    assert rt.pids().get("default/nginx", []) == []


async def test_env_volumes_and_arg_expansion(rt: LocalRuntime) -> None:
    assert rt.client is not None
    await rt.client.create(CONFIGMAPS, "default", {"metadata": {"name": "cfg"}, "data": {"mode": "fast"}})
    await rt.client.create(
        SECRETS,
        "default",
        {"metadata": {"name": "creds"}, "data": {"token": base64.b64encode(b"s3cr3t").decode()}},
    )
    code = (
        "import json, os, sys, pathlib\n"
        "out = {'argv': sys.argv[1:], 'env': {k: os.environ.get(k) for k in "
        "['MODE', 'TOKEN', 'DATA', 'LABEL', 'NS', 'TERM_LOG']},\n"
        " 'cfg': pathlib.Path(os.environ['CFG']).read_text(),\n"
        " 'secret': pathlib.Path(os.environ['SECRET_FILE']).read_text()}\n"
        "pathlib.Path(sys.argv[2]).write_text('shared')\n"
        "open(os.environ['TERM_LOG'], 'w').write(json.dumps(out))\n"
    )
    body = pod("env", code)
    c = body["spec"]["containers"][0]
    c["args"] = ["$(MODE)", "/data/out.txt", "$$(MODE)"]
    c["terminationMessagePath"] = "/run/onnxops/result"
    c["env"] = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "DATA", "value": "/data"},
        {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TERM_LOG", "value": "/run/onnxops/result"},
        {"name": "CFG", "value": "/etc/cfg/mode"},
        {"name": "SECRET_FILE", "value": "$(SECRET_DIR)/token"},
    ]
    c["env"].insert(0, {"name": "SECRET_DIR", "value": "/etc/creds"})
    c["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"},
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "creds", "mountPath": "/etc/creds"},
    ]
    body["spec"]["volumes"] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "models"}},
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "creds", "secret": {"secretName": "creds"}},
    ]
    await rt.client.create(PODS, "default", body)
    p = await wait_for(lambda: phase(rt.client, "env", "Succeeded"), what="succeeded")
    out = json.loads(p["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    pvc = rt.state_dir / "pvc" / "models"
    assert out["argv"] == ["fast", str(pvc / "out.txt"), "$(MODE)"]
    assert (pvc / "out.txt").read_text() == "shared"  # the PVC is a directory under the state dir
    env = out["env"]
    assert (env["MODE"], env["TOKEN"], env["LABEL"], env["NS"]) == ("fast", "s3cr3t", "env", "default")
    assert env["DATA"] == str(pvc)
    assert env["TERM_LOG"].startswith(str(rt.state_dir))
    assert out["cfg"] == "fast" and out["secret"] == "s3cr3t"


async def test_missing_secret_blocks_start_until_it_exists(rt: LocalRuntime) -> None:
    assert rt.client is not None
    body = pod("waits", "import os; print(os.environ['PASSWORD'])")
    body["spec"]["containers"][0]["env"] = [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "later", "key": "pw"}}}
    ]
    await rt.client.create(PODS, "default", body)

    async def blocked() -> dict[str, Any] | None:
        p = await rt.client.get(PODS, "default", "waits")  # type: ignore[union-attr]
        cs = (p or {}).get("status", {}).get("containerStatuses") or [{}]
        reason = cs[0].get("state", {}).get("waiting", {}).get("reason")
        return p if reason == "CreateContainerConfigError" else None

    p = await wait_for(blocked, what="CreateContainerConfigError")
    assert 'secret "later" not found' in p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    await rt.client.create(SECRETS, "default", {"metadata": {"name": "later"}, "stringData": {"pw": "x"}})
    await wait_for(lambda: phase(rt.client, "waits", "Succeeded"), what="started later")


async def test_graceful_deletion_sigterm_then_sigkill(rt: LocalRuntime, tmp_path: Any) -> None:
    assert rt.client is not None
    marker = tmp_path / "got-term"
    ignores = (
        "import signal, time, pathlib\n"
        f"signal.signal(signal.SIGTERM, lambda *a: pathlib.Path({str(marker)!r}).write_text('term'))\n"
        "print('up', flush=True)\n"
        "while True: time.sleep(0.1)\n"
    )
    await rt.client.create(PODS, "default", pod("stubborn", ignores, terminationGracePeriodSeconds=1))
    await wait_for(lambda: phase(rt.client, "stubborn", "Running"), what="running")
    await wait_for(lambda: _async(marker.parent.exists() and _logged(rt, "stubborn")), what="handler set")
    pid = rt.pids()["default/stubborn"][0]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await rt.client.delete(PODS, "default", "stubborn")
    await wait_for(lambda: _async(not alive(pid)), what="killed")
    elapsed = loop.time() - t0
    assert marker.read_text() == "term"  # SIGTERM came first and was ignored ...
    assert elapsed >= 0.9  # ... so SIGKILL came after the grace period
    await wait_for(lambda: _absent(rt.client, "stubborn"), what="pod removed")
    events, _ = await rt.client.list(EVENTS, "default")
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == "stubborn"]
    assert "Started" in reasons and "Killing" in reasons


async def test_liveness_failure_restarts_the_container(rt: LocalRuntime) -> None:
    assert rt.client is not None
    body = pod("sick", "import time; time.sleep(60)", restartPolicy="Always")
    body["spec"]["containers"][0]["livenessProbe"] = {
        "tcpSocket": {"port": 8080},
        "periodSeconds": 1,
        "failureThreshold": 1,
        "timeoutSeconds": 1,
    }
    body["spec"]["terminationGracePeriodSeconds"] = 1
    await rt.client.create(PODS, "default", body)

    async def restarted() -> dict[str, Any] | None:
        p = await rt.client.get(PODS, "default", "sick")  # type: ignore[union-attr]
        cs = (p or {}).get("status", {}).get("containerStatuses") or [{}]
        return p if cs[0].get("restartCount", 0) >= 1 else None

    await wait_for(restarted, what="liveness restart")


async def test_thread_wrapper_starts_and_stops_cleanly(tmp_path: Any) -> None:
    def run() -> list[int]:
        with LocalRuntimeThread(tmp_path / "s", backoff=(0.2, 1.0)) as rtt:
            assert rtt.kubeconfig.exists() and rtt.url.startswith("http://127.0.0.1:")
            client = ResourceClient(rtt.url)

            async def make() -> None:
                await client.create(PODS, "default", pod("bg", "import time; time.sleep(60)"))
                await client.close()

            asyncio.run(make())
            deadline = time.monotonic() + 20
            while not rtt.pids().get("default/bg"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            return rtt.pids()["default/bg"]

    pids = await asyncio.to_thread(run)
    assert pids and not any(alive(p) for p in pids)  # stopping the runtime stops its processes


def _logged(rt: LocalRuntime, name: str) -> bool:
    return "up" in (rt.read_log("default", name, "main", None) or "")


async def _async(x: Any) -> Any:
    return x


async def _absent(client: ResourceClient, name: str) -> bool:
    return await client.get(PODS, "default", name) is None


async def test_pod_active_deadline_fails_the_pod(rt: LocalRuntime) -> None:
    assert rt.client is not None
    body = pod(
        "late", "import time; time.sleep(60)", activeDeadlineSeconds=1, terminationGracePeriodSeconds=1
    )
    await rt.client.create(PODS, "default", body)
    p = await wait_for(lambda: phase(rt.client, "late", "Failed"), what="deadline")
    assert p["status"]["reason"] == "DeadlineExceeded"
    assert p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143  # SIGTERM
    assert rt.pids().get("default/late") == []


async def test_init_container_runs_first_and_shares_an_empty_dir(rt: LocalRuntime) -> None:
    assert rt.client is not None
    code = "import os; open(os.environ['OUT'], 'w').write(open(os.environ['SEED']).read() + ' main')"
    body = pod("init", code)
    main = body["spec"]["containers"][0]
    main["env"] = [{"name": "SEED", "value": "/data/seed"}, {"name": "OUT", "value": "/dev/termination-log"}]
    main["volumeMounts"] = [{"name": "work", "mountPath": "/data"}]
    body["spec"]["volumes"] = [{"name": "work", "emptyDir": {}}]
    seed = "import sys; open(sys.argv[1], 'w').write('init')"
    body["spec"]["initContainers"] = [
        {
            "name": "seed",
            "image": IMAGE,
            "command": ["python", "-c", seed],
            "args": ["/data/seed"],
            "volumeMounts": [{"name": "work", "mountPath": "/data"}],
        }
    ]
    await rt.client.create(PODS, "default", body)
    p = await wait_for(lambda: phase(rt.client, "init", "Succeeded"), what="succeeded")
    assert p["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == "init main"
    assert p["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert {c["type"]: c["status"] for c in p["status"]["conditions"]}["Initialized"] == "True"
