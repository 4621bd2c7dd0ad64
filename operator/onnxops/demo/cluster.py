"""``onnxops demo --cluster``: the same steps against the current kube context, e.g. the kind quick start
(`make kind-up`, then `helm install onnxops charts/onnxops -f deploy/kind/values.yaml`).

What it needs from the cluster: the operator installed (it is not started here), the artifacts PVC
`onnxops-artifacts` (the chart creates it), and the kind port mapping of kind-config.yaml: host
127.0.0.1:8080 -> NodePort 30080, which the Service in deploy/kind/iris-nodeport.yaml exposes. The traffic
goes through that NodePort (no port-forward). The data sets are written onto the PVC by a one-off Job
running the trainer image (`python -m onnxops.demo.data <dir>`: deterministic, the same files as locally).
The ground truth of step 5 goes, as in the local demo, to the serving pods' feedback endpoint through the
same NodePort; the pods write it as label files next to the traffic they capture, so the claim must be
writable by every serving pod (one kind node, or a ReadWriteMany claim).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import yaml

from onnxops.builders import labels
from onnxops.kube.client import ApiError, KubeClient
from onnxops.settings import PVC_MOUNT_ROOT, Settings

NODEPORT_URL = os.environ.get("ONNXOPS_DEMO_URL", "http://127.0.0.1:8080")
NODEPORT_MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "kind" / "iris-nodeport.yaml"
DATA_JOB = "onnxops-demo-datasets"
CLAIM = "onnxops-artifacts"


def datasets_job(namespace: str, image: str) -> dict[str, Any]:
    claim = "onnxops-artifacts"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": DATA_JOB, "namespace": namespace, "labels": labels.base("demo")},
        "spec": {
            "backoffLimit": 1,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
                    "containers": [
                        {
                            "name": "datasets",
                            "image": image,
                            "command": [
                                "python",
                                "-m",
                                "onnxops.demo.data",
                                f"{PVC_MOUNT_ROOT}/{claim}/datasets",
                            ],
                            "volumeMounts": [{"name": "artifacts", "mountPath": f"{PVC_MOUNT_ROOT}/{claim}"}],
                        }
                    ],
                    "volumes": [{"name": "artifacts", "persistentVolumeClaim": {"claimName": claim}}],
                }
            },
        },
    }


class ClusterEnv:
    def __init__(self, namespace: str | None = None, log: Any = print) -> None:
        self.client = KubeClient.from_kubeconfig()
        self.namespace = namespace or "default"
        self.prometheus_url = ""  # the operator's own setting applies (chart values)
        kc = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        self.kubeconfig: Path | None = Path(kc) if kc else None
        self.log = log

    async def start(self) -> None:
        self.log(
            f"cluster: {self.client.server} (namespace {self.namespace}); the operator must be installed"
        )
        job = datasets_job(self.namespace, Settings.from_env().trainer_image)
        try:
            await self.client.create(job)
        except ApiError as e:
            if e.status != 409:
                raise
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            st = (await self.client.get("batch/v1", "Job", self.namespace, DATA_JOB) or {}).get(
                "status"
            ) or {}
            if st.get("succeeded"):
                break
            if st.get("failed"):
                raise RuntimeError(
                    f"Job {DATA_JOB} (writing the data sets) failed: kubectl logs job/{DATA_JOB}"
                )
            await asyncio.sleep(2)
        else:
            raise RuntimeError(f"Job {DATA_JOB} did not finish in 180s")
        self.log("data sets written to pvc://onnxops-artifacts/datasets/ by a Job")
        if NODEPORT_MANIFEST.exists():
            svc = yaml.safe_load(NODEPORT_MANIFEST.read_text())
            svc["metadata"]["namespace"] = self.namespace
            try:
                await self.client.create(svc)
            except ApiError as e:
                if e.status != 409:
                    raise

    async def service_url(self, name: str) -> str:
        return NODEPORT_URL

    async def stop(self) -> None:
        await self.client.close()

    def accounting(self) -> dict[str, Any]:
        return {"pids": {}, "ports": []}

    def problem(self) -> str | None:
        return None  # the operator runs in the cluster
