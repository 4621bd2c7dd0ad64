"""Harness for the operator integration tests: the local runtime (API emulator + pod runner) in a thread,
the real operator under kopf.testing.KopfRunner, and a synchronous view of the API for assertions."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kopf.testing import KopfRunner

from onnxops.controller import handlers
from onnxops.controller.context import Context
from onnxops.kube.client import KubeClient
from onnxops.local.runtime import LocalRuntimeThread

API = "onnxops.dev/v1alpha1"
OPERATOR_ARGS = ["run", "--standalone", "--all-namespaces", "-m", "onnxops.controller.handlers"]


class Cluster:
    """Synchronous calls to the emulator through the operator's own client (on the runtime's loop)."""

    def __init__(self, rt: LocalRuntimeThread) -> None:
        self.rt = rt
        assert rt.runtime is not None
        self.runtime = rt.runtime
        self.kubeconfig = str(rt.runtime.kubeconfig)
        self.client = KubeClient(rt.runtime.url)

    def call(self, fn: Callable[[], Any], timeout: float = 30) -> Any:
        return self.rt.call(fn, timeout=timeout)

    def get(self, kind: str, name: str, ns: str = "default", api: str = API) -> dict[str, Any] | None:
        return self.call(lambda: self.client.get(api, kind, ns, name))

    def list(self, kind: str, ns: str = "default", api: str = API, **kw: Any) -> list[dict[str, Any]]:
        return self.call(lambda: self.client.list(api, kind, ns, **kw))

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("metadata", {}).setdefault("namespace", "default")
        return self.call(lambda: self.client.create(obj))

    def patch(self, kind: str, name: str, patch: dict[str, Any], ns: str = "default", api: str = API) -> Any:
        return self.call(lambda: self.client.merge_patch(api, kind, ns, name, patch))

    def patch_status(
        self, kind: str, name: str, status: dict[str, Any], ns: str = "default", api: str = API
    ) -> Any:
        return self.call(lambda: self.client.patch_status(api, kind, ns, name, status))

    def delete(self, kind: str, name: str, ns: str = "default", api: str = API) -> bool:
        return bool(self.call(lambda: self.client.delete(api, kind, ns, name)))

    def wait(self, what: str, fn: Callable[[], Any], timeout: float = 60, interval: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")

    def wait_status(
        self,
        kind: str,
        name: str,
        pred: Callable[[dict[str, Any]], bool],
        timeout: float = 60,
        ns: str = "default",
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get(kind, name, ns)
            return obj if obj is not None and pred(obj.get("status") or {}) else None

        try:
            return self.wait(f"{kind} {name}", check, timeout)  # type: ignore[no-any-return]
        except AssertionError:
            obj = self.get(kind, name, ns)
            raise AssertionError(f"{kind} {name} status never matched: {(obj or {}).get('status')}") from None

    def events(self, name: str, ns: str = "default") -> list[dict[str, Any]]:
        evs = self.list("Event", ns, api="v1")
        return [e for e in evs if e.get("involvedObject", {}).get("name") == name]


@contextlib.contextmanager
def local_cluster(state_dir: Path) -> Iterator[Cluster]:
    rt = LocalRuntimeThread(state_dir, backoff=(0.2, 1.0))
    rt.start()
    c = Cluster(rt)
    try:
        yield c
    finally:
        with contextlib.suppress(Exception):
            c.call(c.client.close)
        rt.stop()


_STARTED: list[Context] = []  # the Context of the operator that operator() runs (handlers.on_startup)


def operator_context() -> Context:
    """The running operator's Context (its client's request counters, its indexes)."""
    assert _STARTED, "the operator has not started"
    return _STARTED[-1]


@contextlib.contextmanager
def operator(cluster: Cluster, env: dict[str, str] | None = None) -> Iterator[KopfRunner]:
    """The real operator (kopf) against the cluster; stops it on exit and checks it exited cleanly."""
    saved = {k: os.environ.get(k) for k in ("KUBECONFIG", *(env or {}))}
    os.environ["KUBECONFIG"] = cluster.kubeconfig
    os.environ.update(env or {})
    _STARTED.clear()
    unhook = handlers.on_startup(_STARTED.append)
    try:
        with KopfRunner(OPERATOR_ARGS, timeout=60) as runner:
            yield runner
        assert runner.exception is None or isinstance(runner.exception, SystemExit), runner.output[-3000:]
    finally:
        unhook()
        _STARTED.clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
