"""A small async Kubernetes REST client on aiohttp: the one client of the operator and the local runtime.

Built from a kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``: server, CA, token or client certificate,
insecure-skip-tls-verify), from the in-cluster service account (token, CA), or from a URL. TLS is verified
(the system CAs, or the given context) unless the caller says otherwise (``ssl_context=False``, which a
kubeconfig's ``insecure-skip-tls-verify`` sets). Counts its requests by verb so tests and benchmarks can
check that a converged object costs no writes. The local runtime's controllers use it through
``resources.ResourceClient`` (verbs by ``Resource``); both raise the same ``ApiError``.

Hand-written rather than the official ``kubernetes_asyncio`` client: a dozen verbs on plain dicts, the
request counters, and no generated model classes to convert from and to.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
import yaml

from onnxops import API_VERSION

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

# (apiVersion, kind) -> plural; a kind not listed here is refused with a clear error.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "Pod"): "pods",
    ("v1", "Service"): "services",
    ("v1", "Event"): "events",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",  # only a notification sink's URL, by name (controller/notify.py)
    ("batch/v1", "Job"): "jobs",
    ("apps/v1", "Deployment"): "deployments",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
    (API_VERSION, "TrainingJob"): "trainingjobs",
    (API_VERSION, "ModelVersion"): "modelversions",
    (API_VERSION, "Model"): "models",
    (API_VERSION, "InferenceService"): "inferenceservices",
}
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
# The field manager of every write: the API server records the fields the operator set under this name
# (metadata.managedFields), which is how it tells them from other managers' edits (see kube/apply.py).
FIELD_MANAGER = "onnxops"
_MANAGED = {"fieldManager": FIELD_MANAGER}


class ApiError(Exception):
    """A non-2xx answer of the API server (or an ERROR event of a watch): HTTP status, the Status object's
    reason and message, and the decoded body (the Status object, else the text)."""

    def __init__(self, status: int, reason: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message, self.body = status, reason, message, body


class Gone(ApiError):
    """410: the watch's resourceVersion is too old; list again."""


def api_error(status: int, body: Any, fallback_reason: str = "") -> ApiError:
    """The error for a status code and a decoded body (a Status object or text); 410 is ``Gone``."""
    cls = Gone if status == 410 else ApiError
    if isinstance(body, dict):
        message = body.get("message")
        text = json.dumps(body)[:500] if message is None else str(message)
        return cls(status, str(body.get("reason") or fallback_reason), text, body)
    return cls(status, fallback_reason, str(body)[:500], body)


