"""The server processes the serving benchmarks start (bench_serving, bench_grpc, bench_capture, bench_mirror).

:class:`Server` starts a command on 127.0.0.1 in its own session, waits until its readiness URL answers 200
(else raises with the tail of its log) and stops it (SIGTERM to the process group, then SIGKILL).
:func:`start_onnxops` runs the onnxops server (``python -m onnxops.serving``) on a bench model bundle
(``{"onnx": Path, "profile": Path}``, as bench_serving's ``build_models`` writes them) with the environment
the benchmarks share; each adds its own settings (capture, mirror, gRPC port, drift metrics).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

READY = "/v2/health/ready"
INFER = "/v2/models/m/infer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready in {timeout}s")


class Server:
    def __init__(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        port: int,
        ready: str,
        infer: str,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.port, self.infer_path = name, port, infer
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.p = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=self.log, stderr=self.log, start_new_session=True
        )
        try:
            wait_http(f"http://127.0.0.1:{port}{ready}")
        except RuntimeError:
            self.log.seek(0)
            tail = self.log.read()[-2000:].decode(errors="replace")
            self.stop()
            raise RuntimeError(f"{name} did not start: {tail}") from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.infer_path}"

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        self.log.close()


def serving_env(
    m: dict, port: int, grpc_port: int = 0, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The onnxops server's environment for model ``m`` (name ``m``) on 127.0.0.1:``port``; gRPC on
    ``grpc_port`` (0: HTTP only, 8081 may be taken); ``extra`` added last."""
    env = dict(
        os.environ,
        ONNXOPS_MODEL_NAME="m",
        ONNXOPS_MODEL_URI=m["onnx"].as_uri(),
        ONNXOPS_MODEL_SHA256=hashlib.sha256(m["onnx"].read_bytes()).hexdigest(),
        ONNXOPS_PROFILE_URI=m["profile"].as_uri(),
        ONNXOPS_PROFILE_SHA256=hashlib.sha256(m["profile"].read_bytes()).hexdigest(),
        ONNXOPS_HOST="127.0.0.1",
        ONNXOPS_PORT=str(port),
        ONNXOPS_GRPC_PORT=str(grpc_port),
        ONNXOPS_LOG_LEVEL="WARNING",
    )
    env.update(extra or {})
    return env


def start_onnxops(
    m: dict,
    name: str,
    *,
    grpc_port: int = 0,
    extra: Mapping[str, str] | None = None,
    cmd: Sequence[str] | None = None,
) -> Server:
    """The onnxops server (``cmd``, default ``python -m onnxops.serving``) on a free port, once ready."""
    port = free_port()
    argv = list(cmd) if cmd is not None else [sys.executable, "-m", "onnxops.serving"]
    return Server(name, argv, serving_env(m, port, grpc_port, extra), port, READY, INFER)


def write_section(path: Path, begin: str, end: str, section: str) -> None:
    """Replace the part of ``path`` between the ``begin`` and ``end`` markers (inclusive) with ``section``
    (which carries the markers), or append it when the file has none; the rest stays as written."""
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        new = old.split(begin, 1)[0] + section + old.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(new)
