"""What the operator's code needs from a Kubernetes client, as a ``typing.Protocol``.

``kube/client.KubeClient`` implements it; the handlers' ``Context.client``, ``kube/apply.ensure``,
``kube/events.post`` and the controller helpers are annotated with it, so a test's in-memory fake (which
implements these verbs, e.g. by subclassing a stub that fails on any verb it does not expect) type-checks as
a client without ``type: ignore``. The informer (``kube/informer.py``) streams WATCH responses and keeps the
concrete client.
"""

from __future__ import annotations

from typing import Any, Protocol


class KubeApi(Protocol):
    """The verbs on custom resources and children: 404 on ``get`` is None, 404 on ``delete`` is False, any
    other non-2xx answer raises ``kube.client.ApiError``."""

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None: ...

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: dict[str, str] | str | None = None,
    ) -> list[dict[str, Any]]: ...

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]: ...

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def patch_status(
        self, api_version: str, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
    ) -> bool: ...

    async def close(self) -> None: ...
