"""Shared by the local-runtime integration tests: polling with a deadline, and a runtime that must leave no
process behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from onnxops.local.runtime import LocalRuntime


async def wait_for(fn: Callable[[], Awaitable[Any]], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``fn`` until it returns something truthy; fail with the last value after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline, last = loop.time() + timeout, None
    while loop.time() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


@asynccontextmanager
async def running_runtime(tmp_path: Path, **kwargs: Any) -> AsyncIterator[LocalRuntime]:
    """A started LocalRuntime (fast restart backoff); after it stops, no pod process may be left."""
    runtime = LocalRuntime(tmp_path / "state", backoff=(0.2, 1.0), **kwargs)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()
    assert not any(runtime.pids().values()), "processes left behind"
