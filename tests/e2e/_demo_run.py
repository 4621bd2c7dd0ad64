"""Running `onnxops demo` as a user would (a subprocess), with a hard timeout, and reading its JSON summary:
the objects' status as the demo read it from the API while it ran and at the end, and the processes and
ports it started."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnxops.demo.env import process_alive

HARD_TIMEOUT_S = 480  # the demo takes ~2 minutes on 2 cores; this only bounds a hang


@dataclass
class DemoRun:
    returncode: int
    output: str
    summary: dict[str, Any]
    state_dir: Path | None = None  # the runtime's state (kept: --state-dir)

    @property
    def isvc(self) -> dict[str, Any]:
        [isvc] = self.summary["objects"]["inferenceServices"]
        return dict(isvc["status"])

    def mv(self, name: str) -> dict[str, Any]:
        return next(m for m in self.summary["objects"]["modelVersions"] if m["name"] == name)

    def tj(self, name: str) -> dict[str, Any]:
        return next(t for t in self.summary["objects"]["trainingJobs"] if t["name"] == name)


def run_demo(tmp: Path, *args: str, env: dict[str, str] | None = None) -> DemoRun:
    """`env`: variables added to this process's environment for the demo (e.g. KUBECONFIG)."""
    out = tmp / "summary.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "onnxops",
            "demo",
            "--json-summary",
            str(out),
            "--state-dir",
            str(tmp / "state"),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        output, _ = proc.communicate(timeout=HARD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # the demo's own clean shutdown first
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        raise AssertionError(f"the demo did not finish in {HARD_TIMEOUT_S}s:\n{output[-6000:]}") from None
    assert out.exists(), f"no JSON summary (exit {proc.returncode}):\n{output[-6000:]}"
    return DemoRun(proc.returncode, output, json.loads(out.read_text()), tmp / "state")


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def leftovers(summary: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Processes the demo started that are still alive, and its ports still accepting connections."""
    procs = summary["processes"]
    pids = sorted({p for group in procs["pids"].values() for p in group if process_alive(p)})
    ports = [p for p in procs["ports"] if port_open(p)]
    return pids, ports
