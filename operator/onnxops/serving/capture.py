"""Payload capture: what the server answered, as Parquet files for retraining (docs/data-contract.md).

The request path only appends a reference to the request's arrays to a bounded in-memory queue
(``Capture.record``, O(1), no copy, no I/O). A background task turns the queue into Arrow tables and writes
them through a ``Sink`` from a worker thread, every ``flush_interval`` or as soon as a file's worth of rows
is queued. When the queue holds ``queue_rows`` rows (the sink is slow or down) new rows are dropped and
counted; a request is never delayed or failed by the capture. A failed write puts its rows back at the
head of the queue (they are retried at the next flush, and the queue bound still holds). On shutdown the
server flushes what it holds within ``flush_timeout`` seconds; what cannot be written is counted as
dropped with ``reason="shutdown"``.

Files: ``model=<m>/version=<v>/date=YYYY-MM-DD/hour=HH/<pod>-<seq>.parquet`` under the sink, hive
partitioned, one row per served row (``build_table`` is the row schema).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from onnxops.drift import names as N

from .capture_config import CaptureConfig
from .model import LoadedModel
from .sink import Sink

log = logging.getLogger("onnxops.serving")

# Metric families (exposed on /metrics next to the server's own; docs/metrics.md "Payload capture").
PAYLOAD_ROWS_CAPTURED = "onnxops_payload_rows_captured_total"  # counter {model, version}
PAYLOAD_ROWS_WRITTEN = "onnxops_payload_rows_written_total"  # counter {model, version}
PAYLOAD_BYTES_WRITTEN = "onnxops_payload_bytes_written_total"  # counter {model, version}
PAYLOAD_FILES_WRITTEN = "onnxops_payload_files_written_total"  # counter {model, version}
PAYLOAD_ROWS_DROPPED = "onnxops_payload_rows_dropped_total"  # counter {model, version, reason}
PAYLOAD_WRITE_ERRORS = "onnxops_payload_write_errors_total"  # counter {model, version}
PAYLOAD_QUEUE_ROWS = "onnxops_payload_queue_rows"  # gauge {model, version}
PAYLOAD_SINK_UP = "onnxops_payload_sink_up"  # gauge {model, version}
LABEL_REASON = "reason"
DROP_QUEUE_FULL, DROP_SHUTDOWN, DROP_UNENCODABLE = "queue_full", "shutdown", "unencodable"
DROP_REASONS = (DROP_QUEUE_FULL, DROP_SHUTDOWN, DROP_UNENCODABLE)

# Columns every file has besides the features; partition keys come from the path.
META_COLUMNS = ("id", "request_id", "row", "timestamp")
OUTPUT_COLUMNS = ("prediction", "probabilities")
PARTITION_KEYS = ("model", "version", "date", "hour")
RESERVED = frozenset(META_COLUMNS + OUTPUT_COLUMNS + PARTITION_KEYS)


def new_request_id() -> str:
    return uuid.uuid4().hex


def row_id(request_id: str, row: int, rows: int) -> str:
    """The id a label refers to: the request id for a one-row request, ``<request id>:<row>`` otherwise."""
    return request_id if rows == 1 else f"{request_id}:{row}"


class Entry(NamedTuple):
    ts: float
    request_id: str
    model: LoadedModel
    feeds: dict[str, np.ndarray]
    outputs: list[np.ndarray]
    rows: int


def feature_columns(model: LoadedModel) -> list[tuple[str, str, int | None]]:
    """(column, input, column index or None for the whole input) in file order."""
    if len(model.inputs) == 1 and len(model.inputs[0].shape) == 2:
        info = model.inputs[0]
        if model.profile is not None:
            feats = sorted(model.profile.features, key=lambda f: f.index)
            return [(f.name, info.name, f.index) for f in feats]
        width = info.shape[1]
        if width > 0:
            return [(f"{info.name}_{j}", info.name, j) for j in range(width)]
    return [(t.name, t.name, None) for t in model.inputs]


def _column(values: np.ndarray) -> Any:
    import pyarrow as pa

    if values.dtype == object:
        return pa.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values])
    if values.ndim > 1:
        flat = values.reshape(values.shape[0], -1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
    return pa.array(values)


def build_table(entries: Sequence[Entry]) -> Any:
    """One Arrow table for ``entries`` (all of one model): the row schema of docs/data-contract.md."""
    import pyarrow as pa

    model = entries[0].model
    counts = np.array([e.rows for e in entries], dtype=np.int64)
    rows = np.concatenate([np.arange(n, dtype=np.int32) for n in counts])
    rids = [e.request_id for e in entries]
    ids = [row_id(r, i, n) for r, n in zip(rids, counts.tolist(), strict=True) for i in range(n)]
    ts = np.repeat(np.array([round(e.ts * 1e6) for e in entries], dtype=np.int64), counts)
    cols: dict[str, Any] = {
        "id": pa.array(ids, pa.string()),
        "request_id": pa.array(np.repeat(np.array(rids, dtype=object), counts).tolist(), pa.string()),
        "row": pa.array(rows),
        "timestamp": pa.array(ts.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
    }
    inputs: dict[str, np.ndarray] = {}
    features = feature_columns(model)
    clash = sorted({name for name, _, _ in features} & RESERVED)
    if clash:
        raise ValueError(f"feature name(s) {clash} clash with the capture's own columns")
    for name, inp, j in features:
        if inp not in inputs:
            inputs[inp] = np.concatenate([e.feeds[inp] for e in entries])
        arr = inputs[inp]
        cols[name] = _column(arr[:, j] if j is not None else arr)
    first = np.concatenate([e.outputs[0] for e in entries])
    if first.ndim == 2 and first.shape[1] == 1:
        first = first[:, 0]
    cols["prediction"] = _column(first)
    if model.task == "classification" and len(entries[0].outputs) > 1:
        proba = np.concatenate([e.outputs[1] for e in entries])
        if proba.ndim == 2:
            cols["probabilities"] = pa.array(list(proba.astype(np.float32)), pa.list_(pa.float32()))
    return pa.table(cols)


def encode_parquet(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression="zstd")
    return bytes(buf.getvalue().to_pybytes())


def partition_path(model: str, version: str, ts: float) -> str:
    t = datetime.fromtimestamp(ts, UTC)
    return f"model={model}/version={version}/date={t:%Y-%m-%d}/hour={t:%H}"


def _hour(ts: float) -> int:
    return int(ts // 3600)


class Capture:
    """The queue, its background writer and its metrics (a prometheus_client Collector)."""

    def __init__(self, cfg: CaptureConfig, model: str, version: str, sink: Sink,
                 *, random_fn: Callable[[], float] = random.random) -> None:
        self.cfg, self.model, self.version, self.sink = cfg, model, version, sink
        self.queue: deque[Entry] = deque()
        self.queued_rows = 0
        self.captured = self.written = self.bytes = self.files = self.errors = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.sink_up = True
        self._random = random_fn
        self._seq = 0
        self._started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._closing = False
        self._inflight = 0  # rows taken off the queue by a flush and not yet written or queued again

    # -- request path ----------------------------------------------------------------------------
    def record(self, model: LoadedModel, request_id: str, feeds: dict[str, np.ndarray],
               outputs: list[np.ndarray], rows: int) -> None:
        """Queue one answered request (sampled); never blocks, never raises for a full queue."""
        if self.cfg.sample_rate < 1.0 and self._random() >= self.cfg.sample_rate:
            return
        if self.queued_rows + rows > self.cfg.queue_rows:
            self.dropped[DROP_QUEUE_FULL] += rows
            return
        self.queue.append(Entry(time.time(), request_id, model, feeds, outputs, rows))
        self.queued_rows += rows
        self.captured += rows
        if self.queued_rows >= self.cfg.max_rows_per_file and self._wake is not None:
            self._wake.set()

    # -- background writer -----------------------------------------------------------------------
    def start(self) -> None:
        self._wake, self._lock = asyncio.Event(), asyncio.Lock()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.cfg.flush_interval)
            self._wake.clear()
            if not self._closing:
                await self.flush()

    def _take(self) -> Iterator[list[Entry]]:
        """Pop the queue in file-sized groups of one hour partition each."""
        while self.queue:
            group: list[Entry] = []
            n, hour = 0, _hour(self.queue[0].ts)
            while self.queue and n < self.cfg.max_rows_per_file and _hour(self.queue[0].ts) == hour:
                e = self.queue.popleft()
                group.append(e)
                n += e.rows
            self.queued_rows -= n
            yield group

    async def flush(self) -> bool:
        """Write everything queued now; False when a write failed (its rows are queued again)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            loop = asyncio.get_running_loop()
            groups = list(self._take())
            self._inflight = sum(e.rows for g in groups for e in g)
            for i, group in enumerate(groups):
                try:
                    await loop.run_in_executor(None, self._write, group)
                except Exception as exc:
                    self._inflight = 0
                    self._failed(exc, [e for g in groups[i:] for e in g])
                    return False
                self._inflight -= sum(e.rows for e in group)
            return True

    def _write(self, group: list[Entry]) -> None:
        """Worker thread: encode one group and hand it to the sink."""
        try:
            data = encode_parquet(build_table(group))
        except Exception:
            log.exception("captured rows cannot be encoded; they are dropped")
            self.dropped[DROP_UNENCODABLE] += sum(e.rows for e in group)
            return
        rel = f"{partition_path(self.model, self.version, group[0].ts)}/{self.cfg.pod}-{self._started}-" \
              f"{self._seq + 1:06d}.parquet"
        self.sink.write(rel, data)
        self._seq += 1
        self.written += sum(e.rows for e in group)
        self.bytes += len(data)
        self.files += 1
        if not self.sink_up:
            log.info("capture sink writable again", extra={"fields": {"sink": self.sink.uri}})
        self.sink_up = True

    def _failed(self, exc: Exception, unwritten: list[Entry]) -> None:
        self.errors += 1
        if self.sink_up:
            log.warning("capture sink write failed; rows stay queued up to the limit and are retried",
                        extra={"fields": {"error": str(exc)[:300]}})
        self.sink_up = False
        room = self.cfg.queue_rows - self.queued_rows
        keep: list[Entry] = []
        for e in unwritten:  # oldest first, as long as they fit beside what arrived meanwhile
            if e.rows <= room:
                keep.append(e)
                room -= e.rows
            else:
                self.dropped[DROP_QUEUE_FULL] += e.rows
        self.queue.extendleft(reversed(keep))
        self.queued_rows += sum(e.rows for e in keep)

    async def close(self, timeout: float | None = None) -> None:
        """Stop the timer and flush what is queued within ``timeout`` seconds (SIGTERM)."""
        limit = self.cfg.flush_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        self._closing = True
        if self._task is not None and self._wake is not None:
            self._wake.set()  # the timer task ends after a write in progress, never in the middle of one
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), limit)
            self._task.cancel()
            self._task = None
        with contextlib.suppress(TimeoutError):
            while self.queue and time.monotonic() < deadline:
                if not await asyncio.wait_for(self.flush(), max(0.0, deadline - time.monotonic())):
                    await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        lost = self.queued_rows + self._inflight
        if lost:
            self.dropped[DROP_SHUTDOWN] += lost
            log.error("captured rows not written before shutdown", extra={"fields": {"rows": lost}})
            self.queue.clear()
            self.queued_rows = self._inflight = 0

    # -- prometheus_client Collector ---------------------------------------------------------------
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        mv, labels = [self.model, self.version], [N.LABEL_MODEL, N.LABEL_VERSION]
        for name, doc, value in (
            (PAYLOAD_ROWS_CAPTURED, "Rows sampled for capture and queued.", self.captured),
            (PAYLOAD_ROWS_WRITTEN, "Captured rows written to the sink.", self.written),
            (PAYLOAD_BYTES_WRITTEN, "Parquet bytes written to the sink.", self.bytes),
            (PAYLOAD_FILES_WRITTEN, "Parquet files written to the sink.", self.files),
            (PAYLOAD_WRITE_ERRORS, "Failed writes to the sink.", self.errors),
        ):
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(mv, value)
            yield c
        d = CounterMetricFamily(PAYLOAD_ROWS_DROPPED, "Captured rows dropped, by reason.",
                                labels=[*labels, LABEL_REASON])
        for reason, n in self.dropped.items():
            d.add_metric([*mv, reason], n)
        yield d
        q = GaugeMetricFamily(PAYLOAD_QUEUE_ROWS, "Captured rows waiting in memory.", labels=labels)
        q.add_metric(mv, self.queued_rows)
        yield q
        up = GaugeMetricFamily(PAYLOAD_SINK_UP, "0 after a failed write to the sink, 1 after a good one.",
                               labels=labels)
        up.add_metric(mv, 1.0 if self.sink_up else 0.0)
        yield up
