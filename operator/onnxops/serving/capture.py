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
import os
import random
import time
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
COMPRESSION = "zstd"
CHUNK_ROWS = 4096  # requests are joined into one Arrow table every CHUNK_ROWS rows or CHUNK_REQUESTS requests
CHUNK_REQUESTS = 256
RESERVED = frozenset(META_COLUMNS + OUTPUT_COLUMNS + PARTITION_KEYS)


def new_request_id() -> str:
    """32 random hex digits (a uuid4's entropy without building a UUID object)."""
    return os.urandom(16).hex()


def row_id(request_id: str, row: int, rows: int) -> str:
    """The id a label refers to: the request id for a one-row request, ``<request id>:<row>`` otherwise."""
    return request_id if rows == 1 else f"{request_id}:{row}"


class Entry(NamedTuple):
    """One answered request, as the request path queues it (references, no copies)."""

    ts: float
    request_id: str
    model: LoadedModel
    feeds: dict[str, np.ndarray]
    outputs: list[np.ndarray]
    rows: int


class Chunk(NamedTuple):
    """Consecutive requests of one hour with their arrays joined: what the queue holds."""

    model: LoadedModel
    ts: np.ndarray  # per request (float64 seconds)
    request_ids: list[str]  # per request
    counts: np.ndarray  # rows per request (int64)
    feeds: dict[str, np.ndarray]  # rows of all requests
    outputs: list[np.ndarray]
    rows: int
    table: Any = None  # the chunk as an Arrow table (built on the event loop; the arrays are then dropped)


def compact(entries: Sequence[Entry]) -> Chunk:
    """Join a few hundred requests' arrays; done on the event loop in small steps so that the writer thread
    gets few large arrays (long GIL-holding loops in a thread would stall the event loop)."""
    e0 = entries[0]
    return Chunk(
        e0.model,
        np.fromiter((e.ts for e in entries), np.float64, len(entries)),
        [e.request_id for e in entries],
        np.fromiter((e.rows for e in entries), np.int64, len(entries)),
        {k: np.concatenate([e.feeds[k] for e in entries]) for k in e0.feeds},
        [np.concatenate([e.outputs[i] for e in entries]) for i in range(len(e0.outputs))],
        sum(e.rows for e in entries),
    )


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


def build_table(chunks: Sequence[Chunk]) -> Any:
    """One Arrow table for ``chunks`` (all of one model): the row schema of docs/data-contract.md.

    Vectorised (numpy and Arrow compute): the writer thread shares the cores with the request path."""
    import itertools

    import pyarrow as pa
    import pyarrow.compute as pc

    model = chunks[0].model
    counts = np.concatenate([c.counts for c in chunks])
    n = len(counts)
    total = int(counts.sum())
    owner = np.repeat(np.arange(n), counts)  # entry index of every row
    starts = np.cumsum(counts) - counts
    rows = (np.arange(total) - starts[owner]).astype(np.int32)
    rids = pa.array(list(itertools.chain.from_iterable(c.request_ids for c in chunks)), pa.string())
    request_id = rids if total == n else rids.take(pa.array(owner))
    if total == n:
        ids = request_id
    else:
        joined = pc.binary_join_element_wise(request_id, pc.cast(pa.array(rows), pa.string()), ":")
        ids = pc.if_else(pa.array(counts[owner] == 1), request_id, joined)
    ts = np.concatenate([c.ts for c in chunks])
    micros = np.round(ts * 1e6).astype(np.int64)[owner]
    cols: dict[str, Any] = {
        "id": ids,
        "request_id": request_id,
        "row": pa.array(rows),
        "timestamp": pa.array(micros, pa.timestamp("us", tz="UTC")),
    }
    inputs: dict[str, np.ndarray] = {}
    features = feature_columns(model)
    clash = sorted({name for name, _, _ in features} & RESERVED)
    if clash:
        raise ValueError(f"feature name(s) {clash} clash with the capture's own columns")
    for name, inp, j in features:
        if inp not in inputs:
            whole = np.concatenate([c.feeds[inp] for c in chunks])
            inputs[inp] = np.ascontiguousarray(whole.T) if j is not None else whole  # columns contiguous
        arr = inputs[inp]
        cols[name] = _column(arr[j] if j is not None else arr)
    first = np.concatenate([c.outputs[0] for c in chunks])
    if first.ndim == 2 and first.shape[1] == 1:
        first = first[:, 0]
    cols["prediction"] = _column(first)
    if model.task == "classification" and len(chunks[0].outputs) > 1:
        proba = np.concatenate([c.outputs[1] for c in chunks])
        if proba.ndim == 2:
            width = proba.shape[1]
            offsets = pa.array(np.arange(0, (total + 1) * width, width, dtype=np.int32))
            values = pa.array(np.ascontiguousarray(proba, dtype=np.float32).ravel())
            cols["probabilities"] = pa.ListArray.from_arrays(offsets, values)
    return pa.table(cols)


