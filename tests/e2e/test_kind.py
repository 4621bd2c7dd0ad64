"""The demo's scenario on a real cluster (the kind quick start: `make kind-up`, then `make e2e-kind`).

Skipped unless ONNXOPS_E2E_KIND=1 and the current kube context answers: no cluster runs on the machines
where the rest of the suite runs. Same assertions as the local demo, read from the objects' status.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _demo_run import run_demo

pytestmark = [pytest.mark.kind, pytest.mark.slow]


def _cluster_answers() -> bool:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return False
    try:
        out = subprocess.run(
            [kubectl, "get", "crd", "inferenceservices.onnxops.dev"], capture_output=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


@pytest.mark.skipif(
    os.environ.get("ONNXOPS_E2E_KIND") != "1", reason="set ONNXOPS_E2E_KIND=1 after `make kind-up`"
)
def test_the_loop_closes_on_kind(tmp_path: Path) -> None:
    if not _cluster_answers():
        pytest.skip("no cluster with the onnxops CRDs in the current kube context (run `make kind-up`)")
    demo = run_demo(tmp_path, "--cluster")
    assert demo.returncode == 0, demo.output[-4000:]
    st = demo.isvc
    assert (st["rollback"]["from"], st["rollback"]["to"], st["rollback"]["reason"]) == (2, 1, "DriftDetected")
    assert st["retrain"]["reason"] == "AllVersionsDrifted"
    assert st["stableVersion"] == 3 and demo.mv("iris-v3")["status"]["phase"] == "Ready"
