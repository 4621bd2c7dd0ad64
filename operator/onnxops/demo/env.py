"""Where the demo runs: the local runtime (API emulator + pod runner) with the real operator as a
subprocess and, when installed, a real Prometheus — or an existing cluster (``--cluster``, see cluster.py).

Both give the scenario the same things: a KubeClient, the base URL of the InferenceService's Service
(reachable from this machine) and the processes/ports to account for at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

from onnxops.builders import labels
from onnxops.demo.data import write_datasets
from onnxops.kube.client import KubeClient
from onnxops.local.prometheus import LocalPrometheus, prometheus_binary
from onnxops.local.runtime import LocalRuntime
from onnxops.settings import Settings

ARTIFACTS_CLAIM = "onnxops-artifacts"
DATASETS_DIR = "datasets"  # pvc://onnxops-artifacts/datasets/<file>
# examples/demo/inferenceservice-iris.yaml: the serving pods capture under TRAFFIC_URI and write the ground
# truth the traffic generator sends to their feedback endpoint under LABELS_URI (<sink>/_labels/)
TRAFFIC_URI = f"pvc://{ARTIFACTS_CLAIM}/traffic/iris/"
LABELS_URI = f"{TRAFFIC_URI}_labels/"
OPERATOR_GRACE_S = 15.0


class Env(Protocol):
    client: KubeClient
    namespace: str
    prometheus_url: str
    kubeconfig: Path | None

    async def start(self) -> None: ...
    async def service_url(self, name: str) -> str: ...
    async def stop(self) -> None: ...
    def accounting(self) -> dict[str, Any]: ...
    def problem(self) -> str | None: ...


def operator_env(
    kubeconfig: Path, prometheus_url: str, pvc_root: Path, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The operator subprocess' environment: the runtime's kubeconfig and the ONNXOPS_* settings; the PVCs
    are where the runtime keeps them (the operator reads the versions' baseline profiles from there)."""
    d = Settings()
    env = dict(os.environ if base is None else base)
    env.update(
        KUBECONFIG=str(kubeconfig),
        ONNXOPS_TRAINER_IMAGE=d.trainer_image,
        ONNXOPS_SERVING_IMAGE=d.serving_image,
        ONNXOPS_DEFAULT_STORAGE_URI=d.default_storage_uri,
        ONNXOPS_PROMETHEUS_URL=prometheus_url,
        ONNXOPS_PVC_ROOT=str(pvc_root),
        PYTHONUNBUFFERED="1",
    )
    return env


def scrape_targets(pods: list[dict[str, Any]], port: int) -> list[tuple[str, dict[str, str]]]:
    """file_sd targets for Prometheus: every running serving pod's ``podIP:port``, labelled with its
    namespace and pod, as Prometheus' Kubernetes discovery would (``model``/``version``/``inferenceservice``
    come from the server's own series)."""
    out = []
    for p in pods:
        md, st = p.get("metadata") or {}, p.get("status") or {}
        ip = st.get("podIP")
        if not ip or st.get("phase") != "Running" or md.get("deletionTimestamp"):
            continue
        lab = {
            "namespace": md.get("namespace", "default"),
            "pod": md.get("name", ""),
        }
        out.append((f"{ip}:{port}", lab))
    return sorted(out, key=lambda t: t[0])


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().split(") ", 1)[1][:1] != "Z"  # a zombie is gone for good
    return True


