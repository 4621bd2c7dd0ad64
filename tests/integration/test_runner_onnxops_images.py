"""Our own images' pods on the local runtime, end to end: the trainer Job the operator builds runs the real
trainer into the PVC directory, and the serving Deployment it builds becomes Ready through its real
`/v2/health/ready` probe and answers inference through the service proxy."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from _runtime_support import running_runtime, wait_for
from sklearn.datasets import load_iris

from onnxops.builders.deployment import deployment
from onnxops.builders.job import training_job
from onnxops.local.runner.client import DEPLOYMENTS, JOBS, PODS, SERVICES
from onnxops.local.runtime import LocalRuntime
from onnxops.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.slow


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    async with running_runtime(tmp_path) as runtime:
        yield runtime


async def test_trainer_job_then_serving_deployment(rt: LocalRuntime) -> None:
    assert rt.client is not None
    client = rt.client
    tj = yaml.safe_load((EXAMPLES / "trainingjob-iris.yaml").read_text())
    tj["metadata"].update(namespace="default", uid="0f0e0d0c-0000-4000-8000-000000000001")
    job = training_job(tj, Settings())
    job["metadata"].pop("ownerReferences", None)  # no TrainingJob object in this test
    await client.create(JOBS, "default", job)

    async def finished() -> dict[str, Any] | None:
        j = await client.get(JOBS, "default", job["metadata"]["name"])
        c = {x["type"]: x["status"] for x in (j or {}).get("status", {}).get("conditions") or []}
        return j if "True" in (c.get("Complete"), c.get("Failed")) else None

    j = await wait_for(finished, 60.0, what="training job")
    assert any(c["type"] == "Complete" for c in j["status"]["conditions"]), j["status"]
    pods, _ = await client.list(PODS, "default", label_selector=f"job-name={job['metadata']['name']}")
    result = json.loads(pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    art = result["artifact"]
    claim, _, rel = art["uri"].removeprefix("pvc://").partition("/")
    local = rt.state_dir / "pvc" / claim / rel  # the PVC is a directory of the runtime's state dir
    assert hashlib.sha256(local.read_bytes()).hexdigest() == art["sha256"]

    mv = {
        "metadata": {"name": "iris-v1"},
        "spec": {"model": "iris", "version": 1, "artifact": art, "profile": result["profile"]},
    }
    isvc = {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "default", "uid": "isvc-uid"},
        "spec": {"model": "iris"},
    }
    dep = deployment(isvc, mv, 2, Settings())
    dep["metadata"].pop("ownerReferences", None)
    await client.create(DEPLOYMENTS, "default", dep)
    await client.create(
        SERVICES,
        "default",
        {
            "metadata": {"name": "iris"},
            "spec": {
                "selector": dep["spec"]["selector"]["matchLabels"],
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )

    async def ready() -> bool:
        d = await client.get(DEPLOYMENTS, "default", dep["metadata"]["name"])
        return (
            bool(d)
            and d.get("status", {}).get("readyReplicas") == 2
            and len(rt.service_backends("default", "iris", 80)) == 2
        )

    await wait_for(ready, 60.0, what="serving pods ready")
    iris = load_iris()
    url = await rt.service_proxy("default", "iris", 80)
    async with aiohttp.ClientSession() as s:
        body = {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 4],
                    "data": [float(x) for x in iris.data[0]],
                }
            ]
        }
        async with s.post(f"{url}/v2/models/iris/infer", json=body) as resp:
            assert resp.status == 200, await resp.text()
            out = {o["name"]: o["data"] for o in (await resp.json())["outputs"]}
    assert out["label"] == [int(iris.target[0])]
