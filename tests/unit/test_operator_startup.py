"""The operator's start-up and memory: what it loads before the first reconcile and what it leaves out until a
service needs it (a restart must be quick; an operator whose services monitor nothing stays small)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any

import kopf
import pytest

from onnxops.controller import handlers, lazy, main


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


@pytest.fixture
def fresh_lazy(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """lazy.drift_modules as in a new process, with the import replaced by a recorder of its thread."""
    threads: list[threading.Thread] = []

    def preload() -> None:
        threads.append(threading.current_thread())
        lazy._loaded = True

    monkeypatch.setattr(lazy, "_loaded", False)
    monkeypatch.setattr(lazy, "_loading", type(lazy._loading)())
    monkeypatch.setattr(lazy, "preload_drift", preload)
    return threads


async def test_startup_does_not_load_the_drift_package(
    monkeypatch: pytest.MonkeyPatch, fresh_lazy: list[threading.Thread]
) -> None:
    class Client:
        async def close(self) -> None: ...

    monkeypatch.setattr(handlers.KubeClient, "auto", classmethod(lambda cls: Client()))
    monkeypatch.setattr(handlers.Indexes, "start", lambda self: None)
    memo: Any = kopf.Memo()
    await handlers.startup(settings=kopf.OperatorSettings(), memo=memo)
    await asyncio.sleep(0.05)
    assert fresh_lazy == [] and not lazy._loaded


async def test_drift_modules_import_once_off_the_event_loop(fresh_lazy: list[threading.Thread]) -> None:
    """numpy/scipy take seconds to import: imported on the loop they would stall every reconcile. The first
    callers share one import in a worker thread; later callers return at once."""
    await asyncio.gather(*(lazy.drift_modules() for _ in range(5)))
    await lazy.drift_modules()
    assert len(fresh_lazy) == 1 and fresh_lazy[0] is not threading.main_thread()


async def test_a_failed_import_raises_in_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ImportError("No module named 'scipy'")

    monkeypatch.setattr(lazy, "_loaded", False)
    monkeypatch.setattr(lazy, "_loading", type(lazy._loading)())
    monkeypatch.setattr(lazy, "preload_drift", broken)
    results = await asyncio.gather(lazy.drift_modules(), lazy.drift_modules(), return_exceptions=True)
    assert [type(r) for r in results] == [ImportError, ImportError]
    with pytest.raises(ImportError, match="scipy"):
        await lazy.drift_modules()


async def test_checks_load_the_drift_package_only_for_a_monitored_service(
    monkeypatch: pytest.MonkeyPatch, fresh_lazy: list[threading.Thread]
) -> None:
    from onnxops.controller.context import ISVC, Context

    async def none(ctx: Any, ns: str, name: str) -> None:
        return None

    monkeypatch.setattr(handlers.drift_loop, "evaluate_if_due", none)
    monkeypatch.setattr(handlers.capture_loop, "check_capture_if_due", none)
    ctx = Context(client=None, settings=None)  # type: ignore[arg-type]
    plain = {"metadata": {"name": "s"}, "spec": {"model": "m"}, "status": {}}
    ctx.last_read[(ISVC, "ns", "s")] = plain
    await handlers.isvc_checks(ctx, "ns", "s")
    assert fresh_lazy == []
    monitored = {**plain, "spec": {"model": "m", "monitoring": {"drift": {"enabled": True}}}}
    assert not handlers.monitors_off(monitored)
    ctx.last_read[(ISVC, "ns", "s")] = monitored
    await handlers.isvc_checks(ctx, "ns", "s")
    assert len(fresh_lazy) == 1


def test_the_handlers_do_not_import_numpy_and_preload_imports_the_drift_modules() -> None:
    code = (
        "import sys; from onnxops.controller import handlers, lazy; "
        "print('numpy' in sys.modules, 'scipy.stats' in sys.modules); lazy.preload_drift(); "
        "print(all(m in sys.modules for m in lazy.DRIFT_MODULES), 'scipy.stats' in sys.modules)"
    )
    assert _run(code) == ["False", "False", "True", "True"]


def test_kopf_does_not_import_the_optional_clients_in_the_operator_process() -> None:
    """kopf imports the `kubernetes` client when installed (~40 MiB); `onnxops operator` hides it (and the
    other clients kopf knows) before importing kopf, and kopf and the handlers still load."""
    code = (
        "import sys; from onnxops.controller import main; main.hide_optional_clients(); "
        "import kopf; from onnxops.controller import handlers; "
        "print([m for m in sys.modules if m.split('.')[0] in main.KOPF_OPTIONAL_CLIENTS "
        "and sys.modules[m] is not None])"
    )
    assert _run(code) == ["[]"]


def test_hide_optional_clients_keeps_a_module_already_imported() -> None:
    mods: dict[str, object] = {"kubernetes": sys}
    main.hide_optional_clients(mods)
    assert mods == {"kubernetes": sys, "kubernetes_asyncio": None, "pykube": None}


# ---- a sleeping object's daemon: one future and one timer, no tasks --------------------------------------
class _Flag:
    """kopf's stop flag as a daemon sees it: false until raised."""

    def __init__(self) -> None:
        self.up = False

    def __bool__(self) -> bool:
        return self.up


async def _daemon(ctx: Any, calls: list[float], stopped: _Flag) -> asyncio.Task[None]:
    async def step(ctx: Any, ns: str, name: str) -> float | None:
        calls.append(asyncio.get_running_loop().time())
        return None  # asleep until woken (or the 5-minute safety re-check)

    task = asyncio.create_task(handlers.run_loop("Model", step, ctx, "ns", "m", stopped))  # type: ignore[arg-type]
    for _ in range(100):
        if calls:
            break
        await asyncio.sleep(0.01)
    return task


async def test_a_sleeping_daemon_wakes_at_once_and_exits_when_its_stop_flag_is_raised() -> None:
    from onnxops.controller.context import Context

    ctx = Context(client=None, settings=None)  # type: ignore[arg-type]
    calls: list[float] = []
    stopped = _Flag()
    task = await _daemon(ctx, calls, stopped)
    assert len(calls) == 1 and len(ctx.stops) == 1
    ctx.wake("Model", "ns", "m")
    await asyncio.sleep(0.05)
    assert len(calls) == 2  # woken: reconciled again without waiting for its re-check time
    stopped.up = True
    await asyncio.wait_for(task, timeout=ctx.stops.interval * 4)  # noticed by the next sweep
    assert len(calls) == 2 and ("Model", "ns", "m") not in ctx.wakers and len(ctx.stops) == 0


async def test_a_waker_times_out_and_reports_whether_it_was_set() -> None:
    from onnxops.controller.context import Waker

    w = Waker()
    assert await w.wait(0.01) is False
    asyncio.get_running_loop().call_later(0.01, w.set)
    assert await w.wait(5) is True and w.is_set()
    assert await w.wait(5) is True  # stays set until cleared
    w.clear()
    assert not w.is_set()


async def test_a_waker_wakes_every_waiter() -> None:
    from onnxops.controller.context import Waker

    w = Waker()
    waiting = [asyncio.ensure_future(w.wait(5)) for _ in range(2)]
    await asyncio.sleep(0.01)
    w.set()
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [True, True]
