"""The API emulator's server: `ApiServer` (in-process, asyncio), `ApiServerThread` (for synchronous code)
and `write_kubeconfig`."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web

from .handlers import Handlers, make_app
from .objects import Cluster, LogProvider

Obj = dict[str, Any]


class ApiServer:
    """An in-memory Kubernetes API server on 127.0.0.1 (port 0 picks a free port).

    `log_provider(namespace, pod, container, tail_lines) -> text | None` answers
    `GET /api/v1/namespaces/<ns>/pods/<pod>/log` (None: the container has no log yet).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_provider: LogProvider | None = None,
        history_size: int = 10_000,
        bookmark_interval: float = 15.0,
        auto_create_namespaces: bool = False,
        crds: Iterable[Obj] = (),
        tls_dir: str | Path | None = None,
    ) -> None:
        self.host, self.port = host, port
        # with tls_dir: a second, HTTPS port (a CA made at start, its files written there) where clients
        # send bearer tokens (kubectl drops them on plain http) and in-cluster configuration points
        self.tls_dir = Path(tls_dir) if tls_dir is not None else None
        self.https_port: int | None = None
        self.ca_pem: bytes | None = None
        self._https_url: str | None = None
        self.cluster = Cluster(
            history_size=history_size,
            log_provider=log_provider,
            auto_create_namespaces=auto_create_namespaces,
        )
        self.bookmark_interval = bookmark_interval
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._url: str | None = None
        for crd in crds:
            self.register_crd(crd)

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the API server is not started")
        return self._url

    @property
    def https_url(self) -> str:
        if self._https_url is None:
            raise RuntimeError("the API server has no HTTPS port (start it with tls_dir)")
        return self._https_url

    def register_crd(self, crd: Obj) -> Obj:
        """Create (or replace) a CustomResourceDefinition, as `kubectl apply` of it would; returns it."""
        info = self.cluster.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert info is not None
        name = (crd.get("metadata") or {}).get("name", "")
        existing = self.cluster.store.get(info.group_resource, "", name)
        if existing is None:
            return self.cluster.create(info, None, crd)
        body = {
            **crd,
            "metadata": {
                **crd.get("metadata", {}),
                "resourceVersion": existing["metadata"]["resourceVersion"],
            },
        }
        return self.cluster.replace(info, None, name, body)

    def mint_service_account_token(self, namespace: str, name: str) -> str:
        """A bearer token that authenticates `system:serviceaccount:<namespace>:<name>`; its requests are
        then authorised by the stored RBAC objects (requests without a token are the admin's)."""
        return self.cluster.tokens.mint_service_account(namespace, name)

    async def start(self) -> str:
        self._stopping = asyncio.Event()
        handlers = Handlers(self.cluster, self._stopping, self.bookmark_interval)
        self._runner = web.AppRunner(
            make_app(handlers), handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = int(self._runner.addresses[0][1])
        self.port = port
        self._url = f"http://{self.host}:{port}"
        if self.tls_dir is not None:
            from .tls import make_serving_cert

            cert = make_serving_cert()
            self.ca_pem = cert.ca_pem
            (self.tls_dir / "ca.crt").parent.mkdir(parents=True, exist_ok=True)
            (self.tls_dir / "ca.crt").write_bytes(cert.ca_pem)
            secure = web.TCPSite(self._runner, self.host, 0, ssl_context=cert.server_context(self.tls_dir))
            await secure.start()
            self.https_port = int(self._runner.addresses[-1][1])
            self._https_url = f"https://{self.host}:{self.https_port}"
        return self._url

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        self.cluster.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class ApiServerThread:
    """Run an `ApiServer` on its own event loop in a background thread (a context manager)."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="onnxops-apiserver", daemon=True)
        self.server: ApiServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def call(self, fn: Any, *args: Any) -> Any:
        """Run a synchronous function on the server's loop (the cluster state is loop-confined)."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def register_crd(self, crd: Obj) -> Obj:
        assert self.server is not None
        return self.call(self.server.register_crd, crd)  # type: ignore[no-any-return]

    @property
    def https_url(self) -> str:
        assert self.server is not None
        return self.server.https_url

    @property
    def ca_pem(self) -> bytes | None:
        assert self.server is not None
        return self.server.ca_pem

    def mint_service_account_token(self, namespace: str, name: str) -> str:
        assert self.server is not None
        return self.call(self.server.mint_service_account_token, namespace, name)  # type: ignore[no-any-return]

    def start(self) -> str:
        self._thread.start()

        async def boot() -> str:
            self.server = ApiServer(**self._kwargs)
            return await self.server.start()

        try:
            return asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        if self.server is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> ApiServerThread:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def kubeconfig(
    url: str,
    namespace: str = "default",
    name: str = "onnxops-local",
    token: str | None = None,
    ca_pem: bytes | None = None,
) -> Obj:
    """A kubeconfig for the emulator: without `token` the admin's (no credentials: system:masters), with
    one the user that token authenticates (e.g. a ServiceAccount, authorised by RBAC). A token needs the
    HTTPS url and its CA (`ca_pem`): clients do not send tokens over plain http."""
    cluster: Obj = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token} if token else {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(
    path: str | Path,
    url: str,
    namespace: str = "default",
    token: str | None = None,
    ca_pem: bytes | None = None,
) -> Path:
    """Write a kubeconfig for the emulator (plain http; admin without `token`) that kubectl, kopf and the
    `kubernetes` client accept; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(kubeconfig(url, namespace, token=token, ca_pem=ca_pem), sort_keys=False))
    return target
