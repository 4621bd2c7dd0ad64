"""``onnxops demo --cluster``: the same steps against the current kube context, e.g. the kind quick start
(`make kind-up`, then `helm install onnxops charts/onnxops -f deploy/kind/values.yaml`).

What it needs from the cluster: the operator installed (it is not started here), the artifacts PVC
`onnxops-artifacts` (the chart creates it), and the kind port mapping of kind-config.yaml: host
127.0.0.1:8080 -> NodePort 30080, which the Service in deploy/kind/iris-nodeport.yaml exposes. The traffic
goes through that NodePort (no port-forward). The data sets are written onto the PVC by a one-off Job
running the trainer image (`python -m onnxops.demo.data <dir>`: deterministic, the same files as locally).
The ground truth of step 5 (label files the traffic generator writes) reaches the same claim through a
small pod (trainer image, the claim mounted): each file is piped into it with `kubectl exec -i`, written
under a hidden name and renamed. So the cluster needs the claim mountable by that pod beside the serving
pods (one kind node, or a ReadWriteMany claim) and `kubectl` on this machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
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
LABELS_POD = "onnxops-demo-labels"
CLAIM = "onnxops-artifacts"
# run in the labels pod: stdin -> <dir>/<name>, complete files only (hidden temporary name, then rename)
WRITE_STDIN = ("import os,sys;d,n=sys.argv[1:3];os.makedirs(d,exist_ok=True);t=os.path.join(d,'.'+n+'.tmp');"
               "open(t,'wb').write(sys.stdin.buffer.read());os.replace(t,os.path.join(d,n))")


def kubectl() -> str | None:
    local = os.path.join(os.path.dirname(sys.executable), "kubectl")
    return local if os.path.exists(local) else shutil.which("kubectl")


def labels_pod(namespace: str, image: str) -> dict[str, Any]:
    """A pod that holds the artifacts claim mounted, for `kubectl exec` to write label files into."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": LABELS_POD, "namespace": namespace, "labels": labels.base("demo")},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
            "containers": [{
                "name": "labels",
                "image": image,
                "command": ["python", "-c", "import time; time.sleep(86400)"],
                "volumeMounts": [{"name": "artifacts", "mountPath": f"{PVC_MOUNT_ROOT}/{CLAIM}"}],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
            "volumes": [{"name": "artifacts", "persistentVolumeClaim": {"claimName": CLAIM}}],
        },
    }


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
        self.kubectl: str | None = None

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

        self.kubectl = kubectl()
        if self.kubectl is None:
            raise RuntimeError("kubectl not found: step 5's label files reach the cluster through "
                               f"`kubectl exec` into pod {LABELS_POD}")
        try:
            await self.client.create(labels_pod(self.namespace, Settings.from_env().trainer_image))
        except ApiError as e:
            if e.status != 409:
                raise
        deadline = time.monotonic() + 120
        while ((await self.client.get("v1", "Pod", self.namespace, LABELS_POD) or {}).get("status")
               or {}).get("phase") != "Running":
            if time.monotonic() > deadline:
                raise RuntimeError(f"pod {LABELS_POD} (writes the label files onto the claim {CLAIM}) is not "
                                   f"Running after 120s: kubectl describe pod {LABELS_POD}")
            await asyncio.sleep(2)
        self.log(f"label files go to pvc://{CLAIM}/labels/iris/ through pod {LABELS_POD}")

    def write_labels(self, name: str, data: bytes) -> None:
        from onnxops.demo.env import LABELS_DIR

        assert self.kubectl is not None
        out = subprocess.run(
            [self.kubectl, "exec", "-i", "-n", self.namespace, LABELS_POD, "--", "python", "-c", WRITE_STDIN,
             f"{PVC_MOUNT_ROOT}/{CLAIM}/{LABELS_DIR}", name],
            input=data, capture_output=True, timeout=60, check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"writing label file {name} through pod {LABELS_POD} failed: "
                               f"{out.stderr.decode(errors='replace')[:300]}")

    async def service_url(self, name: str) -> str:
        return NODEPORT_URL

    async def stop(self) -> None:
        try:
            await self.client.delete("v1", "Pod", self.namespace, LABELS_POD)
        except Exception as e:  # best effort: say so, never hide the demo's own outcome
            self.log(f"could not delete pod {LABELS_POD}: {e}")
        await self.client.close()

    def accounting(self) -> dict[str, Any]:
        return {"pids": {}, "ports": []}

    def problem(self) -> str | None:
        return None  # the operator runs in the cluster