class LocalEnv:
    def __init__(
        self, state_dir: Path | None, *, prometheus: bool = True, namespace: str = "default", log: Any = print
    ) -> None:
        self.runtime = LocalRuntime(state_dir, backoff=(0.2, 2.0), namespace=namespace)
        self.namespace = namespace
        self.want_prometheus = prometheus and prometheus_binary() is not None
        self.prom: LocalPrometheus | None = None
        self.prometheus_url = ""
        self.operator: subprocess.Popen[bytes] | None = None
        self.kubeconfig: Path | None = None
        self.client: KubeClient = KubeClient("http://127.0.0.1:1")  # replaced in start()
        self.log = log
        self.pids: dict[str, set[int]] = {"operator": set(), "prometheus": set(), "pods": set()}
        self.ports: list[int] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._prom_start: asyncio.Future[str] | None = None
        self.operator_args: list[str] = []  # extra `onnxops operator` arguments (e.g. --verbose)

    @property
    def state_dir(self) -> Path:
        return self.runtime.state_dir

    async def start(self) -> None:
        rt = self.runtime
        await rt.start()
        self.kubeconfig = rt.kubeconfig
        self.client = KubeClient(rt.url)
        self.ports.append(int(rt.url.rsplit(":", 1)[1]))
        self.log(f"local runtime: API {rt.url}, state {rt.state_dir}")
        written = write_datasets(rt.state_dir / "pvc" / ARTIFACTS_CLAIM / DATASETS_DIR)
        self.log(
            "data sets on the artifacts volume: "
            + ", ".join(f"pvc://{ARTIFACTS_CLAIM}/{DATASETS_DIR}/{n}" for n in written)
        )
        if self.want_prometheus:
            self.prom = LocalPrometheus(rt.state_dir / "prometheus", scrape_interval="1s")
            # shielded: a Ctrl-C meanwhile lets the start finish, so that stop() can stop what it started
            self._prom_start = asyncio.ensure_future(asyncio.to_thread(self.prom.start))
            self.prometheus_url = await asyncio.shield(self._prom_start)
            self.ports.append(self.prom.port)
            if self.prom._proc is not None:
                self.pids["prometheus"].add(self.prom._proc.pid)
            self._tasks.append(asyncio.create_task(self._refresh_targets(), name="demo-prom-targets"))
            self.log(f"Prometheus {self.prometheus_url} (scrapes the serving pods every 1s)")
        else:
            self.log("Prometheus not installed: the operator scrapes the serving pods' /metrics directly")
        op = self.start_operator()
        self._tasks.append(asyncio.create_task(self._track_pods(), name="demo-pod-pids"))
        self.log(
            f"operator: `{Path(sys.executable).name} -m onnxops operator` (pid {op.pid}, "
            f"log {rt.state_dir / 'operator.log'})"
        )

    def start_operator(self) -> subprocess.Popen[bytes]:
        """Start the operator process (again: a crash test kills it and calls this); its log is appended to
        ``operator.log`` in the state dir."""
        rt = self.runtime
        out = open(rt.state_dir / "operator.log", "ab")  # noqa: SIM115 - owned by the process
        self.operator = subprocess.Popen(
            [sys.executable, "-m", "onnxops", "operator", *self.operator_args],
            env=operator_env(rt.kubeconfig, self.prometheus_url, rt.state_dir / "pvc"),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        self.pids["operator"].add(self.operator.pid)
        return self.operator

    async def _track_pods(self) -> None:
        reported: set[int] = set()
        while True:
            for pids in self.runtime.pids().values():
                self.pids["pods"].update(pids)
            op = self.operator
            if op is not None and op.poll() is not None and op.pid not in reported:
                reported.add(op.pid)  # said once per process; a restarted operator is tracked again
                self.log(f"operator exited with {op.returncode}; see {self.state_dir}/operator.log")
            await asyncio.sleep(0.5)

    async def _refresh_targets(self) -> None:
        assert self.prom is not None
        last: list[tuple[str, dict[str, str]]] | None = None
        port = Settings.from_env().serving_port
        while True:
            with contextlib.suppress(Exception):
                pods = await self.client.list(
                    "v1", "Pod", self.namespace, label_selector={labels.COMPONENT: "serving"}
                )
                targets = scrape_targets(pods, port)
                if targets != last:
                    self.prom.set_targets(targets)
                    last = targets
            await asyncio.sleep(1.0)

    async def service_url(self, name: str) -> str:
        return await self.runtime.service_proxy(self.namespace, name, "http")

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self.operator is not None:
            await asyncio.to_thread(stop_process, self.operator, OPERATOR_GRACE_S)
        if self.prom is not None:
            if self._prom_start is not None:
                with contextlib.suppress(Exception):
                    await self._prom_start
            await asyncio.to_thread(self.prom.stop)
        with contextlib.suppress(Exception):
            for pids in self.runtime.pids().values():
                self.pids["pods"].update(pids)
        await self.client.close()
        await self.runtime.stop()

    def accounting(self) -> dict[str, Any]:
        return {"pids": {k: sorted(v) for k, v in self.pids.items()}, "ports": sorted(self.ports)}

    def problem(self) -> str | None:
        """Why the demo cannot go on (the operator process died), else None."""
        if self.operator is not None and self.operator.poll() is not None:
            return f"the operator exited with {self.operator.returncode}; see {self.state_dir}/operator.log"
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """Write under a hidden temporary name, then rename (readers skip hidden names)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM (the operator stops its daemons cleanly), then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything the process left in its group
