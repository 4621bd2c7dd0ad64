"""The demo's traffic generator: iris-like rows of the current "world", sent as Open Inference Protocol v2
JSON requests to the InferenceService's Service at a steady rate (asyncio + aiohttp).

It knows the species of every row it sends, so it is also the demo's source of ground truth: each request
carries an ``id``, the server echoes it (and captures the rows under it: ``<id>`` for a one-row request,
``<id>:<row>`` otherwise, docs/data-contract.md). With ``feedback`` on, it keeps every answered row as a
feedback item (id, truth, and the version and prediction the server answered with), which
:class:`FeedbackSender` posts to the feedback endpoint (docs/feedback.md); the serving pods write the items
as label files that ``dataset.fromServing`` joins with. ``set_truth`` changes the ground truth (the
concept-drift scenario)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from onnxops.demo.data import SPECIES, World, sample_labelled, sample_rows

MAX_IN_FLIGHT = 16


def infer_body(rows: np.ndarray, input_name: str = "input", request_id: str | None = None) -> dict[str, Any]:
    """An OIP v2 inference request for ``rows`` (n x features, FP32), with ``id`` when given."""
    n, f = rows.shape
    return {
        **({"id": request_id} if request_id is not None else {}),
        "inputs": [
            {
                "name": input_name,
                "shape": [int(n), int(f)],
                "datatype": "FP32",
                "data": [float(v) for v in rows.ravel()],
            }
        ],
    }


def row_ids(request_id: str, n: int) -> list[str]:
    """The ids the server captures the rows of a request under (docs/data-contract.md)."""
    return [request_id] if n == 1 else [f"{request_id}:{i}" for i in range(n)]


@dataclass
class TrafficStats:
    requests: int = 0
    rows: int = 0
    codes: Counter[str] = field(default_factory=Counter)  # "200", "503", "error" (no HTTP answer)
    by_world: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: dict[str, str] = field(default_factory=dict)  # code -> first answer seen (for diagnosis)

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.codes.items() if code != "200")

    def p99_ms(self) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.quantile(np.asarray(self.latencies_ms[-5000:]), 0.99))

    def to_json(self) -> dict[str, Any]:
        p99 = self.p99_ms()
        return {
            "requests": self.requests,
            "rows": self.rows,
            "errors": self.errors,
            "codes": dict(self.codes),
            "byWorld": dict(self.by_world),
            "p99Ms": None if p99 is None else round(p99, 2),
            "errorSamples": self.error_samples,
        }


class TrafficGenerator:
    """``rate`` requests per second of 1..``max_rows`` rows each, sampled from the current world."""

    def __init__(
        self,
        base_url: str,
        model: str,
        worlds: dict[str, World],
        world: str,
        *,
        rate: float = 25.0,
        max_rows: int = 8,
        seed: int = 0,
        input_name: str = "input",
        feedback: bool = False,
    ) -> None:
        if world not in worlds:
            raise ValueError(f"unknown world {world!r}; one of {sorted(worlds)}")
        if rate <= 0 or max_rows < 1:
            raise ValueError("rate must be > 0 and max_rows >= 1")
        self.url = f"{base_url.rstrip('/')}/v2/models/{model}/infer"
        self.worlds, self.world = worlds, world
        self.rate, self.max_rows, self.input_name = rate, max_rows, input_name
        self.rng = np.random.default_rng(seed)
        self.stats = TrafficStats()
        self.switched_at: dict[str, float] = {world: time.time()}  # world -> unix time of its first request
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self.id_prefix = f"demo-{seed}-{int(time.time())}"
        self.id_mismatches = 0  # answers whose id was not the request's (their rows get no label)
        self.feedback = feedback
        self.items: list[dict[str, Any]] = []  # feedback items of answered rows, not yet taken
        self.relabel: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # rows, truth -> truth

    def take_items(self) -> list[dict[str, Any]]:
        out, self.items = self.items, []
        return out

    def set_truth(self, relabel: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float:
        """From now on the true label of a row is ``relabel(rows, old truth)``; returns the unix time."""
        self.relabel = relabel
        self.switched_at["truth"] = time.time()
        return self.switched_at["truth"]

    def set_world(self, world: str) -> float:
        """Sample from ``world`` from now on; returns the unix time of the switch."""
        if world not in self.worlds:
            raise ValueError(f"unknown world {world!r}; one of {sorted(self.worlds)}")
        self.world = world
        self.switched_at[world] = time.time()
        return self.switched_at[world]

    async def _one(
        self,
        session: aiohttp.ClientSession,
        body: dict[str, Any],
        n: int,
        world: str,
        truth: np.ndarray | None = None,
    ) -> None:
        t0 = time.perf_counter()
        code, text = "error", ""
        try:
            async with session.post(self.url, json=body) as resp:
                raw = await resp.read()
                code = str(resp.status)
                text = raw[:300].decode(errors="replace")
                if code == "200" and truth is not None:
                    self._label(body.get("id"), raw, truth)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            text = f"{type(e).__name__}: {e}"[:300]
        if code != "200":
            self.stats.error_samples.setdefault(code, text)
        self.stats.requests += 1
        self.stats.codes[code] += 1
        if code == "200":
            self.stats.rows += n
            self.stats.by_world[world] += n
            self.stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if len(self.stats.latencies_ms) > 20000:
                del self.stats.latencies_ms[:10000]

    def _label(self, sent: Any, raw: bytes, truth: np.ndarray) -> None:
        """Keep the answered rows' ids (the id the server returned, which must be the one sent) with their
        species."""
        try:
            doc = json.loads(raw)
            got = doc.get("id")
        except (ValueError, AttributeError):
            doc, got = {}, None
        if got is None or got != sent:
            self.id_mismatches += 1
            return
        if not self.feedback:
            return
        ids = row_ids(str(got), len(truth))
        predicted = predictions(doc)
        version = doc.get("model_version")
        for i, (rid, y) in enumerate(zip(ids, truth, strict=True)):
            pred = predicted[i] if predicted is not None and i < len(predicted) else None
            # the truth in the answering model's label type: species names for a model trained on the
            # CSVs (their target column is the name), class indices for one trained on sklearn://iris
            item: dict[str, Any] = {"id": rid, "truth": SPECIES[int(y)] if isinstance(pred, str) else int(y)}
            if version is not None and pred is not None:
                item.update(version=str(version), prediction=pred)
            self.items.append(item)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        sem = asyncio.Semaphore(MAX_IN_FLIGHT)
        pending: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        period = 1.0 / self.rate
        next_at = loop.time()
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                while True:
                    next_at += period
                    await asyncio.sleep(max(0.0, next_at - loop.time()))
                    if loop.time() - next_at > 1.0:  # fell behind (slow machine): do not burst to catch up
                        next_at = loop.time()
                    await sem.acquire()
                    n = int(self.rng.integers(1, self.max_rows + 1))
                    rows, truth = sample_labelled(self.worlds[self.world], n, self.rng)
                    if self.relabel is not None:
                        truth = self.relabel(rows, truth)
                    self._seq += 1
                    body = infer_body(rows, self.input_name, f"{self.id_prefix}-{self._seq}")
                    task = asyncio.create_task(self._one(session, body, n, self.world, truth))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    task.add_done_callback(lambda _t: sem.release())
            finally:
                for t in list(pending):
                    t.cancel()
                for t in list(pending):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t

    def rng_rows(self, n: int) -> np.ndarray:
        return sample_rows(self.worlds[self.world], n, self.rng)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="demo-traffic")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


def predictions(doc: dict[str, Any]) -> list[Any] | None:
    """The predicted labels (or values) of an OIP v2 response: the ``label`` output, else the first."""
    outputs = doc.get("outputs") or []
    out = next((o for o in outputs if o.get("name") == "label"), outputs[0] if outputs else None)
    data = (out or {}).get("data")
    return list(data) if isinstance(data, list) else None


class _Periodic:
    """``flush()`` every ``interval`` seconds in a task, until ``stop()``. Stopping lets a flush that is
    under way finish (its items were taken from the generator: cancelling it mid-request would lose the
    server's answer, or the items), bounded by ``STOP_TIMEOUT_S``."""

    interval: float = 1.0
    STOP_TIMEOUT_S = 15.0  # above a flush's own request timeout
    _task: asyncio.Task[None] | None = None
    _stopping: asyncio.Event | None = None

    async def flush(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        stopping = self._stopping
        assert stopping is not None
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval)
            if not stopping.is_set():
                await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self.run(), name=f"demo-{type(self).__name__}")

    async def stop(self) -> None:
        if self._task is not None and self._stopping is not None:
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.STOP_TIMEOUT_S)
            except Exception:  # a flush's own failure, or one stuck past the bound
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            self._task = self._stopping = None


class FeedbackSender(_Periodic):
    """Every ``interval`` seconds, the generator's new feedback items in one ``POST .../feedback`` to the
    Service (any replica: the items carry the version and prediction the client got)."""

    def __init__(self, traffic: TrafficGenerator, base_url: str, model: str, interval: float = 1.0) -> None:
        self.traffic, self.interval = traffic, interval
        self.url = f"{base_url.rstrip('/')}/v2/models/{model}/feedback"
        self.requests = self.accepted = self.unresolved = 0
        self.error: str | None = None  # the first refused or failed request (its items are lost)
        self._session: aiohttp.ClientSession | None = None

    async def flush(self) -> None:
        items = self.traffic.take_items()
        if not items:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.post(self.url, json=items) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {raw[:300].decode(errors='replace')}")
                doc = json.loads(raw)
        except (TimeoutError, aiohttp.ClientError, OSError, RuntimeError, ValueError) as e:
            self.error = self.error or f"{type(e).__name__}: {e}"[:300]
            return
        self.requests += 1
        self.accepted += int(doc.get("accepted") or 0)
        self.unresolved += int(doc.get("unresolved") or 0)

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "unresolved": self.unresolved,
            "error": self.error,
        }
