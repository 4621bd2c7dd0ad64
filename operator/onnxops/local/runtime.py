"""`LocalRuntime`: the local Kubernetes — the API emulator plus the pod runner ("kubelet") and the
built-in controllers (Job, Deployment, Endpoints) — in one process.

    async with LocalRuntime(state_dir) as rt:      # or LocalRuntimeThread(state_dir) from sync code
        rt.url, rt.kubeconfig, rt.state_dir
        url = await rt.service_proxy("default", "my-svc", 80)

Every CRD in the project's `crds/` directory (when present) is registered at start. Pods' logs are kept
under `<state>/logs/` and served by `kubectl logs`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml

from onnxops.local.apiserver import ApiServer, write_kubeconfig
from onnxops.local.runner.client import ResourceClient
from onnxops.local.runner.containers import ContainerBackend
from onnxops.local.runner.deployments import DeploymentController
from onnxops.local.runner.endpoints import EndpointsController, ready_addresses
from onnxops.local.runner.images import LocalImage
from onnxops.local.runner.jobs import JobController
from onnxops.local.runner.pods import PodRunner
from onnxops.local.runner.podspec import ServiceAccountToken, log_path
from onnxops.local.runner.proxy import ServiceGateway, ServiceProxy

T = TypeVar("T")


log = logging.getLogger("onnxops.local")
STOP_TIMEOUT_S = 20.0


def project_crds_dir() -> Path | None:
    """`crds/` of the source checkout this package runs from (absent in an installed wheel)."""
    candidate = Path(__file__).resolve().parents[3] / "crds"
    return candidate if candidate.is_dir() else None


def load_crds(directory: Path) -> list[dict[str, Any]]:
    crds = []
    for path in sorted(directory.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    return crds


def _tail(text: str, lines: int | None) -> str:
    if lines is None:
        return text
    if lines <= 0:
        return ""
    parts = text.splitlines(keepends=True)
    return "".join(parts[-lines:])


class LocalRuntime:
    """API emulator + pod runner + Job/Deployment/Endpoints controllers on the current event loop.

    state_dir: pod logs, volumes and PVC data (`<state>/pvc/<claim>`); a temporary dir (removed at stop)
        when None. kubeconfig: where to write the kubeconfig (default `<state>/kubeconfig`).
    crds_dir: CRDs registered at start (default: the project's `crds/` when running from a checkout).
    extra_images: more images to accept, e.g. `{"test/python:1": ["python"]}` (image -> its ENTRYPOINT,
        or a `LocalImage`); only our own images run otherwise.
    backoff: (base, cap) seconds of CrashLoopBackOff and of the Job controller's pod-failure backoff
        (the real defaults are 10 s base; shorter here so local retries are quick).
    containers: run pods as containers of their images with this backend (None, the default: as local
        processes of this Python environment).

    The API server also listens on HTTPS (`api.https_url`, CA in `<state>/tls/ca.crt`); every pod gets its
    ServiceAccount's token projected (see podspec.ServiceAccountToken), and the API server authorises its
    requests with the RBAC objects stored in it.
    """

    def __init__(
        self,
        state_dir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig: str | Path | None = None,
        crds_dir: str | Path | None = None,
        extra_images: Mapping[str, LocalImage | tuple[str, ...] | list[str]] | None = None,
        python: str = sys.executable,
        backoff: tuple[float, float] = (1.0, 10.0),
        namespace: str = "default",
        containers: ContainerBackend | None = None,
    ) -> None:
        self._own_state = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="onnxops-local-")).resolve()
        self.kubeconfig = Path(kubeconfig) if kubeconfig else self.state_dir / "kubeconfig"
        self.crds_dir = Path(crds_dir) if crds_dir else project_crds_dir()
        self.extra_images = {
            k: v if isinstance(v, LocalImage) else LocalImage(tuple(v))
            for k, v in (extra_images or {}).items()
        }
        self.python, self.backoff, self.namespace = python, backoff, namespace
        self.api = ApiServer(host, port, log_provider=self.read_log, tls_dir=self.state_dir / "tls")
        self.containers = containers
        self._tokens: dict[tuple[str, str], str] = {}
        self._client: ResourceClient | None = None
        self.runner: PodRunner | None = None
        self.endpoints: EndpointsController | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._proxies: dict[tuple[str, str, int | str], ServiceProxy] = {}
        self._gateway: ServiceGateway | None = None
        self.url = ""

    # ---- logs (the API server's log_provider) -------------------------------------------------------------
    def read_log(self, namespace: str, pod: str, container: str | None, tail_lines: int | None) -> str | None:
        if container is None:
            return None
        path = Path(log_path(str(self.state_dir), namespace, pod, container))
        if not path.exists():
            return None
        return _tail(path.read_text(errors="replace"), tail_lines)

    @property
    def client(self) -> ResourceClient:
        """The admin client of the emulated API server (the runtime's controllers use it); once started."""
        if self._client is None:
            raise RuntimeError("the local runtime is not started")
        return self._client

    # ---- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> LocalRuntime:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.crds_dir is not None and self.crds_dir.is_dir():
            for crd in load_crds(self.crds_dir):
                self.api.register_crd(crd)
        self.url = await self.api.start()
        write_kubeconfig(self.kubeconfig, self.url, self.namespace)
        self._client = ResourceClient(self.url)
        self.runner = PodRunner(
            self.client,
            str(self.state_dir),
            python=self.python,
            extra_images=self.extra_images,
            backoff=self.backoff,
            service_accounts=self.service_account_token,
            containers=self.containers,
        )
        self.endpoints = EndpointsController(self.client)
        controllers = [
            self.runner,
            JobController(self.client, self.backoff),
            DeploymentController(self.client),
            self.endpoints,
        ]
        self._tasks = [asyncio.create_task(c.run(), name=c.name) for c in controllers]
        for c in controllers:
            for inf in c.informers:
                await asyncio.wait_for(inf.synced.wait(), 30)
        return self

    def service_account_token(self, namespace: str, name: str) -> ServiceAccountToken:
        """The token the kubelet projects into a pod of ServiceAccount `namespace/name` (one per account,
        minted on first use), with the CA and HTTPS address of the API server."""
        key = (namespace, name)
        if key not in self._tokens:
            self._tokens[key] = self.api.mint_service_account_token(namespace, name)
        assert self.api.ca_pem is not None and self.api.https_port is not None
        return ServiceAccountToken(
            self._tokens[key], self.api.ca_pem, namespace, self.api.host, self.api.https_port
        )

    async def stop(self) -> None:
        for proxy in self._proxies.values():
            await proxy.stop()
        self._proxies.clear()
        if self._gateway is not None:
            await self._gateway.stop()
            self._gateway = None
        if self.runner is not None:
            await self.runner.close()
        for t in self._tasks:
            t.cancel()
        if self._tasks:  # bounded: a controller stuck in a call must not hang the shutdown
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            for t in stuck:
                log.warning("local runtime: %s did not stop within %.0fs", t.get_name(), STOP_TIMEOUT_S)
        if self.runner is not None:
            await self.runner.close(grace=0)  # anything started while shutting down
        if self._client is not None:
            await self._client.close()
        await self.api.stop()
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    async def __aenter__(self) -> LocalRuntime:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- services ---------------------------------------------------------------------------------------
    def service_backends(self, namespace: str, name: str, port: int | str) -> list[str]:
        """`ip:port` of the Service's ready endpoints for its port `port` (number or name)."""
        assert self.endpoints is not None, "the runtime is not started"
        key = (namespace, name)
        return ready_addresses(
            self.endpoints.endpoints.cache.get(key), self.endpoints.services.cache.get(key), port
        )

    def service_url(self, namespace: str, name: str, port: int | str) -> str:
        """`http://<podIP>:<targetPort>` of one ready endpoint (ClusterIPs are not reachable locally)."""
        backends = self.service_backends(namespace, name, port)
        if not backends:
            raise LookupError(f"service {namespace}/{name} port {port}: no ready endpoints")
        return f"http://{backends[0]}"

    async def service_proxy(self, namespace: str, name: str, port: int | str) -> str:
        """Base URL of a local reverse proxy spreading requests over the Service's ready endpoints."""
        key = (namespace, name, port)
        if key not in self._proxies:
            proxy = ServiceProxy(lambda: self.service_backends(namespace, name, port), f"{namespace}/{name}")
            await proxy.start()
            self._proxies[key] = proxy
        return self._proxies[key].url

    async def service_gateway(self) -> str:
        """Base URL of one local reverse proxy for every Service: ``<url>/<namespace>/<service>/<port>/...``
        (a stand-in for cluster DNS: ``ONNXOPS_SHADOW_URL_TEMPLATE=<url>/{namespace}/{service}/{port}``)."""
        if self._gateway is None:
            self._gateway = ServiceGateway(self.service_backends)
            await self._gateway.start()
        return self._gateway.url

    def pids(self) -> dict[str, list[int]]:
        """`namespace/pod` -> live OS process ids of its containers."""
        return self.runner.pids() if self.runner is not None else {}

    async def disrupt_pod(self, namespace: str, name: str) -> bool:
        """Simulate a node drain / preemption of a running pod (DisruptionTarget condition, then killed)."""
        return self.runner is not None and await self.runner.disrupt(namespace, name)


class LocalRuntimeThread:
    """A `LocalRuntime` on its own event loop in a background thread, for synchronous code and tests."""

    def __init__(self, state_dir: str | Path | None = None, **kwargs: Any) -> None:
        self._args = (state_dir, kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="onnxops-local", daemon=True)
        self.runtime: LocalRuntime | None = None

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
        """Run a coroutine function on the runtime's loop and return its result."""

        async def run() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=timeout)

    def start(self) -> LocalRuntime:
        self._thread.start()

        async def boot() -> LocalRuntime:
            self.runtime = LocalRuntime(self._args[0], **self._args[1])
            return await self.runtime.start()

        return self.call(boot)

    def stop(self) -> None:
        if self.runtime is not None:
            self.call(self.runtime.stop, timeout=120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def rt(self) -> LocalRuntime:
        assert self.runtime is not None, "not started"
        return self.runtime

    @property
    def url(self) -> str:
        return self.rt.url

    @property
    def kubeconfig(self) -> Path:
        return self.rt.kubeconfig

    @property
    def state_dir(self) -> Path:
        return self.rt.state_dir

    def service_url(self, namespace: str, name: str, port: int | str) -> str:
        return self.call(lambda: _value(self.rt.service_url(namespace, name, port)))

    def service_proxy(self, namespace: str, name: str, port: int | str) -> str:
        return self.call(lambda: self.rt.service_proxy(namespace, name, port))

    def service_gateway(self) -> str:
        return self.call(lambda: self.rt.service_gateway())

    def pids(self) -> dict[str, list[int]]:
        return self.call(lambda: _value(self.rt.pids()))

    def disrupt_pod(self, namespace: str, name: str) -> bool:
        return self.call(lambda: self.rt.disrupt_pod(namespace, name))

    def __enter__(self) -> LocalRuntimeThread:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def _value(x: T) -> T:
    return x
