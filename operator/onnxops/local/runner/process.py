"""OS processes for containers: spawn in their own session (process group), stop with SIGTERM then
SIGKILL after a grace period, and always reap the whole group so no stray children survive a container."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from onnxops.local.runner.podspec import ProcessPlan

log = logging.getLogger("onnxops.local.runner")
REAP_TIMEOUT_S = 10.0


def prepare_fs(plan: ProcessPlan) -> None:
    for d in plan.dirs:
        Path(d).mkdir(parents=True, exist_ok=True)
    for path, data in plan.files.items():
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    tp = Path(plan.termination_path)
    tp.parent.mkdir(parents=True, exist_ok=True)
    tp.write_bytes(b"")  # a fresh, empty termination-message file per container start
    if plan.owner is not None:  # container backend: the container's user must write its mounts
        for path in [*plan.dirs, *plan.files, str(tp.parent), str(tp)]:
            _give(Path(path), plan.owner)


def _give(path: Path, owner: tuple[int, int]) -> None:
    """Files go to the container's user (chown as root, else made writable); directories are opened up to
    every user: pods of different users share a PVC's directory, where fsGroup would make it group-writable
    for each of them on a real node."""
    with contextlib.suppress(OSError):
        if path.is_dir():
            path.chmod(0o777)
        elif owner != (-1, -1) and os.geteuid() == 0:
            os.chown(path, *owner)
        else:
            path.chmod(0o666)


_CLEANUP: dict[int, list[str]] = {}  # pid of an engine client -> the command that removes its container


async def spawn(plan: ProcessPlan, log_file: str) -> asyncio.subprocess.Process:
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:  # the child keeps its own copy of the descriptor
        proc = await asyncio.create_subprocess_exec(
            *plan.argv,
            env=plan.env,
            cwd=plan.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    if plan.cleanup:
        _CLEANUP[proc.pid] = plan.cleanup
    return proc


async def _cleanup(pid: int) -> None:
    """Remove the container of an engine client that is gone (a SIGKILLed client leaves it running)."""
    argv = _CLEANUP.pop(pid, None)
    if not argv:
        return
    try:
        p = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.wait_for(p.wait(), 60)
    except (OSError, TimeoutError) as e:
        log.warning("container cleanup %s failed: %s", argv[-1], e)


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def stop_process(proc: asyncio.subprocess.Process, grace: float) -> int:
    """SIGTERM the container's process group, SIGKILL after `grace` seconds; returns the returncode."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=max(0.0, grace))
        except TimeoutError:
            signal_group(proc.pid, signal.SIGKILL)
            await reap(proc)
    signal_group(proc.pid, signal.SIGKILL)  # leftovers of the group
    await _cleanup(proc.pid)
    return proc.returncode if proc.returncode is not None else -signal.SIGKILL


async def reap(proc: asyncio.subprocess.Process, timeout: float = REAP_TIMEOUT_S) -> None:
    """Wait for a SIGKILLed process, bounded: if the event loop's child watcher never reports the exit
    (seen on a loaded machine), reap it directly so shutdown cannot hang."""
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(proc.pid, os.WNOHANG)
        log.warning("process %s: exit not reported %.0fs after SIGKILL", proc.pid, timeout)


def read_head(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return b""


def read_tail(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read()
    except OSError:
        return b""
