"""The operator's start-up: what it prepares before the first reconcile (a restart must be quick)."""

from __future__ import annotations

import threading
from typing import Any

import kopf
import pytest

from onnxops.controller import handlers


async def test_startup_imports_the_drift_package_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy/scipy take seconds to import; at the first canary analysis or drift evaluation after a restart
    they would stall every reconcile on the loop. The start-up imports them in a worker thread."""
    threads: list[threading.Thread] = []
    monkeypatch.setattr(handlers, "preload_drift", lambda: threads.append(threading.current_thread()))

    class Client:
        async def close(self) -> None: ...

    monkeypatch.setattr(handlers.KubeClient, "auto", classmethod(lambda cls: Client()))
    memo: Any = kopf.Memo()
    await handlers.startup(settings=kopf.OperatorSettings(), memo=memo)
    await memo.preload
    assert len(threads) == 1 and threads[0] is not threading.main_thread()


def test_preload_imports_the_drift_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from onnxops.controller import handlers; "
        "assert 'scipy.stats' not in sys.modules, 'already imported'; handlers.preload_drift(); "
        "print(all(m in sys.modules for m in handlers.PRELOAD_MODULES), 'scipy.stats' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
