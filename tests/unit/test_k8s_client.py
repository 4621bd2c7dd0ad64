"""The one Kubernetes REST client (onnxops/k8s): TLS is verified unless the caller says otherwise, for the
operator's client and the local controllers' alike, and both raise the same ApiError from a Status."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from onnxops.kube import client as kube_client
from onnxops.local.apiserver.tls import make_serving_cert
from onnxops.local.runner import client as local_client
from onnxops.local.runner.client import PODS, ResourceClient


async def _handler(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name == "taken":
        return web.json_response(
            {
                "kind": "Status",
                "code": 409,
                "reason": "AlreadyExists",
                "message": 'pods "taken" already exists',
            },
            status=409,
        )
    if name == "expired":
        return web.json_response(
            {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"},
            status=410,
        )
    return web.json_response({"kind": "Pod", "metadata": {"name": name, "namespace": "ns"}})


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """(base URL, CA file) of an HTTPS server whose certificate a throw-away CA signed."""
    cert = make_serving_cert()
    ca = tmp_path / "ca.crt"
    ca.write_bytes(cert.ca_pem)
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/pods/{name}", _handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=cert.server_context(tmp_path / "tls"))
    try:
        yield str(server.make_url("")).rstrip("/"), str(ca)
    finally:
        await server.close()


async def test_both_clients_refuse_an_unknown_certificate_by_default(https_server: tuple[str, str]) -> None:
    url, _ = https_server
    assert url.startswith("https://")
    local = ResourceClient(url)
    operator = kube_client.KubeClient(url)
    try:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await local.get(PODS, "ns", "p")
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await operator.get("v1", "Pod", "ns", "p")
    finally:
        await local.close()
        await operator.close()


async def test_a_ca_verifies_and_skipping_verification_is_explicit(https_server: tuple[str, str]) -> None:
    url, ca = https_server
    verified = ResourceClient(url, ssl_context=ssl.create_default_context(cafile=ca))
    unverified = ResourceClient(url, ssl_context=False)
    operator = kube_client.KubeClient(url, ssl_context=ssl.create_default_context(cafile=ca))
    try:
        for c in (verified, unverified):
            got = await c.get(PODS, "ns", "p")
            assert got is not None and got["metadata"]["name"] == "p"
        got = await operator.get("v1", "Pod", "ns", "p")
        assert got is not None and got["metadata"]["name"] == "p"
    finally:
        for c in (verified, unverified):
            await c.close()
        await operator.close()


async def test_one_api_error_with_the_status_reason_and_message(https_server: tuple[str, str]) -> None:
    assert local_client.ApiError is kube_client.ApiError and local_client.Gone is kube_client.Gone
    url, ca = https_server
    local = ResourceClient(url, ssl_context=ssl.create_default_context(cafile=ca))
    operator = kube_client.KubeClient(url, ssl_context=ssl.create_default_context(cafile=ca))
    try:
        with pytest.raises(kube_client.ApiError) as conflict:
            await local.get(PODS, "ns", "taken")
        with pytest.raises(kube_client.ApiError) as conflict_op:
            await operator.get("v1", "Pod", "ns", "taken")
        for e in (conflict.value, conflict_op.value):
            assert (e.status, e.reason, e.message) == (409, "AlreadyExists", 'pods "taken" already exists')
            assert not isinstance(e, kube_client.Gone)
        with pytest.raises(kube_client.Gone) as gone:
            await operator.get("v1", "Pod", "ns", "expired")
        assert (gone.value.status, gone.value.reason) == (410, "Expired")
    finally:
        await local.close()
        await operator.close()
