"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from onnxops.kube.client import KubeClient
from onnxops.local.apiserver import ApiServer
from onnxops.local.runtime import load_crds, project_crds_dir


@pytest.fixture()
async def client() -> AsyncIterator[KubeClient]:
    """The operator's API client against an API emulator that has the project's CRDs registered."""
    crds = project_crds_dir()
    assert crds is not None
    async with ApiServer(crds=load_crds(crds)) as api:
        c = KubeClient(api.url)
        try:
            yield c
        finally:
            await c.close()
