"""The drift package (numpy/scipy: ~70 MiB of the operator's memory, seconds to import), loaded the first time
a service needs it: a drift, performance or capture check, or a canary/shadow analysis reading request
metrics. An operator whose services monitor nothing never loads it.

The import runs once, in a worker thread: imported on the event loop it would stall every object's reconcile
for those seconds. Concurrent first callers share the one import; a failed import raises in every caller
(a missing module is an error, never a silent "no monitoring").
"""

from __future__ import annotations

import asyncio
import importlib
import weakref

DRIFT_MODULES = ("onnxops.drift.evaluate", "onnxops.drift.prometheus")
_loaded = False
_loading: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[None]] = (
    weakref.WeakKeyDictionary()
)


def preload_drift() -> None:
    global _loaded
    for name in DRIFT_MODULES:
        importlib.import_module(name)
    _loaded = True


async def drift_modules() -> None:
    """Return once the drift package is imported (imported here, off the loop, by the first caller)."""
    if _loaded:
        return
    loop = asyncio.get_running_loop()
    fut = _loading.get(loop)
    if fut is None:
        fut = _loading[loop] = asyncio.ensure_future(asyncio.to_thread(preload_drift))
    await asyncio.shield(fut)  # a cancelled caller leaves the import running for the others