def encode_parquet(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = pa.BufferOutputStream()
    # no dictionary pages: features are mostly distinct floats; zstd alone is 3x faster and smaller here
    pq.write_table(table, buf, compression=COMPRESSION, use_dictionary=False)
    return bytes(buf.getvalue().to_pybytes())


def partition_path(model: str, version: str, ts: float) -> str:
    t = datetime.fromtimestamp(ts, UTC)
    return f"model={model}/version={version}/date={t:%Y-%m-%d}/hour={t:%H}"


def _hour(ts: float) -> int:
    return int(ts // 3600)


class Capture:
    """The queue, its background writer and its metrics (a prometheus_client Collector)."""

    def __init__(self, cfg: CaptureConfig, model: str, version: str, sink: Sink,
                 *, random_fn: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg, self.model, self.version, self.sink = cfg, model, version, sink
        self.queue: deque[Chunk] = deque()
        self.pending: list[Entry] = []  # the newest requests, joined into a Chunk every CHUNK_ROWS rows
        self._pending_rows = 0
        self._pending_hour = -1
        self._chunk_rows = min(CHUNK_ROWS, cfg.max_rows_per_file)
        self.queued_rows = 0  # pending + queued chunks
        self.captured = self.written = self.bytes = self.files = self.errors = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.sink_up = True
        self._random = random_fn
        self._clock = clock
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
        ts = self._clock()
        hour = int(ts // 3600)
        if hour != self._pending_hour:
            self._compact()
            self._pending_hour = hour
        self.pending.append(Entry(ts, request_id, model, feeds, outputs, rows))
        self._pending_rows += rows
        self.queued_rows += rows
        self.captured += rows
        if self._pending_rows >= self._chunk_rows or len(self.pending) >= CHUNK_REQUESTS:
            self._compact()
            if self.queued_rows >= self.cfg.max_rows_per_file and self._wake is not None:
                self._wake.set()

    def _compact(self) -> None:
        """Join the pending requests into one Arrow table: a few hundred rows at a time on the event loop,
        so that the writer thread only concatenates tables and encodes Parquet (C++, without the GIL)."""
        if not self.pending:
            return
        pending, rows = self.pending, self._pending_rows
        self.pending = []
        self._pending_rows = 0
        try:  # never lets an exception reach the request that triggered the compaction
            chunk = compact(pending)
            table = build_table([chunk])
        except Exception as exc:
            if not self.dropped[DROP_UNENCODABLE]:
                log.error("captured rows cannot be encoded; they are dropped",
                          extra={"fields": {"error": str(exc)[:300]}})
            self.dropped[DROP_UNENCODABLE] += rows
            self.queued_rows -= rows
            return
        self.queue.append(chunk._replace(feeds={}, outputs=[], table=table))

    # -- background writer -----------------------------------------------------------------------
    def start(self) -> None:
        import pyarrow.compute
        import pyarrow.parquet  # imported once here, not in the first flush

        del pyarrow

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

    def _take(self) -> Iterator[list[Chunk]]:
        """Pop the queue in file-sized groups of one hour partition each."""
        self._compact()
        while self.queue:
            group: list[Chunk] = []
            n, hour = 0, _hour(self.queue[0].ts[0])
            while self.queue and _hour(self.queue[0].ts[0]) == hour and (
                    not group or n + self.queue[0].rows <= self.cfg.max_rows_per_file):
                c = self.queue.popleft()
                group.append(c)
                n += c.rows
            self.queued_rows -= n
            yield group

    async def flush(self) -> bool:
        """Write everything queued now; False when a write failed (its rows are queued again)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            loop = asyncio.get_running_loop()
            groups = list(self._take())
            self._inflight = sum(c.rows for g in groups for c in g)
            for i, group in enumerate(groups):
                try:
                    await loop.run_in_executor(None, self._write, group)
                except Exception as exc:
                    self._inflight = 0
                    self._failed(exc, [c for g in groups[i:] for c in g])
                    return False
                self._inflight -= sum(c.rows for c in group)
            return True

    def _write(self, group: list[Chunk]) -> None:
        """Worker thread: encode one group and hand it to the sink."""
        try:
            import pyarrow as pa

            tables = [c.table if c.table is not None else build_table([c]) for c in group]
            data = encode_parquet(tables[0] if len(tables) == 1 else pa.concat_tables(tables))
        except Exception:
            log.exception("captured rows cannot be encoded; they are dropped")
            self.dropped[DROP_UNENCODABLE] += sum(c.rows for c in group)
            return
        part = partition_path(self.model, self.version, float(group[0].ts[0]))
        rel = f"{part}/{self.cfg.pod}-{self._started}-{self._seq + 1:06d}.parquet"
        self.sink.write(rel, data)
        self._seq += 1
        self.written += sum(c.rows for c in group)
        self.bytes += len(data)
        self.files += 1
        if not self.sink_up:
            log.info("capture sink writable again", extra={"fields": {"sink": self.sink.uri}})
        self.sink_up = True

    def _failed(self, exc: Exception, unwritten: list[Chunk]) -> None:
        self.errors += 1
        if self.sink_up:
            log.warning("capture sink write failed; rows stay queued up to the limit and are retried",
                        extra={"fields": {"error": str(exc)[:300]}})
        self.sink_up = False
        room = self.cfg.queue_rows - self.queued_rows
        keep: list[Chunk] = []
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
            while (self.queue or self.pending) and time.monotonic() < deadline:
                if not await asyncio.wait_for(self.flush(), max(0.0, deadline - time.monotonic())):
                    await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        lost = self.queued_rows + self._inflight
        if lost:
            self.dropped[DROP_SHUTDOWN] += lost
            log.error("captured rows not written before shutdown", extra={"fields": {"rows": lost}})
            self.queue.clear()
            self.pending = []
            self.queued_rows = self._inflight = self._pending_rows = 0

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