def _decoded(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def resource_path(
    api_version: str,
    kind: str,
    namespace: str | None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    try:
        plural = PLURALS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"unsupported resource {api_version} {kind}") from None
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = base + (f"/namespaces/{quote(namespace)}" if namespace else "") + f"/{plural}"
    if name:
        path += f"/{quote(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


def _data_file(data: str, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(data))
    return path


class KubeClient:
    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        ssl_context: ssl.SSLContext | bool | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.requests: Counter[str] = Counter()  # by HTTP verb

    # ---- construction ----------------------------------------------------------------------------------
    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> KubeClient:
        p = path or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube/config")
        cfg = yaml.safe_load(Path(p).read_text()) or {}
        ctx_name = context or cfg.get("current-context")
        ctx = next((c["context"] for c in cfg.get("contexts") or [] if c["name"] == ctx_name), None)
        if ctx is None:
            raise ValueError(f"kubeconfig {p}: context {ctx_name!r} not found")
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user: dict[str, Any] = (
            next((u["user"] for u in cfg.get("users") or [] if u["name"] == ctx.get("user")), {}) or {}
        )
        server = cluster["server"]
        ssl_ctx: ssl.SSLContext | bool | None = None
        if server.startswith("https://"):
            if cluster.get("insecure-skip-tls-verify"):
                ssl_ctx = False
            else:
                ca = cluster.get("certificate-authority") or (
                    _data_file(cluster["certificate-authority-data"], ".crt")
                    if cluster.get("certificate-authority-data")
                    else None
                )
                ssl_ctx = ssl.create_default_context(cafile=ca)
            cert = user.get("client-certificate") or (
                _data_file(user["client-certificate-data"], ".crt")
                if user.get("client-certificate-data")
                else None
            )
            key = user.get("client-key") or (
                _data_file(user["client-key-data"], ".key") if user.get("client-key-data") else None
            )
            if cert and key and isinstance(ssl_ctx, ssl.SSLContext):
                ssl_ctx.load_cert_chain(cert, key)
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = Path(user["tokenFile"]).read_text().strip()
        return cls(server, token=token, ssl_context=ssl_ctx)

    @classmethod
    def in_cluster(cls) -> KubeClient:
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        token = (SA_DIR / "token").read_text().strip()
        ctx = ssl.create_default_context(cafile=str(SA_DIR / "ca.crt"))
        return cls(f"https://{host}:{port}", token=token, ssl_context=ctx)

    @classmethod
    def auto(cls) -> KubeClient:
        """In-cluster when running in a pod, else the kubeconfig."""
        if os.environ.get("KUBERNETES_SERVICE_HOST") and (SA_DIR / "token").exists():
            return cls.in_cluster()
        return cls.from_kubeconfig()

    # ---- plumbing ---------------------------------------------------------------------------------------
    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json"}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            self._session = aiohttp.ClientSession(headers=headers, timeout=self._timeout)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        self.requests[method] += 1
        url = self.server + path + (f"?{urlencode(params)}" if params else "")
        # orjson: several times faster than json at the sizes a LIST answers (the operator's main CPU cost)
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self._sess().request(method, url, data=data, headers=headers, ssl=self._ssl_arg) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise api_error(resp.status, _decoded(raw.decode("utf-8", "replace")), resp.reason or "")
            return orjson.loads(raw) if raw else {}

    @property
    def _ssl_arg(self) -> ssl.SSLContext | bool:
        """aiohttp's ``ssl``: the given context, False only when told to skip verification, else True."""
        return self._ssl if self._ssl is not None else True

    @property
    def writes(self) -> int:
        return sum(self.requests[v] for v in WRITE_VERBS)

    # ---- verbs ------------------------------------------------------------------------------------------
    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist (404)."""
        try:
            return await self.request("GET", resource_path(api_version, kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: dict[str, str] | str | None = None,
    ) -> list[dict[str, Any]]:
        params = {}
        if label_selector:
            sel = (
                label_selector
                if isinstance(label_selector, str)
                else ",".join(f"{k}={v}" for k, v in sorted(label_selector.items()))
            )
            params["labelSelector"] = sel
        data = await self.request("GET", resource_path(api_version, kind, namespace), params=params)
        items = data.get("items") or []
        for it in items:  # list items carry no apiVersion/kind
            it.setdefault("apiVersion", api_version)
            it.setdefault("kind", kind)
        return list(items)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        md = obj.get("metadata") or {}
        return await self.request(
            "POST",
            resource_path(obj["apiVersion"], obj["kind"], md.get("namespace")),
            body=obj,
            params=_MANAGED,
        )

    async def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        """Server-side apply of ``obj`` as the operator's field manager (``force``: take over fields that
        another manager set to another value)."""
        md = obj.get("metadata") or {}
        params = {**_MANAGED, "force": "true"} if force else _MANAGED
        return await self.request(
            "PATCH",
            resource_path(obj["apiVersion"], obj["kind"], md.get("namespace"), md["name"]),
            body=obj,
            content_type="application/apply-patch+yaml",
            params=params,
        )

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            resource_path(api_version, kind, namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
            params=_MANAGED,
        )

    async def patch_status(
        self, api_version: str, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            resource_path(api_version, kind, namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
            params=_MANAGED,
        )

    async def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
    ) -> bool:
        """True when deleted, False when it did not exist."""
        try:
            await self.request(
                "DELETE",
                resource_path(api_version, kind, namespace, name),
                body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
            )
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
        label_selector: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events ({type, object}) until the server ends the stream."""
        async for event in self.watch_path(
            resource_path(api_version, kind, namespace),
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            label_selector=label_selector,
        ):
            yield event

    async def watch_path(
        self,
        path: str,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
        label_selector: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events ({type, object}) of a collection path until the server ends the stream; lines are
        not length-limited (large objects)."""
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds), "allowWatchBookmarks": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        self.requests["WATCH"] += 1
        url = self.server + path + "?" + urlencode(params)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30)
        async with self._sess().get(url, ssl=self._ssl_arg, timeout=timeout) as resp:
            if resp.status >= 400:
                raise api_error(resp.status, _decoded(await resp.text()), resp.reason or "")
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    if raw.strip():
                        yield orjson.loads(raw)
            if buf.strip():  # the last event without its newline
                yield orjson.loads(buf)
